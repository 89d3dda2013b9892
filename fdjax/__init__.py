"""fdjax: batched finite differences and gradient checking for JAX.

The public names, in the order data flows: FD transforms (``fdjax._fd``, built on the
batched engine ``fdjax._engine``), gradient checks (``fdjax._check``), the step sweep
(``fdjax._sweep``), loss landscapes, the one-parameter calculator, and the error and
warning types. Reports are ``fdjax.report``; the command is ``fdjax.cli``. Nothing in a
private module (``fdjax._*``) is public.

The names are imported on first use (PEP 562), so that ``fdjax --help`` and ``fdjax calc``
start without importing JAX; ``import fdjax`` followed by any public name behaves exactly
as an eager import.

PYTEST_DONT_REWRITE: pytest loads fdjax's plugin early; its asserts are not rewritten.
"""

from typing import TYPE_CHECKING

from . import _lazy
from ._version import __version__ as __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; _LAZY below says the same at run time
    from ._fd import grad as grad
    from ._fd import jacobian as jacobian
    from ._fd import jvp as jvp
    from ._fd import batched_jvp as batched_jvp
    from ._fd import Stencil as Stencil
    from ._fd import METHODS as METHODS
    from ._fd import fornberg_weights as fornberg_weights
    from ._check import check_grad as check_grad
    from ._check import check_vjp as check_vjp
    from ._check import check_jvp as check_jvp
    from ._check import assert_grad as assert_grad
    from ._check import GradCheck as GradCheck
    from ._check import GradientCheckError as GradientCheckError
    from ._check import CheckStatus as CheckStatus
    from ._check import DirectionKind as DirectionKind
    from ._check import Reason as Reason
    from ._sweep import sweep as sweep
    from ._sweep import StepSweep as StepSweep
    from ._sweep import Status as Status
    from ._landscape import landscape as landscape
    from ._landscape import Landscape as Landscape
    from ._calculator import calculate as calculate
    from ._calculator import Calculation as Calculation
    from ._calculator import CalculationWarning as CalculationWarning
    from ._calculator import epsilon_table as epsilon_table
    from ._calculator import EpsilonTable as EpsilonTable
    from ._errors import NonFiniteError as NonFiniteError
    from ._engine import LargePlanWarning as LargePlanWarning
    from ._cache import enable_compilation_cache as enable_compilation_cache
    from ._engine import clear_caches as clear_caches

#: public name -> the private subsystem that defines it
_LAZY: dict[str, str] = {
    "grad": "._fd",
    "jacobian": "._fd",
    "jvp": "._fd",
    "batched_jvp": "._fd",
    "Stencil": "._fd",
    "METHODS": "._fd",
    "fornberg_weights": "._fd",
    "check_grad": "._check",
    "check_vjp": "._check",
    "check_jvp": "._check",
    "assert_grad": "._check",
    "GradCheck": "._check",
    "GradientCheckError": "._check",
    "CheckStatus": "._check",
    "DirectionKind": "._check",
    "Reason": "._check",
    "sweep": "._sweep",
    "StepSweep": "._sweep",
    "Status": "._sweep",
    "landscape": "._landscape",
    "Landscape": "._landscape",
    "calculate": "._calculator",
    "Calculation": "._calculator",
    "CalculationWarning": "._calculator",
    "epsilon_table": "._calculator",
    "EpsilonTable": "._calculator",
    "NonFiniteError": "._errors",
    "LargePlanWarning": "._engine",
    "enable_compilation_cache": "._cache",
    "clear_caches": "._engine",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    return _lazy.load(__name__, globals(), _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
