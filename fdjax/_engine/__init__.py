"""(1) The engine: f at R perturbed points in one jitted, vmapped, chunked batch.

Plans (``Basis``, ``Directions``, ``RandomDirections`` rows), chunk sizes from a memory
budget (``plan``), sharding over devices (``devices``), cached jitted calls (``jit``), and
structure-aware plans of coordinate rows: leaf by leaf, with the linear-consumer rewrite
(``structure``, ``linear``).
It knows nothing about derivatives, AD or verdicts.
"""

from .batch import Basis as Basis
from .batch import Directions as Directions
from .batch import Options as Options
from .batch import RandomDirections as RandomDirections
from .batch import chunk_plan as chunk_plan
from .batch import evaluate as evaluate
from .batch import listen as listen
from .jit import call_jitted as call_jitted
from .jit import clear_caches as clear_caches
from .structure import Layout as Layout
from .structure import evaluate_coordinates as evaluate_coordinates
from .structure import listen_groups as listen_groups
from .plan import DEFAULT_MEMORY_BUDGET as DEFAULT_MEMORY_BUDGET
from .plan import LargePlanWarning as LargePlanWarning
from .plan import choose_chunk_size as choose_chunk_size
from .plan import predicted_seconds as predicted_seconds
