"""fdjax: batched finite differences and gradient checking for JAX."""

from importlib.metadata import PackageNotFoundError, version

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

try:
    __version__ = version("fdjax")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Status",
    "StepSweep",
    "sweep",
    "calculate",
    "Calculation",
    "epsilon_table",
    "EpsilonTable",
    "landscape",
    "Landscape",
    "assert_grad",
    "check_grad",
    "check_jvp",
    "check_vjp",
    "GradCheck",
    "GradientCheckError",
    "METHODS",
    "NonFiniteError",
    "LargePlanWarning",
    "Stencil",
    "batched_jvp",
    "fornberg_weights",
    "grad",
    "jacobian",
    "jvp",
]
