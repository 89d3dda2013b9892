"""How many rows go into one vmapped chunk, and how long a plan will take.

The cost of one row (one perturbed evaluation) is measured once per computation: the
one-row program is lowered and compiled on its own and XLA reports its temporaries
(``compiled.memory_analysis()``) and its FLOPs and bytes (``lowered.cost_analysis()``).
Where the backend reports no memory analysis, a documented estimate replaces it: the sum
of the sizes of every intermediate value of the jaxpr (no buffer reuse assumed, so an
over-estimate). A row costs its perturbed copy of x plus those temporaries. Small plans
skip the compile: when even the over-estimate fits all rows into one chunk, one chunk it is.

Chunk size B:
- at most ``memory_budget // row_bytes`` (the budget bounds one chunk's memory);
- on CPU also at most the largest power of two with ``B · row_bytes <= LLC / 2`` (half
  the last-level cache; the other half holds x, the GEMM's packed panels and whatever
  else runs): a chunk whose perturbed copies and activations stay in cache runs at the
  GEMM rate, one that spills streams from DRAM. Measured on the tanh-MLP benchmark with
  a 32 MB L3: throughput is flat for chunk working sets of ~4-20 MB and falls by 2-3×
  beyond ~32 MB (docs/scaling.md);
- on GPU/TPU as large as the budget allows (wide batches fill the device);
- then the rows are split into equal chunks (a multiple of 8 rows when B >= 8) so that
  padding wastes fewer than 8 rows per chunk instead of up to B - 1.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import math
import os
import warnings
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import eval_jaxpr

from .compile import compile_options


#: Default bytes one chunk may use on CPU.
DEFAULT_MEMORY_BUDGET = 256 * 2**20
#: Default bytes one chunk may use on a GPU/TPU (wide chunks fill the device).
ACCELERATOR_MEMORY_BUDGET = 2**30
#: A plan expected to run longer than this many seconds warns (``LargePlanWarning``).
PLAN_WARNING_SECONDS = 30.0
#: Last-level cache size assumed when the OS does not report one.
FALLBACK_CACHE_BYTES = 16 * 2**20
#: Rows per chunk on CPU at most, whatever the cache reads. A larger chunk only spreads the
#: loop's per-chunk cost over more rows, while the last-level cache a VM reports is often the
#: whole socket's, shared by every tenant: a 480 MiB L3 let one chunk hold every row of a
#: plan, up to 3x slower than 128 rows; over 8 workloads 128 rows was within 1.07x of the
#: best chunk size, 256 within 1.38x (``python -m bench.chunk_sizes``, 2 cores).
CPU_MAX_CHUNK = 128
#: ... but a CPU plan whose rows take at most this many bytes in all (by the row estimate)
#: runs as one chunk: it fits in cache anyway, and chunks make the program a loop, which
#: XLA compiles at a cost: capped, the verdict corpus's small float32 checks took ~0.2 s more
#: each (a 77-parameter full check's plans of 100-2,600 rows, 0.6-6 MiB in all).
CPU_SPLIT_BYTES = 16 * 2**20

# Nominal rates for the time estimate only (FLOP/s per device, bytes/s per device).
_NOMINAL = {"cpu": (2.5e10, 1e10), "gpu": (1e13, 1e12), "tpu": (5e13, 1e12)}


class LargePlanWarning(UserWarning):
    """A plan of perturbed evaluations is expected to take very long (the message says how long)."""


@dataclasses.dataclass(frozen=True)
class RowCost:
    """Cost of one perturbed evaluation.

    Attributes:
        bytes: memory one row adds to a chunk: its perturbed copy of x plus f's temporaries.
        flops: FLOPs of one evaluation from XLA's cost analysis (NaN when not reported).
        bytes_accessed: bytes read and written by one evaluation (NaN when not reported).
        source: ``"memory_analysis"`` (measured by XLA) or ``"estimate"`` (jaxpr sizes).
    """

    bytes: int
    flops: float
    bytes_accessed: float
    source: str


_COSTS: dict[str, RowCost] = {}


def clear_costs() -> None:
    """Forget the measured row costs (``measure_row``'s cache)."""
    _COSTS.clear()


def itemsize(dtype) -> int:
    """Bytes per element; extended dtypes (PRNG keys) count their underlying uint32 words."""
    if jnp.issubdtype(dtype, jax.dtypes.extended):
        try:
            return int(np.prod(jax.random.key_data(jax.random.key(0, impl=dtype._impl)).shape)) * 4
        except Exception:  # noqa: BLE001 - other extended dtypes: a conservative guess
            return 16
    return int(np.dtype(dtype).itemsize)


#: Primitives whose output XLA keeps as a view of the input (a bitcast): not counted.
_VIEWS = frozenset({"reshape", "squeeze", "expand_dims", "bitcast_convert_type"})

#: Elementwise primitives: XLA fuses chains of them into one loop, so only the largest
#: output of such a chain is counted as live at once.
_ELEMENTWISE = frozenset(
    "abs acos acosh add and asin asinh atan atan2 atanh broadcast_in_dim cbrt ceil clamp "
    "complex conj convert_element_type copy copy_p cos cosh digamma div eq erf erf_inv erfc "
    "exp exp2 expm1 floor ge gt imag integer_pow iota is_finite le lgamma log log1p logistic "
    "lt max min mul ne neg nextafter not or pow real rem round rsqrt select_n sign sin sinh "
    "sqrt square stop_gradient sub tan tanh xor".split()
)


#: Calls of a sub-jaxpr whose outputs are the sub-jaxpr's own (counted there, not twice).
_CALLS = frozenset(
    "jit pjit closed_call core_call custom_jvp_call custom_vjp_call custom_vjp_call_jaxpr "
    "remat checkpoint".split()
)


def _jaxpr_bytes(jaxpr) -> int:
    """An over-estimate of the memory one evaluation of a jaxpr holds: every intermediate
    value (sub-jaxprs included), except views (reshapes) and elementwise values, of which
    only the largest counts (XLA fuses them into the loops that read them)."""
    total = fused = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        for v in [] if name in _VIEWS or name in _CALLS else eqn.outvars:
            aval = v.aval
            if hasattr(aval, "shape") and hasattr(aval, "dtype"):
                size = math.prod(aval.shape) * itemsize(aval.dtype)
                if name in _ELEMENTWISE:
                    fused = max(fused, size)
                else:
                    total += size
        for p in eqn.params.values():
            sub = getattr(p, "jaxpr", p)
            if hasattr(sub, "eqns"):
                total += _jaxpr_bytes(sub)
    return total + fused


def _struct(v):
    return jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype)


def _first(analysis) -> dict:
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    return dict(analysis or {})


def row_jaxpr(one: Callable, row0: Any, consts: tuple = ()):
    """The jaxpr of one row's evaluation ``one(row0, *consts)`` (traced, never run)."""
    return jax.make_jaxpr(one)(row0, *consts)


def estimate_row(closed, copy_bytes: int) -> RowCost:
    """The fallback: perturbed copy + every intermediate of the jaxpr (an over-estimate)."""
    return RowCost(copy_bytes + _jaxpr_bytes(closed.jaxpr), math.nan, math.nan, "estimate")


def measure_row(closed, copy_bytes: int) -> RowCost:
    """Measure one perturbed evaluation with XLA, once per distinct computation.

    Works under the caller's trace: the one-row jaxpr's constants (possibly tracers of the
    caller's jit) become abstract arguments of a separately lowered and compiled program,
    so nothing is executed. Memory from ``compiled.memory_analysis()``, FLOPs and bytes
    from the compiled (post-fusion) cost analysis, else the lowered one. Results are cached
    by the lowered program's text. ``copy_bytes`` is the size of one perturbed copy of x.
    """
    jaxpr = closed.jaxpr
    try:
        lowered = _lower(closed)
        key = hashlib.sha1(lowered.as_text().encode()).hexdigest()
    except Exception:  # noqa: BLE001 - exotic avals (tokens, effects): fall back to the estimate
        return estimate_row(closed, copy_bytes)
    if key in _COSTS:
        return _COSTS[key]
    options = compile_options(closed, jax.default_backend())
    compiled = _safe(lambda: lowered.compile(compiler_options=options))
    cost = _first(_safe(compiled.cost_analysis)) if compiled is not None else {}
    cost = cost or _first(_safe(lowered.cost_analysis))
    flops = float(cost.get("flops", math.nan))
    accessed = float(cost.get("bytes accessed", math.nan))
    temp, source = None, "estimate"
    mem = _safe(compiled.memory_analysis) if compiled is not None else None
    if mem is not None and getattr(mem, "temp_size_in_bytes", None) is not None:
        temp = int(mem.temp_size_in_bytes) + int(mem.output_size_in_bytes)
        source = "memory_analysis"
    if temp is None:
        temp = _jaxpr_bytes(jaxpr)
    result = RowCost(copy_bytes + temp, flops, accessed, source)
    if len(_COSTS) >= 1024:
        _COSTS.clear()
    _COSTS[key] = result
    return result


def lowered_cost(closed, cost: RowCost) -> RowCost:
    """``cost`` with the FLOPs and bytes accessed of XLA's cost analysis of the lowered
    one-row program (no compile: enough for ``LargePlanWarning``'s rough time)."""
    try:
        flops, accessed = _lowered_analysis(closed)
    except Exception:  # noqa: BLE001 - exotic avals: no analysis, the estimate stands
        return cost
    return dataclasses.replace(cost, flops=flops, bytes_accessed=accessed)


def _lowered_analysis(closed) -> tuple[float, float]:
    """(FLOPs, bytes accessed) from XLA's cost analysis of the lowered one-row program (NaN
    where it reports none); raises where the program cannot be lowered."""
    analysis = _first(_safe(_lower(closed).cost_analysis))
    return float(analysis.get("flops", math.nan)), float(analysis.get("bytes accessed", math.nan))


def _lower(closed):
    """The jaxpr lowered on its own, its constants (possibly the caller's tracers) abstract."""
    jaxpr = closed.jaxpr

    def run(consts, *args):
        return eval_jaxpr(jaxpr, consts, *args)

    return jax.jit(run).lower([_struct(v) for v in jaxpr.constvars], *[_struct(v) for v in jaxpr.invars])


def predicted_seconds(fn: Callable, x: Any, num_rows: int, devices: Any = None) -> float:
    """Rough time of ``num_rows`` evaluations of ``fn`` near ``x`` (``fn``'s argument: an array
    or a pytree of them), from XLA's cost analysis of the lowered (not compiled) program and
    the nominal rates; 0.0 where it reports none.

    Works under the caller's trace (nothing runs). ``devices`` as ``Options.devices``.
    """
    try:
        flops, accessed = _lowered_analysis(jax.make_jaxpr(fn)(x))
    except Exception:  # noqa: BLE001 - no cost analysis: nothing to predict from
        return 0.0
    from .devices import row_mesh

    mesh = row_mesh(devices)
    ndev = 1 if mesh is None else int(mesh.size)
    platform = (mesh.devices.flat[0] if mesh is not None else jax.devices()[0]).platform
    return expected_seconds(RowCost(0, flops, accessed, "lowered"), num_rows, ndev, platform)


def _safe(thunk):
    try:
        return thunk()
    except Exception:  # noqa: BLE001 - analyses are optional backend features
        return None


@functools.cache
def cache_bytes() -> int:
    """Size of the largest (last-level) CPU cache, from Linux sysfs; 16 MiB if unknown."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as fh:
                text = fh.read().strip().upper()
        except OSError:
            continue
        mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * mult)
    if not sizes and hasattr(os, "sysconf"):
        for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
            try:
                v = os.sysconf(name)
            except (ValueError, OSError):
                continue
            if v and v > 0:
                sizes.append(int(v))
    return max(sizes) if sizes else FALLBACK_CACHE_BYTES


def default_budget(platform: str) -> int:
    return DEFAULT_MEMORY_BUDGET if platform == "cpu" else ACCELERATOR_MEMORY_BUDGET


def choose_chunk_size(num_rows: int, row_bytes: int, memory_budget: int, platform: str = "cpu") -> int:
    """Rows per chunk: within the budget, cache-sized on CPU (and at most ``CPU_MAX_CHUNK``
    where the rows take more than ``CPU_SPLIT_BYTES``), balanced over the chunks.

    Examples:
        >>> choose_chunk_size(1000, 2**20, 2**30, "gpu")   # all rows fit: one chunk
        1000
        >>> choose_chunk_size(1000, 2**20, 100 * 2**20, "gpu")   # <= 100 rows: 11 chunks of 96
        96
    """
    row_bytes = max(int(row_bytes), 1)
    target = max(1, memory_budget // row_bytes)
    if platform == "cpu":
        fit = max(1, cache_bytes() // 2 // row_bytes)
        target = min(target, 1 << (fit.bit_length() - 1))
        if num_rows * row_bytes > CPU_SPLIT_BYTES:
            target = min(target, CPU_MAX_CHUNK)
    if num_rows <= target:
        return max(1, num_rows)
    if target >= 8:
        target -= target % 8
    n_chunks = -(-num_rows // target)
    b = -(-num_rows // n_chunks)
    if target >= 8:
        b = -(-b // 8) * 8
    return b


def expected_seconds(cost: RowCost, num_rows: int, num_devices: int, platform: str) -> float:
    """Rough time for ``num_rows`` evaluations: max(FLOPs / rate, bytes / bandwidth) per row."""
    rate, bandwidth = _NOMINAL.get(platform, _NOMINAL["gpu"])
    if platform == "cpu":
        rate *= (os.cpu_count() or 1) / 2
    per_row = max(
        cost.flops / rate if math.isfinite(cost.flops) else 0.0,
        cost.bytes_accessed / bandwidth if math.isfinite(cost.bytes_accessed) else 0.0,
        1e-6,
    )
    return per_row * num_rows / max(num_devices, 1)


def _fmt_time(s: float) -> str:
    if s >= 86400:
        return f"{s / 86400:.1f} days"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    if s >= 1:
        return f"{s:.1f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def warn_if_long(cost: RowCost, num_rows: int, num_devices: int, platform: str) -> None:
    """Warn (``LargePlanWarning``) when the plan is expected to exceed ``PLAN_WARNING_SECONDS``."""
    total = expected_seconds(cost, num_rows, num_devices, platform)
    if total <= PLAN_WARNING_SECONDS:
        return
    one = expected_seconds(cost, 1, 1, platform)
    warnings.warn(
        f"fdjax: this plan evaluates the function at {num_rows:,} perturbed points; expected "
        f"≈ {_fmt_time(total)} on {num_devices} {platform} device(s) (≈ {_fmt_time(one)} per "
        "evaluation, a rough estimate from XLA's cost analysis). A full finite-difference "
        "gradient costs O(N) evaluations of f; a directional check (a few random directions, "
        f"O(10) evaluations: ≈ {_fmt_time(32 * one)}) or a subset of the parameters is far "
        "cheaper. Silence with warnings.filterwarnings('ignore', category=LargePlanWarning).",
        LargePlanWarning,
        stacklevel=2,
    )
