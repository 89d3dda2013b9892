"""The step ladder through the engine: every step, offset and parameter in one batch.

``ladder_values`` builds the rows (parameter × offset × step) inside the trace from integer
ranges, evaluates them with ONE ``_engine.evaluate`` call and forms the weighted sums;
``read_ladder`` forms the FD estimates and hands them to the numerics in ``ladder``: traced
in JAX inside a trace, in NumPy on the host for an eager call (no analysis program to
compile). ``adaptive_basis`` is the traced helper behind ``step="auto"``; the public
``fdjax.sweep`` lives in ``fdjax._sweep``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _engine
from .basis import all_finite
from .._engine import Options
from .._engine.compile import WorkJit
from .ladder import (
    DEFAULT_LEVELS,
    ROUNDOFF_ULPS,
    analyze,
    default_num_steps,
    default_ratio,
    ipow,
    relative_ladder,
)
from .._errors import NonFiniteError
from .._pytree import element_name, is_traced
from .stencils import Stencil
from .steps import eps_of


class AdaptiveResult(NamedTuple):
    """Per coordinate (leading axis N) and output element: what ``step="auto"`` found.

    Each field has the structure of the function's output with a leading axis of N
    coordinates (a [N] array for a scalar function).
    """

    estimate: object
    error_estimate: object
    step: object
    status: object


#: Near 0 the default ladder reaches down to STRETCH_TO·|x_i| ...
STRETCH_TO = 1e-3
#: ... with a step ratio of at most (the ladder's ratio)^MAX_RATIO_POWER (4 for halvings).
MAX_RATIO_POWER = 2.0


def default_relative_steps(dtype, num_steps: int | None = None, eps_work: float = 0.0) -> tuple[float, ...]:
    """The default ladder 0.1·R^-k (k < num_steps; R = ``default_ratio(dtype)``, 4 in float64
    and 2 otherwise; num_steps defaults from the dtype) as Python floats. ``eps_work``: the
    eps f computes in where coarser than x's (``working_eps``): the ladder is that float's."""
    dtype = work_dtype(dtype, eps_work)
    k = default_num_steps(dtype) if num_steps is None else num_steps
    return tuple(float(v) for v in relative_ladder(k, np.float64, ratio=default_ratio(dtype)))


def work_dtype(dtype, eps_work: float = 0.0):
    """``dtype``, or the float whose eps is ``eps_work`` where that is coarser (f computes
    in it inside)."""
    if eps_work <= eps_of(dtype):
        return dtype
    return next(d for d in (jnp.bfloat16, jnp.float16, jnp.float32) if eps_of(d) <= eps_work)


def _one_sided_offsets(stencil: Stencil):
    """Positions of the offsets +1 and −1 when the stencil has both (else None): the kink test."""
    if stencil.complex_step or stencil.derivative != 1:
        return None
    offs = list(stencil.offsets)
    if 1.0 in offs and -1.0 in offs:
        return offs.index(1.0), offs.index(-1.0)
    return None


def ladder_values(
    flat_fn,
    x,
    f0,
    stencil: Stencil,
    opts: Options,
    rel,
    scale,
    *,
    index=None,
    vectors=None,
    stretch=True,
    quantize=None,
    layout=None,
    eps_work: float = 0.0,
):
    """Evaluate the ladder (traced): ONE engine call for every parameter, offset and step.

    With ``layout`` (x's leaves and f of them, ``_engine.Layout``) and every coordinate
    (no ``index``, no ``vectors``), the rows take the engine's structure-aware plan.

    Args:
        flat_fn: function of the flat vector; any pytree of real arrays as output.
        x: flat point [N]; f0: ``flat_fn(x)``.
        rel: relative steps (tuple of floats, decreasing), K of them.
        scale: typical magnitude: coordinate i steps by rel_k·max(|x_i|, scale).
        index: int [M] coordinates to perturb (default all), or
        vectors: [D, N] directions (then M = D; the step is rel_k·max(|x_i| over the
            support, scale)/max|v|).
        stretch: for a coordinate with 0 < |x_i| and rel_{K−1}·max(|x_i|, scale) >
            STRETCH_TO·|x_i|, keep the first step but widen the ratio (at most
            the square of the ladder's ratio) so that the last step reaches STRETCH_TO·|x_i|:
            functions singular at 0 (log, 1/x, x^a) evaluated near 0 vary on the scale |x_i|, not ``scale``.
        quantize: ``FlatArgs.quantize``: coordinate steps are taken in each leaf's own dtype
            (fl(x_i + h) − x_i rounded to a bfloat16 leaf inside a float32 x).
        eps_work: the eps f computes in where coarser than x's (``working_eps``): the
            analysis models f's rounding with it (``raw["eps"]``).

    Returns:
        (raw, sizes): ``raw`` a dict of arrays for ``read_ladder`` (V: values [S, K, M, O],
        F0 [O], h [K, M], S and E [K, M, O] from ``_weighted_sums``, eps [] the rounding
        unit of f's values); ``sizes`` the element count of each output leaf.
    """
    dt = x.dtype
    relv = jnp.asarray(rel, dt)
    K, S = len(rel), len(stencil.offsets)
    if vectors is None:
        idx = jnp.arange(x.shape[0], dtype=jnp.int32) if index is None else index.astype(jnp.int32)
        xm = x[idx]
        nominal = relv[:, None] * jnp.maximum(jnp.abs(xm), jnp.asarray(scale, dt))[None]
        if stretch and K > 2:
            top, bottom = nominal[0], jnp.minimum(nominal[-1], STRETCH_TO * jnp.abs(xm))
            base = rel[0] / rel[1]
            ratio = jnp.clip(
                (top / jnp.where(bottom > 0, bottom, top)) ** (1.0 / (K - 1)), base, base**MAX_RATIO_POWER
            )
            powers = jnp.arange(K, dtype=dt)[:, None]
            nominal = jnp.where((bottom < nominal[-1])[None], top[None] * ratio[None] ** -powers, nominal)
        moved = xm[None] + nominal
        if quantize is not None and not stencil.complex_step:
            moved = quantize(moved, idx)
        h = nominal if stencil.complex_step else moved - xm[None]  # the step taken
        perturb: _engine.Basis | _engine.Directions = _engine.Basis()
        row_index = idx
    else:
        v = vectors.astype(dt)
        vmax = jnp.max(jnp.abs(v), axis=1)
        xs = jnp.max(jnp.where(v != 0, jnp.abs(x)[None], 0), axis=1)
        s = jnp.maximum(xs, jnp.asarray(scale, dt)) / jnp.where(vmax > 0, vmax, 1)
        h = relv[:, None] * s[None]
        perturb = _engine.Directions(v)
        row_index = jnp.arange(v.shape[0], dtype=jnp.int32)
    M = row_index.shape[0]
    offs = jnp.asarray(stencil.offsets, dt)
    coeff = (offs[:, None, None] * h[None]).reshape(-1)  # [S, K, M] rows
    if stencil.complex_step:
        coeff = jax.lax.complex(jnp.zeros_like(coeff), coeff)
    if layout is not None and index is None and vectors is None:
        vals = _engine.evaluate_coordinates(flat_fn, x, coeff.reshape(S * K, M), opts, layout)
        vals = jax.tree_util.tree_map(lambda a: a.reshape((S * K * M,) + a.shape[2:]), vals)
    else:
        rows = {"index": jnp.broadcast_to(row_index[None, None], (S, K, M)).reshape(-1), "coeff": coeff}
        vals = _engine.evaluate(flat_fn, x, perturb, rows, opts)
    leaves = jax.tree_util.tree_leaves(vals)
    sizes = [int(math.prod(a.shape[1:])) for a in leaves]
    # one dtype for the values: the widest of x's and the outputs' (a float32 f of float64 x)
    # (the complex step's values stay complex)
    vt = max([dt, *(a.dtype for a in leaves if not jnp.iscomplexobj(a))], key=lambda d: jnp.finfo(d).bits)
    V = jnp.concatenate(
        [a.reshape(S, K, M, -1).astype(a.dtype if jnp.iscomplexobj(a) else vt) for a in leaves], axis=-1
    )  # [S, K, M, O]
    F0 = jnp.concatenate([jnp.ravel(a).astype(vt) for a in jax.tree_util.tree_leaves(f0)])
    eps = jnp.asarray(max(eps_of(dt), eps_work), vt)
    return {"V": V, "F0": F0, "h": h, "eps": eps, **_weighted_sums(V, F0, stencil)}, sizes


def _weighted_sums(V, F0, stencil: Stencil):
    """S = Σ_s w_s·V_s + c·F0 (the FD estimate times h^d) and E = Σ_s |w_s·V_s| + |c·F0| (its
    round-off scale), [K, M, O] each; Im V_0 and |Im V_0| for the complex step.

    Formed here, in the traced program, also when ``read_ladder`` then runs on the host: XLA
    fuses a product into the sum that follows (one FMA rounding) where NumPy rounds twice,
    and for weights like 1/12 the round-off of S, which the analysis measures as noise, must
    be the same bits whichever side reads the ladder.
    """
    if stencil.complex_step:
        return {"S": jnp.imag(V[0]), "E": jnp.abs(jnp.imag(V[0]))}
    dt = F0.dtype
    terms = [jnp.asarray(w, dt) * V[s] for s, w in enumerate(stencil.weights)]
    center = stencil.center_weight * F0
    S = functools.reduce(jnp.add, terms) + center
    E = functools.reduce(jnp.add, [jnp.abs(t) for t in terms]) + jnp.abs(center)
    return {"S": S, "E": E}


def read_ladder(raw, stencil: Stencil, levels: int):
    """Estimates on the ladder and their analysis (``ladder.analyze``) per channel.

    Inside a trace (``step="auto"``, a sweep under the user's jit or vmap) it is traced with
    ``jax.numpy``, jitted on its own (static: stencil, levels; the shapes). Called with
    concrete arrays (an eager ``fdjax.sweep``) it runs in NumPy on the host: the same code and
    the same numbers (``ladder`` says which bits may differ), and no XLA program to compile
    (compiling the analysis took seconds, its run on the host takes milliseconds).

    Returns:
        ``per_channel`` (arrays [M, O]) and ``per_step`` (arrays [K, M, O]) dicts: NumPy
        arrays when called eagerly.
    """
    if is_traced(raw):
        return _read_ladder_jit(raw, stencil, levels)
    host = jax.device_get(raw)
    with np.errstate(all="ignore"):  # NaN and inf are data here
        return _read_ladder(host, stencil, levels, np)


def _read_ladder(raw, stencil: Stencil, levels: int, xp):
    """``read_ladder`` against the array namespace ``xp`` (``jax.numpy`` or ``numpy``)."""
    V, F0, h = raw["V"], raw["F0"], raw["h"]
    _, K, M, n_out = V.shape
    eps = float(raw["eps"]) if xp is np else raw["eps"]  # a Python float keeps 16-bit values 16-bit
    valid = xp.all(xp.isfinite(V), axis=0) & xp.isfinite(F0)
    hc = xp.broadcast_to(h[:, :, None], valid.shape)
    # divided by h where valid (1 elsewhere): XLA rewrites a division by a broadcast as a
    # product with its reciprocal, which rounds differently; the masked h is no broadcast
    D = raw["S"] / ipow(xp.where(valid, hc, 1.0), stencil.derivative)
    e_model = ROUNDOFF_ULPS * eps * raw["E"]
    flat = lambda a: a.reshape((K, M * n_out))  # noqa: E731
    gap = None
    vp = vm = None  # V at the offsets +1 and -1 when the stencil has both (the kink test)
    sided = _one_sided_offsets(stencil)
    if sided is not None:
        w = np.asarray(stencil.weights)
        vp, vm = V[sided[0]], V[sided[1]]
        g_model = ROUNDOFF_ULPS * eps * (xp.abs(vp) + 2 * xp.abs(F0) + xp.abs(vm))
        g_scale = math.sqrt(6.0) / math.sqrt(float(np.sum(w**2)) + stencil.center_weight**2)
        gap = (flat(vp - 2 * F0 + vm), flat(g_model), g_scale)
    out = analyze(flat(D), flat(hc), flat(e_model), flat(valid), stencil, levels=levels, gap=gap, xp=xp)

    per_channel = {
        k: out[k].reshape(M, n_out)
        for k in ("estimate", "error", "step", "status", "level", "order", "noise")
    }
    if vp is not None and vm is not None:  # sided is not None
        k_at = out["kink_index"].reshape(M, n_out)
        pick = lambda a: xp.take_along_axis(a, k_at[None], 0)[0]  # noqa: E731
        hk = pick(hc)
        per_channel["slope_plus"] = (pick(vp) - F0) / hk
        per_channel["slope_minus"] = (F0 - pick(vm)) / hk
    else:
        per_channel["slope_plus"] = per_channel["slope_minus"] = xp.full((M, n_out), xp.nan, h.dtype)
    per_step = {k: out[k].reshape(K, M, n_out) for k in ("roundoff", "differences", "significant", "orders")}
    per_step["estimates"] = xp.where(valid, D, xp.nan)
    return {"per_channel": per_channel, "per_step": per_step}


#: The analysis in JAX, jitted on its own: traced into the caller's program under a trace.
_read_ladder_jit = WorkJit(functools.partial(_read_ladder, xp=jnp), static_argnames=("stencil", "levels"))


def split_channels(a, f0, sizes):
    """[M, O] -> the output pytree with each leaf [M, *leaf_shape]."""
    leaves, treedef = jax.tree_util.tree_flatten(f0)
    pieces, start = [], 0
    for leaf, n in zip(leaves, sizes, strict=True):
        pieces.append(a[:, start : start + n].reshape((a.shape[0],) + jnp.shape(leaf)))
        start += n
    return jax.tree_util.tree_unflatten(treedef, pieces)


def adaptive_basis(
    flat_fn,
    x,
    f0,
    stencil: Stencil,
    opts: Options,
    num_steps: int | None = None,
    layout=None,
    eps_work: float = 0.0,
) -> AdaptiveResult:
    """The adaptive step for every coordinate of x, in one engine call (traced).

    The helper behind ``step="auto"`` of ``fdjax.grad``/``jacobian``/``check_grad``: a
    geometric ladder of ``num_steps`` steps (``default_num_steps``: ratio 4 and 14 steps in
    float64, ratio 2 and 22 in float32) from 0.1·max(|x_i|, 1); per coordinate and output
    element the best estimate (plain or Richardson), its error estimate, the step and a ``Status`` bit mask.

    Args:
        flat_fn: function of the flat vector x [N]; output: a pytree of real arrays.
        x: the flat point.
        f0: ``flat_fn(x)``.
        stencil: a first-derivative stencil.
        opts: engine options.
        num_steps: ladder length (>= 3).
        layout: x's leaves and f of them (the engine's structure-aware plan), or None.
        eps_work: the eps f computes in where coarser than x's (``working_eps``): the ladder
            and the rounding model are that float's.

    Returns:
        ``AdaptiveResult`` whose fields have the output's structure with a leading N.
    """
    rel = default_relative_steps(x.dtype, num_steps, eps_work)
    raw, sizes = ladder_values(flat_fn, x, f0, stencil, opts, rel, 1.0, layout=layout, eps_work=eps_work)
    pc = read_ladder(raw, stencil, DEFAULT_LEVELS)["per_channel"]
    split = lambda a: split_channels(a, f0, sizes)  # noqa: E731
    return AdaptiveResult(
        estimate=split(pc["estimate"]),
        error_estimate=split(pc["error"]),
        step=split(pc["step"]),
        status=split(pc["status"]),
    )


def auto_diagnostics(f0, d):
    """What ``step="auto"`` reports to the host: f(x) finite, and per coordinate whether
    the estimate is finite (False only when every step of its ladder was non-finite)."""
    finite = [jnp.all(jnp.isfinite(a).reshape(a.shape[0], -1), axis=1) for a in jax.tree_util.tree_leaves(d)]
    return {"f0_finite": all_finite(f0), "auto_finite": functools.reduce(jnp.logical_and, finite)}


def raise_auto_nonfinite(fa, caller: str, diag) -> None:
    """NonFiniteError naming the first parameter whose whole ladder was non-finite (host side)."""

    if is_traced(diag["f0_finite"], diag["auto_finite"]):
        return
    if not bool(diag["f0_finite"]):
        raise NonFiniteError(f"{caller}: the function returned a non-finite value at the unperturbed point")
    ok = np.asarray(diag["auto_finite"])
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise NonFiniteError(
            f"{caller}(step='auto'): the function returned non-finite values at every step of the sweep "
            f"for parameter {element_name(fa, i)} ({int((~ok).sum())} of {ok.size} parameters); "
            "steps that give NaN/inf are skipped, but this parameter had none left"
        )
