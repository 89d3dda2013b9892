"""(2) Finite differences: stencils, steps, the step ladder and the transforms.

``stencils`` (Fornberg weights) and ``steps`` (relative, dtype-aware, the step actually
taken) define one FD quantity; ``basis`` evaluates it for every coordinate through the
engine; ``ladder`` reads a ladder of steps (observed orders, round-off, the chosen step)
and ``adaptive`` evaluates one; ``transforms`` are ``grad``/``jacobian``/``jvp``.
"""

from .adaptive import adaptive_basis as adaptive_basis
from .adaptive import default_relative_steps as default_relative_steps
from .basis import all_finite as all_finite
from .basis import basis_values as basis_values
from .basis import combine as combine
from .ladder import DEFAULT_LEVELS as DEFAULT_LEVELS
from .ladder import Status as Status
from .stencils import METHODS as METHODS
from .stencils import Stencil as Stencil
from .stencils import fornberg_weights as fornberg_weights
from .stencils import get_stencil as get_stencil
from .steps import check_step_static as check_step_static
from .steps import check_step_values as check_step_values
from .steps import eps_of as eps_of
from .steps import relative_step_vector as relative_step_vector
from .steps import taken_step as taken_step
from .steps import trace_output as trace_output
from .steps import working_eps as working_eps
from .transforms import batched_jvp as batched_jvp
from .transforms import check_output as check_output
from .transforms import grad as grad
from .transforms import jacobian as jacobian
from .transforms import jvp as jvp
