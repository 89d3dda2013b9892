"""(3b) ``fdjax.sweep``: the adaptive step sweep per parameter, and its ``StepSweep`` result."""

from .api import sweep as sweep
from .result import StepSweep as StepSweep
from .._fd import Status as Status
