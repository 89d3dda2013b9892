"""fdjax: batched finite differences and gradient checking for JAX.

The public names are imported on first use (PEP 562), so that ``fdjax --help`` and
``fdjax calc`` start without importing JAX; ``import fdjax`` followed by any public name
behaves exactly as an eager import. Nothing in a private module (``fdjax._*``) is public.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and IDEs see; _LAZY below says the same at run time
    from ._adaptive import Status as Status
    from ._adaptive import StepSweep as StepSweep
    from ._adaptive import sweep as sweep
    from ._calculator import calculate as calculate
    from ._calculator import Calculation as Calculation
    from ._calculator import epsilon_table as epsilon_table
    from ._calculator import EpsilonTable as EpsilonTable
    from ._landscape import landscape as landscape
    from ._landscape import Landscape as Landscape
    from ._check import assert_grad as assert_grad
    from ._check import check_grad as check_grad
    from ._check import check_jvp as check_jvp
    from ._check import check_vjp as check_vjp
    from ._check import GradCheck as GradCheck
    from ._check import GradientCheckError as GradientCheckError
    from ._derivatives import batched_jvp as batched_jvp
    from ._derivatives import grad as grad
    from ._derivatives import jacobian as jacobian
    from ._derivatives import jvp as jvp
    from ._derivatives import NonFiniteError as NonFiniteError
    from ._plan import LargePlanWarning as LargePlanWarning
    from ._stencils import fornberg_weights as fornberg_weights
    from ._stencils import METHODS as METHODS
    from ._stencils import Stencil as Stencil

#: public name -> the private module that defines it
_LAZY: dict[str, str] = {
    "Status": "._adaptive",
    "StepSweep": "._adaptive",
    "sweep": "._adaptive",
    "calculate": "._calculator",
    "Calculation": "._calculator",
    "epsilon_table": "._calculator",
    "EpsilonTable": "._calculator",
    "landscape": "._landscape",
    "Landscape": "._landscape",
    "assert_grad": "._check",
    "check_grad": "._check",
    "check_jvp": "._check",
    "check_vjp": "._check",
    "GradCheck": "._check",
    "GradientCheckError": "._check",
    "batched_jvp": "._derivatives",
    "grad": "._derivatives",
    "jacobian": "._derivatives",
    "jvp": "._derivatives",
    "NonFiniteError": "._derivatives",
    "LargePlanWarning": "._plan",
    "fornberg_weights": "._stencils",
    "METHODS": "._stencils",
    "Stencil": "._stencils",
}

try:
    __version__ = version("fdjax")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fdjax' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
