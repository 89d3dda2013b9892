"""(3a) Gradient checks: jax.grad / vjp / jvp against finite differences, with an error model.

Read in this order: ``api`` (check_grad & co: validate, run the bodies, aggregate),
``body`` (the traced AD side and engine batches), ``rows`` (which perturbed points),
``model`` (the error model: truncation, round-off, kinks), ``locate`` (bisection),
``aggregate`` (per element, direction, leaf and overall verdicts), ``result`` and
``format`` (the ``GradCheck`` and how it prints).
"""

from .inputs import MODES as MODES
from .api import assert_grad as assert_grad
from .api import check_grad as check_grad
from .api import check_jvp as check_jvp
from .api import check_vjp as check_vjp
from .format import element_rows as element_rows
from .format import open_leaves as open_leaves
from .outcomes import CheckStatus as CheckStatus
from .outcomes import DirectionKind as DirectionKind
from .outcomes import Reason as Reason
from .result import DirectionChecks as DirectionChecks
from .result import ElementChecks as ElementChecks
from .result import GradCheck as GradCheck
from .result import LeafChecks as LeafChecks
from .result import GradientCheckError as GradientCheckError
