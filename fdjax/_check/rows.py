"""The engine batches of a gradient check: element rows, direction rows and noise probes.

Each ``*_samples`` function builds rows and runs ONE ``_engine.evaluate`` call; the values
(``Samples``) go through the error model (``measure_samples``) later, in the aggregation
body. Directions are generated inside the batch from a seed (random Rademacher signs,
``random``), from the analytic vector (gradient-aligned) or from a user tangent,
restricted to coordinates lo <= i < hi, so a segment of a leaf, a leaf or the whole vector
are all one row.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import _engine
from .random import rademacher
from .model import Measurement, check_offsets, measure, rounding_bound
from .._engine import Options
from .._fd import Stencil

if TYPE_CHECKING:
    from .._pytree import FlatArgs


#: Arrays on the device (in a traced batch) or on the host (``jax.device_get``: the judging
#: runs in NumPy; a part with nothing measured is built there directly).
Values = jax.Array | np.ndarray


class VectorSource(enum.IntEnum):
    """Where a row's perturbation vector comes from (the engine rows' ``kind``): a random
    stream, the analytic gradient, the caller's tangent, or a noise probe. Not an outcome:
    a result's directions are classified by ``DirectionKind``."""

    RANDOM = 0
    ALONG = 1
    TANGENT = 2
    PROBE = 3


#: Probe pairs f(x ± δ) with δ_i = PROBE_SCALE·eps·|x_i|·r_i (r Rademacher; |x_i| → 1 at 0).
NUM_PROBES = 4
PROBE_SCALE = 4.0
PROBE_INDEX0 = 1 << 30
#: Directions are also measured at FINE·h; where f is not smooth within ±2h of x (a kink:
#: ReLU, max-pool and clip boundaries that a long direction crosses) but is within ±2·FINE·h,
#: the fine measurement is judged instead of leaving the direction out.
FINE = 0.125


@dataclasses.dataclass(frozen=True)
class Linear:
    """The analytic side as a linear functional of a displacement δ.

    ``vector`` is the analytic gradient-like vector a (so L(δ) = a·δ) or None when only a
    JVP is available (``check_jvp`` in directional modes); then ``jvp(δ)`` gives L(δ).
    """

    vector: jax.Array | None
    jvp: Callable | None = None

    def __call__(self, d):
        if self.vector is not None:
            # outside the direction's support a is not looked at: an inf there is not inf·0 = NaN
            a = jnp.where(d != 0, self.vector, jnp.zeros_like(self.vector))
            return jnp.vdot(a, d), jnp.vdot(jnp.abs(a), jnp.abs(d))
        assert self.jvp is not None  # a Linear has a vector or a jvp
        val = self.jvp(d)
        return val, jnp.abs(val)

    def at(self, idx):
        """a_i for the flat indices ``idx`` (via batched JVPs when there is no vector)."""
        if self.vector is not None:
            return self.vector[idx]
        n, jvp = self._n, self.jvp
        assert jvp is not None  # a Linear has a vector or a jvp

        def one(i):
            return jvp(jax.nn.one_hot(i, n, dtype=self._dtype))

        batch = int(max(1, min(idx.shape[0], (1 << 22) // max(n, 1))))
        return jax.lax.map(one, idx, batch_size=batch)

    _n: int = 0
    _dtype: object = None


@dataclasses.dataclass(frozen=True)
class DirectionPerturbation:
    """x + coeff·v restricted to lo <= i < hi, v chosen by the row's ``kind``.

    Random directions are Rademacher signs times max(|x_i|, 1), the scale of the per-element
    step, so that parameters of very different magnitudes each move in proportion. Noise
    probes are Rademacher signs times |x_i| (1 where x_i = 0): a few ulps of each coordinate,
    never an absolute move that is large next to a tiny parameter (4e-8 moved by 5e-7 in
    ``sin(1e7·p)`` is a change of f, not noise).
    """

    seed: jax.Array  # uint32 seed of the random directions (``random``)
    along: jax.Array | None  # [N] analytic vector (None when unavailable)
    tangent: jax.Array | None  # [N] user tangent (None when none)

    def __call__(self, x, row):
        coeff = row["coeff"].astype(x.dtype)
        return jnp.where(coeff == 0, x, x + coeff * self.vector(x, row))

    def vector(self, x, row):
        """v of the row (``kind``, ``index``, ``lo``, ``hi``), zero outside [lo, hi)."""
        n = x.shape[0]
        kind = row["kind"]
        ax = jnp.abs(x)
        scale = jnp.where(kind == VectorSource.PROBE, jnp.where(ax > 0, ax, 1), jnp.maximum(ax, 1))
        v = rademacher(self.seed, row["index"], n, x.dtype) * scale
        if self.along is not None:
            v = jnp.where(kind == VectorSource.ALONG, self.along.astype(x.dtype), v)
        if self.tangent is not None:
            v = jnp.where(kind == VectorSource.TANGENT, self.tangent.astype(x.dtype), v)
        i = jnp.arange(n, dtype=jnp.int32)
        return jnp.where((i >= row["lo"]) & (i < row["hi"]), v, jnp.zeros_like(v))


_ROW_FIELDS = ("kind", "index", "lo", "hi")


@dataclasses.dataclass(frozen=True)
class DirectionRows:
    """M directions: kind, stream index and support [lo, hi) per direction (int32 arrays).

    NumPy arrays when known at trace time (every check's own directions): the rows' table and
    the segments' norms are then built on the host and the program gets constants, not the
    operations that would compute them (fewer to trace, lower and compile). Traced
    (``jax.Array``) where the program computes them (the bisection of ``locate``).
    """

    kind: Values
    index: Values
    lo: Values
    hi: Values

    @property
    def size(self) -> int:
        return int(self.kind.shape[0])

    @property
    def static(self) -> bool:
        return all(isinstance(getattr(self, f), np.ndarray) for f in _ROW_FIELDS)

    def traced(self) -> DirectionRows:
        """The same rows as ``jax.Array`` (to index with traced positions)."""
        return DirectionRows(*(jnp.asarray(getattr(self, f)) for f in _ROW_FIELDS))

    def take(self, pos) -> DirectionRows:
        """The rows at ``pos`` (NumPy stays NumPy for host positions)."""
        rows = self if isinstance(pos, np.ndarray) and self.static else self.traced()
        return DirectionRows(*(getattr(rows, f)[pos] for f in _ROW_FIELDS))

    def tile(self, m: int) -> DirectionRows:
        xp = np if self.static else jnp
        return DirectionRows(*(xp.tile(getattr(self, f), m) for f in _ROW_FIELDS))

    def table(self) -> dict:
        """The rows as engine rows (``DirectionPerturbation`` reads these fields)."""
        return {f: getattr(self, f) for f in _ROW_FIELDS}

    @staticmethod
    def concat(parts: list[DirectionRows]) -> DirectionRows:
        xp = np if all(p.static for p in parts) else jnp
        return DirectionRows(*[xp.concatenate([getattr(p, f) for p in parts]) for f in _ROW_FIELDS])


def _prefix(v):
    return jnp.concatenate([jnp.zeros((1,), v.dtype), jnp.cumsum(v)])


def direction_steps(x, rows: DirectionRows, along, tangent, rel):
    """Nominal step per direction: rel·max(‖x_S‖, 1)/‖v_S‖ (a relative move of x_S by rel).

    Returns (h, valid): valid is False for an empty direction (v_S = 0).
    """

    def seg(v):
        if v is None:
            return jnp.zeros(rows.lo.shape, x.dtype)
        c = _prefix(v * v)
        return jnp.sqrt(jnp.maximum(c[rows.hi] - c[rows.lo], 0))

    xs = seg(x)
    vn = seg(jnp.maximum(jnp.abs(x), 1))
    if along is not None:
        vn = jnp.where(rows.kind == VectorSource.ALONG, seg(along), vn)
    if tangent is not None:
        vn = jnp.where(rows.kind == VectorSource.TANGENT, seg(tangent), vn)
    valid = vn > 0
    h = rel * jnp.maximum(xs, 1) / jnp.where(valid, vn, 1)
    return h.astype(x.dtype), valid


class Samples(NamedTuple):
    """Raw values of one engine batch of M measurements (before the error model).

    F: f at the K offsets [K, M]; L: analytic first-order predictions a·δ [K, M]; B: |a|·|δ|
    [K, M]; h: nominal steps [M]; q: h_eff/h for basis rows (ones for directions); centers:
    f(x) twice [2]; valid: non-empty direction [M]; probes: the 2·NUM_PROBES probe values.
    """

    F: Values
    L: Values
    B: Values
    h: Values
    q: Values
    centers: Values
    valid: Values
    probes: Values


def probe_sigma(probes, f0, xp=jnp):
    """σ: max_p |(f(x+δ_p) + f(x−δ_p))/2 − f(x)| (the linear term cancels; what is left is noise)."""
    if probes.shape[0] == 0:
        return xp.zeros((), f0.dtype)
    r = (probes[:NUM_PROBES] + probes[NUM_PROBES:]) / 2 - f0
    return xp.max(xp.where(xp.isfinite(r), xp.abs(r), 0))


def measure_samples(
    s: Samples, sigma, stencil: Stencil, margin: float, eps_ad: float, xp=jnp, eps_work: float = 0.0
) -> Measurement:
    """The error model (``_check_model.measure``) applied to a batch of samples.

    ``eps_work``: the eps f computes in where coarser than its inputs' and outputs' dtypes
    (``inputs.working_eps``): the rounding of f's values and of the AD side is at least that.

    Samples with fine rows (``direction_samples(..., fine=True)``: 2K rows, the offsets at
    h then at FINE·h) are measured at both steps; a measurement that is a kink at h but
    smooth and finite at FINE·h is replaced by the fine one (its own error model: the
    round-off term is 1/FINE times larger, so the fine step is only a fallback).
    """
    offsets = check_offsets(stencil)
    k = len(offsets)
    eps_f = max(float(jnp.finfo(s.F.dtype).eps), eps_work)
    eps_ad = max(eps_ad, eps_work)
    f0 = s.centers[0]
    rho = rounding_bound(s.F, f0, sigma, eps_f, xp)
    coarse = measure(
        s.F[:k], f0, s.L[:k], s.B[:k], s.h, rho, stencil, offsets, eps_ad=eps_ad, margin=margin, xp=xp
    )
    if s.F.shape[0] == k:
        return coarse
    fine = measure(
        s.F[k:], f0, s.L[k:], s.B[k:], s.h * FINE, rho, stencil, offsets, eps_ad=eps_ad, margin=margin, xp=xp
    )
    use = coarse.kink & ~fine.kink & fine.finite
    return Measurement(*(xp.where(use, b, a) for a, b in zip(coarse, fine, strict=True)))


def direction_samples(
    fn,
    x,
    lin: Linear,
    seed,
    along,
    tangent,
    rows: DirectionRows,
    rel,
    *,
    stencil: Stencil,
    opts: Options,
    probes: bool = False,
    fine: bool = False,
    fa: FlatArgs | None = None,
    probe_eps: float = 0.0,
) -> Samples:
    """f along M directions (and, with ``probes``, the noise probes) in one engine call.

    With ``fine`` every direction is also evaluated at the offsets times FINE (F has 2K
    rows; ``measure_samples`` falls back to them where the step h crosses a kink).
    With ``fa`` (a ``FlatArgs``: the flat view of leaves of several dtypes), the analytic side
    predicts the displacement f actually sees, ``fa.quantize(x + δ) − x`` (each leaf's
    elements rounded to its dtype), and its rounding bound weighs each element by its own
    leaf's eps (a bfloat16 leaf's gradient is a bfloat16 number). ``probe_eps``: the eps f
    computes in where coarser than x's; the probes move x by that many ulps, since moves
    below f's own precision round away before they reach any of its arithmetic.
    """
    offsets = check_offsets(stencil)
    if fine:
        offsets = offsets + tuple(FINE * o for o in offsets)
    k, m = len(offsets), rows.size
    h, valid = direction_steps(x, rows, along, tangent, rel)
    dt = np.dtype(x.dtype)
    n = x.shape[0]
    # the directions at each offset, f(x) twice (coefficient 0 gives exactly x), the probes
    extra = [DirectionRows(*(np.zeros(2, np.int32) for _ in _ROW_FIELDS))]
    coeff = [(np.asarray(offsets, dt)[:, None] * h[None, :]).reshape(-1), np.zeros(2, dt)]
    if probes:
        p = NUM_PROBES
        eps = max(float(jnp.finfo(x.dtype).eps), probe_eps)
        probe_index = np.tile(PROBE_INDEX0 + np.arange(p, dtype=np.int32), 2)
        extra.append(
            DirectionRows(
                np.full(2 * p, VectorSource.PROBE, np.int32),
                probe_index,
                np.zeros(2 * p, np.int32),
                np.full(2 * p, n, np.int32),
            )
        )
        coeff.append(np.repeat(np.asarray([PROBE_SCALE * eps, -PROBE_SCALE * eps], dt), p))
    table = DirectionRows.concat([rows.tile(k), *extra]).table()
    table["coeff"] = jnp.concatenate(coeff)

    # a narrow leaf's gradient is rounded to its dtype on the way out: 2·eps_leaf·|a_i·δ_i|
    # on top of the model's 8·eps·|a_i·δ_i| (a quarter of the eps ratio)
    ratio = None if fa is None else fa.eps_ratio()
    eps_w = None if ratio is None else 1 + (ratio - 1) / 4

    def one(xp):
        if fa is None or eps_w is None:  # eps_w is None whenever fa is
            lv, lb = lin(xp - x)
            return fn(xp), lv, lb
        d = fa.quantize(xp) - x
        lv, lb = lin(d)
        lb = lin(d * eps_w)[1] if lin.vector is not None else lb * jnp.max(eps_w)
        return fn(xp), lv, lb

    vals, lvals, lbound = _engine.evaluate(one, x, DirectionPerturbation(seed, along, tangent), table, opts)
    F = vals[: k * m].reshape(k, m)
    fdt = F.dtype
    return Samples(
        F=F,
        L=lvals[: k * m].reshape(k, m).astype(fdt),
        B=lbound[: k * m].reshape(k, m).astype(fdt),
        h=h.astype(fdt),
        q=jnp.ones((m,), fdt),
        centers=vals[k * m : k * m + 2],
        valid=valid,
        probes=vals[k * m + 2 :],
    )


def basis_samples(
    fn,
    x,
    a_e,
    idx,
    h_e,
    stencil: Stencil,
    opts: Options,
    *,
    fa: FlatArgs | None = None,
    layout: _engine.Layout | None = None,
    static_idx: np.ndarray | None = None,
    leaf_of: np.ndarray | None = None,
) -> Samples:
    """f at x + s·h_i·e_i for the coordinates ``idx`` (steps ``h_e``) in one engine call.

    With ``layout`` (x's leaves and f of them) and either ``static_idx`` (the value of
    ``idx``, known when tracing: every element in full mode) or ``leaf_of`` (the static
    leaf of each element of a run-time ``idx``: subset mode draws so many per leaf) the
    rows go through the engine's structure-aware plan (``_engine.evaluate_coordinates``),
    leaf by leaf; the two rows at x itself then run as their own two-row plan.

    ``q`` = h_eff/h with h_eff = Σ_k w_k·δ_k the step the stencil actually took: the
    measurement divided by q is the element's FD derivative, comparable with a_i itself.
    δ_k = fl(x_i + s_k·h_i) − x_i; with ``fa`` (a ``FlatArgs`` of leaves of several dtypes)
    fl rounds to the coordinate's own leaf dtype, and the analytic rounding bound uses that
    leaf's eps.
    """
    offsets = check_offsets(stencil)
    k, m = len(offsets), int(idx.shape[0])
    offs = jnp.asarray(offsets, x.dtype)
    index = jnp.concatenate([jnp.tile(idx.astype(jnp.int32), k), jnp.zeros(2, jnp.int32)])
    coeff = jnp.concatenate([(offs[:, None] * h_e[None, :]).reshape(-1), jnp.zeros(2, x.dtype)])
    if layout is not None and (static_idx is not None or leaf_of is not None):
        where, leaves = (static_idx, None) if static_idx is not None else (idx, leaf_of)
        grid = _engine.evaluate_coordinates(fn, x, offs[:, None] * h_e[None, :], opts, layout, where, leaves)
        centers = _engine.evaluate(fn, x, _engine.Basis(), {"index": index[-2:], "coeff": coeff[-2:]}, opts)
        vals = jnp.concatenate([grid.reshape(-1), centers])
    else:
        vals = _engine.evaluate(fn, x, _engine.Basis(), {"index": index, "coeff": coeff}, opts)
    F = vals[: k * m].reshape(k, m)
    fdt = F.dtype
    xe = x[idx]
    moved = xe[None, :] + offs[:, None] * h_e[None, :]
    ratio = None if fa is None else fa.eps_ratio()
    eps_w = None if ratio is None else 1 + (ratio - 1) / 4  # as in direction_samples
    delta = (moved if fa is None or eps_w is None else fa.quantize(moved, idx)) - xe[None, :]
    a_e = a_e.astype(x.dtype)
    bound = jnp.abs(a_e)[None, :] * jnp.abs(delta)
    if eps_w is not None:
        bound = bound * eps_w[idx][None, :]
    pos = {o: i for i, o in enumerate(offsets)}
    heff = sum(w * delta[pos[s]] for s, w in zip(stencil.offsets, stencil.weights, strict=False))
    return Samples(
        F=F,
        L=(a_e[None, :] * delta).astype(fdt),
        B=bound.astype(fdt),
        h=h_e.astype(fdt),
        q=(heff / h_e).astype(fdt),
        centers=vals[k * m :],
        valid=jnp.ones((m,), bool),
        probes=jnp.zeros((0,), fdt),
    )
