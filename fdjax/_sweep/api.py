"""Adaptive ε: ``fdjax.sweep``.

Shrink h geometrically and watch: while truncation dominates, the error of a central
difference shrinks by R^2 per step of ratio R (4 per halving); once round-off takes over it
grows like 1/h. ``sweep`` does this for every
parameter at once (one batched engine call, ``_sweep.ladder_values``), ``_ladder.analyze``
reads each ladder (the step, the best estimate, plain or Richardson, an error estimate and
a diagnosis, ``Status``), and the result is a ``StepSweep`` (``result``).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import NonFiniteError, check_x_finite
from .._fd import check_output
from .. import _engine
from .._engine import Options
from .. import _validate
from .._calls import bind
from .._engine import call_jitted
from .._pytree import is_traced
from .._fd import DEFAULT_LEVELS
from .._pytree import apply_precision, flatten_args
from .._fd import Stencil, get_stencil
from .._fd.adaptive import default_relative_steps, ladder_values, read_ladder
from .._fd.steps import trace_output
from .result import Layout, StepSweep


@dataclasses.dataclass(frozen=True)
class _SweepBody:
    """Traced body of ``fdjax.sweep``: the ladder's values (hashable: the jit cache key)."""

    fun: Callable
    argnums: Any
    stencil: Stencil
    opts: Options
    rel: tuple[float, ...]
    scale: float
    stretch: bool
    caller: str
    eps_work: float = 0.0  # the eps f computes in where coarser than x's (``working_eps``)

    def __call__(self, args, index, vectors, ref):
        fa = flatten_args(args, self.argnums, self.caller)

        def flat_fn(flat):
            return self.fun(*fa.call_args(flat))

        x = fa.x
        f0 = flat_fn(x)
        raw, _ = ladder_values(
            flat_fn,
            x,
            f0,
            self.stencil,
            self.opts,
            self.rel,
            self.scale,
            index=index,
            vectors=vectors,
            stretch=self.stretch,
            quantize=fa.quantize,
            layout=_engine.Layout(fa.float_sizes, lambda pieces: self.fun(*fa.call_pieces(pieces))),
            eps_work=self.eps_work,
        )
        if vectors is not None:
            rows = jnp.arange(vectors.shape[0], dtype=jnp.int32)
            ref_m = None if ref is None else vectors.astype(x.dtype) @ ref.astype(x.dtype)
        else:
            rows = jnp.arange(x.shape[0], dtype=jnp.int32) if index is None else index.astype(jnp.int32)
            ref_m = None if ref is None else ref.astype(x.dtype)[rows]
        return raw, rows, ref_m, jnp.all(jnp.isfinite(jnp.asarray(f0)))


def _assemble(
    raw, rows, ref_m, stencil: Stencil, levels: int, rel, kind: str, layout: Layout, *, precision: str
) -> StepSweep:
    """Read the ladder (``read_ladder``) and lay it out as a StepSweep.

    Called eagerly, the analysis and the layout run in NumPy on the host (nothing is compiled
    after the ladder's values) and the fields are put back on the device as ``jax.Array``;
    inside the user's jit or vmap they are traced with ``jax.numpy``.
    """
    eager = not is_traced(raw, rows, ref_m)
    xp: Any = np if eager else jnp
    if eager:
        raw, rows, ref_m = jax.device_get((raw, rows, ref_m))
    res = read_ladder(raw, stencil, levels)
    pc = {k: v[:, 0] for k, v in res["per_channel"].items()}
    ps = {k: v[:, :, 0].T for k, v in res["per_step"].items()}
    arrays: dict[str, Any] = dict(
        index=rows,
        steps=raw["h"].T,
        estimates=ps["estimates"],
        differences=ps["differences"],
        orders=ps["orders"],
        roundoff=ps["roundoff"],
        significant=ps["significant"],
        true_errors=None if ref_m is None else xp.abs(ps["estimates"] - ref_m[:, None]),
        step=pc["step"],
        estimate=pc["estimate"],
        error_estimate=pc["error"],
        order=pc["order"],
        status=pc["status"],
        level=pc["level"],
        noise=pc["noise"],
        slopes=xp.stack([pc["slope_minus"], pc["slope_plus"]], axis=-1),
        reference=ref_m,
        true_error=None if ref_m is None else xp.abs(pc["estimate"] - ref_m),
    )
    if eager:
        # the host analysis may widen 16-bit floats; the fields keep the ladder's dtype, as
        # the traced analysis gives them
        dt = np.dtype(raw["h"].dtype)
        arrays = {
            k: v.astype(dt) if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating) else v
            for k, v in arrays.items()
        }
        arrays = jax.device_put(arrays)
    return StepSweep(
        **arrays,
        method=stencil.name,
        kind=kind,
        relative_steps=tuple(rel),
        evaluations=len(stencil.offsets) * len(rel) * int(rows.shape[0]) + 1,
        layout=layout,
        precision=precision,
    )


def _check_steps(steps, num_steps, caller):
    if steps is not None and num_steps is not None:
        raise ValueError(f"{caller}: give steps=... or num_steps=..., not both")
    if num_steps is not None:
        if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 3:
            raise ValueError(f"{caller}(num_steps=...) must be an int >= 3, got {num_steps!r}")
        return None
    if steps is None:
        return None
    try:
        s = np.asarray(steps, dtype=np.float64)
    except (TypeError, ValueError):
        s = None
    ok = s is not None and s.ndim == 1 and s.size >= 3 and bool(np.all(np.isfinite(s)) and np.all(s > 0))
    if s is None or not ok or not np.all(np.diff(s) < 0):
        raise ValueError(
            f"{caller}(steps=...) must be a strictly decreasing sequence of at least 3 positive, finite "
            f"relative steps (e.g. [1e-1, 1e-2, ..., 1e-7]), got {steps!r}"
        )
    return tuple(float(v) for v in s)


def _flat_of_tree(tree, fa, caller: str, what: str, lead: tuple[int, ...] = ()):
    """Float leaves of a pytree shaped like the differentiated argument(s) -> [*lead, N]."""
    diff = tuple(fa.args[i] for i in fa.argnums)
    target = diff[0] if len(fa.argnums) == 1 and fa._single else diff
    leaves = jax.tree_util.tree_leaves(tree)
    structure = jax.tree_util.tree_structure
    if structure(tree) != structure(target):  # type: ignore[operator]  # jaxlib has no PyTreeDef stub
        raise ValueError(
            f"{caller}({what}=...) must have the structure of the differentiated argument(s): "
            f"{jax.tree_util.tree_structure(target)}, got {jax.tree_util.tree_structure(tree)}"
        )
    out = []
    for f, leaf, tleaf in zip(fa.is_float, leaves, jax.tree_util.tree_leaves(target), strict=True):
        if not f:
            continue
        shape = tuple(np.shape(leaf))
        if shape != lead + tuple(np.shape(tleaf)):
            raise ValueError(
                f"{caller}({what}=...): a leaf has shape {shape}, expected {lead + tuple(np.shape(tleaf))}"
            )
        out.append(jnp.reshape(jnp.asarray(leaf, fa.x.dtype), lead + (-1,)))
    return jnp.concatenate(out, axis=-1)


def _check_indices(indices, n, caller):
    if is_traced(indices):
        if not jnp.issubdtype(indices.dtype, jnp.integer) or indices.ndim != 1:
            raise ValueError(f"{caller}(indices=...) must be a 1-D integer array")
        return indices
    a = np.asarray(indices)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{caller}(indices=...) must be a non-empty 1-D sequence of integers, got {indices!r}"
        )
    if a.min() < 0 or a.max() >= n:
        bad = a[(a < 0) | (a >= n)][0]
        raise ValueError(
            f"{caller}(indices=...) must lie in [0, {n}) (the flat parameter count), got {int(bad)}"
        )
    return jnp.asarray(a, jnp.int32)


def _check_directions(directions, fa, caller):
    n = fa.size
    if (
        isinstance(directions, (jax.Array, np.ndarray))
        and np.ndim(directions) == 2
        and np.shape(directions)[1] == n
    ):
        d = jnp.asarray(directions, fa.x.dtype)
    else:
        lead = (
            np.shape(jax.tree_util.tree_leaves(directions)[0])[:1]
            if jax.tree_util.tree_leaves(directions)
            else ()
        )
        if len(lead) != 1:
            raise ValueError(
                f"{caller}(directions=...) must be a [D, {n}] array or a pytree like the differentiated "
                "argument(s) with a leading axis of D directions"
            )
        d = _flat_of_tree(directions, fa, caller, "directions", lead)
    if d.shape[0] == 0:
        raise ValueError(f"{caller}(directions=...) must hold at least one direction, got shape {d.shape}")
    if not is_traced(d) and not bool(jnp.all(jnp.any(d != 0, axis=1) & jnp.all(jnp.isfinite(d), axis=1))):
        raise ValueError(
            f"{caller}(directions=...) must be finite and nonzero, got a zero or non-finite direction"
        )
    return d


def sweep(
    fun: Callable,
    *args: Any,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    method: str | Stencil = "central",
    steps: Sequence[float] | None = None,
    num_steps: int | None = None,
    indices: Any = None,
    directions: Any = None,
    reference: Any = None,
    scale: float = 1.0,
    levels: int = DEFAULT_LEVELS,
    precision: str | None = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: Any = None,
) -> StepSweep:
    """Step sweep: FD estimates on a ladder of steps for every parameter, and the best one.

    Coordinate i is perturbed with steps h_k = r_k·max(|x_i|, scale), r_k = 0.1·R^-k
    (k < ``num_steps``; R = 4 in float64, 2 in float32 and 16-bit floats), and every
    perturbed evaluation (offsets × steps × parameters, 2·N·K for central differences, plus
    f(x) once) runs in ONE batched engine call. Each ladder is then read as a person would:
    the differences Δ_k shrink by R^p per step while truncation dominates (the asymptotic
    window) and grow like 1/h once round-off takes over. Per parameter: the chosen step, the
    best estimate (plain or Richardson extrapolation of the same values, whichever has the
    smaller estimated error), an error estimate (truncation |Δ|/(R^p − 1) plus the round-off
    bound) and ``Status`` flags.

    Args:
        fun: scalar function ``fun(*args)``.
        *args: its arguments (pytrees of arrays).
        argnums: which positional argument(s) to sweep.
        has_aux: f returns a pair ``(output, aux)``; the output is swept, aux ignored.
        method: a first-derivative stencil: ``"central"`` (default), ``"forward"``,
            ``"backward"``, ``"central4"``, ``"central6"``, ``"complex"``, or a ``Stencil``.
        steps: explicit relative steps, strictly decreasing (e.g. ``[1e-1, ..., 1e-7]``);
            Richardson is exact for a constant ratio.
        num_steps: length of the default ladder, whose ratio stays the dtype's: default 14
            steps of ratio 4 in float64 (0.1 down to 1.5e-9, 29 evaluations per parameter
            for central differences), 22 halvings in float32 (down to 4.8e-8), 12 halvings
            in 16-bit floats. Near 0 (|x_i| < 1.5e-6 in float64) the default ladder keeps
            its first step and widens its ratio (up to its square: 16 in float64, 4 in
            float32) to reach 1e-3·|x_i|: functions singular at 0 vary on the scale |x_i|
            there. Explicit ``steps=`` are taken as given (no widening).
        indices: flat coordinates to sweep (default: all).
        directions: instead of coordinates, D directions: a [D, N] array or a pytree like
            the argument(s) with a leading axis D. The step along v is
            r_k·max(|x_i| on v's support, scale)/max|v|.
        reference: the true derivative, for the true errors: a callable called with
            ``*args`` (e.g. ``jax.grad(f)``) or a pytree like the argument(s).
        scale: typical magnitude of the parameters (default 1).
        levels: Richardson levels tried on top of the plain estimates (default 3).
        precision: which dtypes the sweep runs in, as in ``fdjax.check_grad``. None
            (default): bfloat16 and float16 leaves of every argument are cast to float32
            first (the derivative of f, estimated in float32); float32 and float64 leaves
            are swept in their own dtype. ``"native"``: every leaf in its own dtype (how FD
            behaves in 16 bits: 12 halvings of the step, coarse estimates, wide error
            estimates). ``"float64"``: every float leaf cast to float64 (needs 64-bit JAX).
            ``StepSweep.precision`` says which ran.
        chunk_size: rows per vmapped chunk (default: from ``memory_budget``), as in ``fdjax.grad``.
        memory_budget: bytes per chunk (default: 256 MiB on CPU, 1 GiB on accelerators).
        devices: where the rows run, as in ``fdjax.grad`` (default: every device).

    Returns:
        A ``StepSweep``: per-step and per-parameter arrays, ``summary()``, ``table(i)``,
        ``to_dict()``, ``to_tree(field)``.

    Raises:
        ValueError, TypeError: on bad configuration or input, naming the argument.
        NonFiniteError: f(x) itself is NaN/inf (outside a trace). Perturbed points that give
            NaN/inf are masked and flagged NONFINITE instead.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> x = jnp.array([0.0, 1.0])
        >>> s = fdjax.sweep(lambda x: jnp.sum(jnp.exp(x)), x, reference=jnp.exp(x))
        >>> bool(jnp.all(s.true_error <= s.error_estimate)), s.flags(1).name.split("|")[0]
        (True, 'CONVERGED')
        >>> s.table(1).splitlines()[1].split()[:3]  # the ladder of x[1]: one row per step
        ['k', 'h', 'D(h)']
    """
    caller = "fdjax.sweep"
    _validate.function(fun, caller)
    fun, args, argnums = bind(fun, args, {}, argnums, has_aux, caller)
    stencil = get_stencil(method, caller, first_derivative=True)
    rel = _check_steps(steps, num_steps, caller)
    scale = _validate.positive_finite(scale, "scale", caller)
    if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= 4:
        raise ValueError(f"{caller}(levels=...) must be an int in [0, 4], got {levels!r}")
    if indices is not None and directions is not None:
        raise ValueError(f"{caller}: give indices=... or directions=..., not both")
    opts = Options(chunk_size, memory_budget, devices).validate(caller)
    args, _, _, precision_label = apply_precision(precision, args, None, None, caller)
    fa = flatten_args(args, argnums, caller)
    check_x_finite(fa, caller)
    out, eps_work, _ = trace_output(fun, fa)  # a float32 f of float64 x: float32's ladder and rounding
    check_output(out, False, True, caller)
    index = None if indices is None else _check_indices(indices, fa.size, caller)
    vectors = None if directions is None else _check_directions(directions, fa, caller)
    ref = None
    if reference is not None:
        ref = _flat_of_tree(
            reference(*fa.args) if callable(reference) else reference, fa, caller, "reference"
        )
    stretch = rel is None  # the default ladder reaches down to 1e-3·|x_i| near 0
    if rel is None:
        rel = default_relative_steps(fa.dtype, num_steps, eps_work)
    body = _SweepBody(fun, argnums, stencil, opts, rel, float(scale), stretch, caller, eps_work)
    raw, rows, ref_m, f0_finite = call_jitted(body, fa.args, index, vectors, ref)
    if not is_traced(f0_finite) and not bool(f0_finite):
        raise NonFiniteError(f"{caller}: the function returned a non-finite value at the unperturbed point")
    kind = "coordinates" if vectors is None else "directions"
    return _assemble(raw, rows, ref_m, stencil, levels, rel, kind, Layout.of(fa), precision=precision_label)
