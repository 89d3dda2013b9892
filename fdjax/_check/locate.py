"""Bug localisation by bisection (group testing) over failing directional checks.

A directional check along v restricted to a segment S = [lo, hi) of the flat vector measures
e(S) = Σ_{i∈S} (∇f − a)_i·v_i. Starting from the failing directions, every active segment is
split in two halves, both halves are measured along the *same* direction (same random stream
index, so e(left) + e(right) = e(S)) and the worst failing halves are kept. After
ceil(log2 N) levels every active segment is one coordinate, which is then confirmed
element-wise with the full error model. With ``width`` active segments the cost is
2·width·K evaluations per level (K = 4 offsets for central): O(width·log N), all traced (one
engine call per level inside a ``lax.fori_loop``), skipped by ``lax.cond`` when no
direction failed.

Kinks: a segment of a ReLU or max-pool network moved along a direction often crosses a kink
within ±2h, and a kink is neither a pass nor a fail. Each lineage carries a step scale: 1, or
FINE when its starting direction was judged at FINE·h. A lineage at scale 1 whose halves
are kinks and not failures is measured again, undivided, at FINE·h on the next level (a
*retry*, ranked below every failing half); RETRY_LEVELS extra levels leave room for that.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .model import Measurement, check_offsets
from .outcomes import CheckStatus
from .rows import (
    FINE,
    DirectionRows,
    Linear,
    basis_samples,
    direction_samples,
    measure_samples,
)
from .._engine import Options
from .._fd import Stencil


#: Extra bisection levels, for lineages that retry a segment at the fine step.
RETRY_LEVELS = 2
#: Rank of a retry among the candidates of a level: below any failing half (ratio > 1).
_RETRY_SCORE = 0.5


def levels_for(max_size: int) -> int:
    """Bisection levels that reduce a segment of ``max_size`` coordinates to one, plus
    RETRY_LEVELS for retries at the fine step (none for a single coordinate)."""
    base = max(0, math.ceil(math.log2(max(max_size, 1))))
    return base + RETRY_LEVELS if base else 0


def locate_evaluations(width: int, levels: int, stencil: Stencil) -> int:
    """f evaluations of one bisection run plus the element-wise confirmation."""
    k = len(check_offsets(stencil))
    return levels * (2 * width * k + 2) + width * k + 2


def _score(meas: Measurement, ok):
    t = meas.tolerance
    ratio = jnp.abs(meas.error) / jnp.where(t > 0, t, 1)
    ratio = jnp.where(t > 0, ratio, jnp.inf)
    return jnp.where(ok & (meas.status == CheckStatus.FAIL), ratio, -jnp.inf)


def locate(
    fn,
    x,
    lin: Linear,
    seed,
    along,
    tangent,
    start: DirectionRows,
    start_meas: Measurement,
    *,
    start_valid,
    start_h,
    rel,
    h_elem,
    stencil: Stencil,
    sigma,
    margin: float,
    opts: Options,
    width: int,
    fa=None,
    eps_work: float = 0.0,
):
    """Bisect the ``width`` worst failing directions of ``start`` down to single coordinates.

    ``start_meas`` judged the start directions, measured at the steps ``start_h`` (where
    ``start_meas.step`` is smaller, the fine fallback was judged). Returns (ran, idx,
    active, samples): whether any direction failed, the located flat
    indices [width], which of them are real, and their element-wise ``Samples`` (to be
    judged by the error model like any element).
    """
    eps_ad = float(jnp.finfo(x.dtype).eps)
    levels = levels_for(x.shape[0])
    score0 = _score(start_meas, start_valid)
    # a starting direction judged at FINE·h (a kink at h) is bisected at FINE·h
    scale0 = jnp.where(start_meas.step < start_h, FINE, 1.0).astype(x.dtype)
    start = start.traced()  # indexed with the traced positions of the worst directions
    m0 = start.size
    if m0 < width:
        pad = width - m0
        score0 = jnp.concatenate([score0, jnp.full((pad,), -jnp.inf, score0.dtype)])
        scale0 = jnp.concatenate([scale0, jnp.ones((pad,), scale0.dtype)])
        start = DirectionRows.concat([start, DirectionRows(*(jnp.zeros(pad, jnp.int32) for _ in range(4)))])
    top, sel = jax.lax.top_k(score0, width)
    init = (start.kind[sel], start.index[sel], start.lo[sel], start.hi[sel], scale0[sel], top > -jnp.inf)
    ran = jnp.any(init[-1])

    def level(_, state):
        kind, index, lo, hi, scale, active = state
        size = hi - lo
        mid = jnp.where(size > 1, lo + size // 2, hi)
        rows = DirectionRows.concat(
            [DirectionRows(kind, index, lo, mid), DirectionRows(kind, index, mid, hi)]
        )
        scale2 = jnp.concatenate([scale, scale])
        samples = direction_samples(
            fn, x, lin, seed, along, tangent, rows, rel * scale2, stencil=stencil, opts=opts, fa=fa
        )
        meas = measure_samples(samples, sigma, stencil, margin, eps_ad, eps_work=eps_work)
        score = _score(meas, samples.valid & jnp.concatenate([active, active]))
        # a lineage at scale 1 with no failing half but a kinked one: retry it at FINE·h
        fails = (score > -jnp.inf).reshape(2, -1).any(axis=0)
        kinked = (meas.kink & samples.valid).reshape(2, -1).any(axis=0)
        retry = active & (scale == 1.0) & ~fails & kinked
        cand = DirectionRows.concat([rows, DirectionRows(kind, index, lo, hi)])
        cscale = jnp.concatenate([scale2, jnp.full_like(scale, FINE)])
        score = jnp.concatenate([score, jnp.where(retry, _RETRY_SCORE, -jnp.inf).astype(score.dtype)])
        # Two lineages that reached the same segment follow it once; the slot is freed.
        order = jnp.argsort(-score)
        lo_s, hi_s, ok_s = cand.lo[order], cand.hi[order], score[order] > -jnp.inf
        same = (lo_s[:, None] == lo_s[None, :]) & (hi_s[:, None] == hi_s[None, :]) & ok_s[None, :]
        dup = jnp.any(jnp.tril(same, -1), axis=1)
        score = score.at[order].set(jnp.where(dup, -jnp.inf, score[order]))
        best, pick = jax.lax.top_k(score, width)
        # a segment already down to one coordinate stays (later levels re-measure it)
        return cand.kind[pick], cand.index[pick], cand.lo[pick], cand.hi[pick], cscale[pick], best > -jnp.inf

    def run(state):
        kind, index, lo, hi, _, active = jax.lax.fori_loop(0, levels, level, state)
        idx = jnp.where(active, lo, 0).astype(jnp.int32)
        return idx, active, basis_samples(fn, x, lin.at(idx), idx, h_elem[idx], stencil, opts, fa=fa)

    def skip(state):
        shapes = jax.eval_shape(run, state)
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    idx, active, samples = jax.lax.cond(ran, run, skip, init)
    return ran, idx, active, samples
