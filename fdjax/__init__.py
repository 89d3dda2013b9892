"""fdjax: batched finite differences and gradient checking for JAX."""

from importlib.metadata import PackageNotFoundError, version

from ._derivatives import batched_jvp as batched_jvp
from ._derivatives import grad as grad
from ._derivatives import jacobian as jacobian
from ._derivatives import jvp as jvp
from ._derivatives import NonFiniteError as NonFiniteError
from ._stencils import fornberg_weights as fornberg_weights
from ._stencils import METHODS as METHODS
from ._stencils import Stencil as Stencil

try:
    __version__ = version("fdjax")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "METHODS",
    "NonFiniteError",
    "Stencil",
    "batched_jvp",
    "fornberg_weights",
    "grad",
    "jacobian",
    "jvp",
]
