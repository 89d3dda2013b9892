"""The segment test: is a confirmed failure the gradient's, or f's slope changing within the step?

A finite difference averages f's slope along its step. For a stencil with offsets o_k and
weights w_k (Σ w_k + w_0 = 0),

    D = Σ_k w_k·(f(x + o_k·h·v) − f(x))/h = ∫ K(s)·G(s) ds,   G(s) = ⟨∇f(x + s·h·v), v⟩,

with K(s) = Σ_k w_k on (0, o_k) and −w_k on (o_k, 0) (central: ½ on (−1, 1)), exactly, for
any f whose slope is G almost everywhere. Where f's slope changes within every step that
resolves f (a max over thousands of rows in float32: kinks far denser than any step above
the round-off floor), D agrees with itself at every step and not with G(0), the gradient at
x: escalation confirms a failure that is f's, not the rule's.

So a failure that escalation left standing is tested once more: the rule under test (the
same AD as the analytic side) is evaluated at ``NODES`` points along the measurement's own
step and integrated with K (trapezoid rule on each piece where K is constant), Ā. It is
f's slope changing within the step (INCONCLUSIVE, KINK) when

- |D − Ā| ≤ margin·(round-off + AD rounding) + Q (there is no truncation term: D is the
  integral), and
- that tolerance is below half of |D − A| (A the gradient at x): the test could have seen
  an error as large as the failure, and
- the median of the rule at x − δ, at x and at x + δ is within half of |A − Ā| of A, δ a
  few ulps of x's scale (``TINY``·eps·h₁/rel, h₁ the first step and rel the default
  relative step; at most a 64th of the step): the rule near x agrees with the rule at x (a
  rule wrong at x alone, right next to it, is a bug that the average would hide). A kink of
  f that close to x is improbable; one on one side only leaves the median at A.

The quadrature error Q is the larger of two estimates. |Ā − Ā₂|, Ā₂ the rule on every
other node, is the usual one where G is smooth (a few times too large there). Where G
jumps, it can be several times too small (a few large jumps land anywhere between nodes),
so Q is at least Σ_j |K_j|·Δs·|d_j − d̄_j|/2 over the intervals between nodes, d_j the
change of G across interval j and d̄_j the mean of its neighbours' (the smooth part): a
jump J inside an interval moves the trapezoid rule by at most |K|·Δs·|J|/2, and this counts
it twice; for smooth G it is O(Δs³·G'') per interval. Where the bound alone leaves the
test undecided (the FD value agrees with Ā, the rounding terms are below half the failure,
Q is not), the failure is tested again on ``FINE_NODES`` nodes: many small jumps cancel
within an interval, so the bound shrinks with the nodes' spacing.

Otherwise the failure stands. A wrong rule (a − ∇f ≠ 0 along the step) integrates to a wrong
difference, so a bug escapes only if its error averages to zero at the scale of the step.
Only failures within ``escalate.SURE`` tolerances are tested (beyond, no artefact of a step
is that large), the most marginal first: at most ``MAX_ITEMS``, and beyond ``MIN_ITEMS`` only
as many as the escalation budget pays for. Not for the complex step (not a difference of f
values). Runs on the host (NumPy).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import escalate as _esc
from .model import Measurement
from .outcomes import CheckStatus, Reason
from .._fd import Stencil

#: Points along each step at which the rule is evaluated.
NODES = 64
#: The rule is also evaluated at x ± δ, δ = TINY·eps·h₁/rel (a few ulps of x's scale), at
#: most MAX_TINY steps.
TINY = 8.0
MAX_TINY = 1 / 64
#: Failures the quadrature error alone left undecided are tested again on this many.
FINE_NODES = 512
#: At most this many failures are tested, and no more than the escalation budget pays for
#: (``NODES`` AD evaluations an item) beyond the first ``MIN_ITEMS`` (tested whatever the
#: budget: a float32 ReLU net crosses kinks at many elements); an AD evaluation counts as
#: this many of f.
MAX_ITEMS = 512
MIN_ITEMS = 32
AD_COST = 3


class Rule(NamedTuple):
    """The stencil's averaging kernel K discretized on nodes along the step."""

    nodes: tuple[float, ...]  # s_j in units of h, increasing
    fine: np.ndarray  # the trapezoid rule's weights K·w_j on every node
    coarse: np.ndarray  # the same rule on every other node
    jump: np.ndarray  # |K|·Δs/2 on each interval between consecutive nodes


def kernel(stencil: Stencil, nodes: int = NODES) -> Rule | None:
    """The ``Rule`` of the stencil's averaging kernel on about ``nodes`` intervals; None where
    an offset is not a whole number of steps (the pieces where K is constant would not fall
    on nodes)."""
    offs = np.asarray(stencil.offsets, np.float64)
    if np.any(offs != np.round(offs)):
        return None
    lo, hi = int(min(0.0, offs.min())), int(max(0.0, offs.max()))
    per = max(2, 2 * (nodes // (2 * (hi - lo))))  # nodes per unit step, even
    s = lo + np.arange((hi - lo) * per + 1) / per
    fine, coarse, jump = np.zeros(s.size), np.zeros(s.size), np.zeros(s.size - 1)
    for a in range(lo, hi):  # K is constant on (a, a + 1)
        mid = a + 0.5
        k = sum(w * (0 < mid < o) - w * (o < mid < 0) for o, w in zip(offs, stencil.weights, strict=True))
        j = (a - lo) * per
        fine[j : j + per + 1] += k * _trapezoid(per + 1) / per
        coarse[j : j + per + 1 : 2] += k * _trapezoid(per // 2 + 1) * 2 / per
        jump[j : j + per] = abs(k) / (2 * per)
    used = (fine != 0) | (coarse != 0)
    # an interval between used nodes that are not neighbours on the grid spans pieces where
    # K = 0 (nothing to integrate there)
    both = used[:-1] & used[1:]
    pos = np.flatnonzero(used)
    return Rule(
        tuple(float(v) for v in s[used]), fine[used], coarse[used], np.where(both, jump, 0.0)[pos[:-1]]
    )


def _trapezoid(n: int) -> np.ndarray:
    w = np.ones(n)
    w[[0, -1]] = 0.5
    return w


def candidates(meas: Measurement, valid) -> np.ndarray:
    """err/tol of the failures to test (inf for the others)."""
    status = np.asarray(meas.status)
    err, tol = np.abs(np.asarray(meas.error)), np.asarray(meas.tolerance)
    ok = (
        np.asarray(valid, bool)
        & (status == CheckStatus.FAIL)
        & np.isfinite(np.asarray(meas.analytic))
        & np.isfinite(np.asarray(meas.numeric))
        & (err <= _esc.SURE * tol)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, err / tol, np.inf)


def tiny_offsets(first_step, step, eps: float, rel: float) -> np.ndarray:
    """δ/h per item (module doc): TINY·eps·h₁/rel in units of the step h, at most MAX_TINY."""
    first, h = np.abs(np.asarray(first_step, np.float64)), np.abs(np.asarray(step, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = TINY * eps * first / (rel * h)
    return np.where(np.isfinite(s) & (s > 0), np.minimum(s, MAX_TINY), MAX_TINY)


def quadrature_error(g: np.ndarray, rule: Rule) -> np.ndarray:
    """Q per column of ``g`` [nodes, M] (module doc): the larger of |Ā − Ā₂| and the jumps'."""
    rich = np.abs(rule.fine @ g - rule.coarse @ g)
    if g.shape[0] < 2:
        return rich
    d = np.diff(g, axis=0)
    prev = np.concatenate([d[:1], d[:-1]])
    nxt = np.concatenate([d[1:], d[-1:]])
    jumps = rule.jump @ np.abs(d - 0.5 * (prev + nxt))
    return np.maximum(rich, jumps)


class Judged(NamedTuple):
    meas: Measurement  # with the failures explained made INCONCLUSIVE (KINK)
    hit: np.ndarray  # the positions in ``sel`` explained
    gap: float  # the largest |D − Ā| among them
    off: float  # the largest |A − Ā| among them
    undecided: np.ndarray  # positions in ``sel`` the quadrature error alone left undecided


def judge(
    meas: Measurement, sel: np.ndarray, slopes: np.ndarray, near_x: np.ndarray, rule: Rule, margin: float
) -> Judged:
    """The failures ``sel`` of ``meas`` that f's slope along the step explains (module doc);
    ``slopes`` [nodes, len(sel)] are the rule's G_j, ``near_x`` [2, len(sel)] the rule at
    x − δ and x + δ. A failure that agrees with Ā but whose tolerance, made wide by Q alone,
    is not below half of |D − A| is ``undecided``: finer nodes may decide it."""
    g = np.asarray(slopes, np.float64)
    d = np.asarray(meas.numeric, np.float64)[sel]
    a = np.asarray(meas.analytic, np.float64)[sel]
    mean = rule.fine @ g
    q = quadrature_error(g, rule)
    tol = margin * (np.asarray(meas.roundoff)[sel] + np.asarray(meas.ad_rounding)[sel]) + q
    gap = np.abs(d - mean)
    # the rule next to x must be near its value at x: a rule wrong at x alone is a bug the
    # average would hide (a kink of f on one side of x only leaves the median at A)
    near = np.median(np.concatenate([np.asarray(near_x, np.float64), a[None]]), axis=0)
    smooth_at_x = np.abs(a - near) <= 0.5 * np.abs(a - mean)
    rounding = tol - q
    agrees = np.isfinite(mean) & np.isfinite(q) & (gap <= tol) & smooth_at_x
    explained = agrees & (2.0 * tol < np.abs(d - a))
    undecided = np.flatnonzero(agrees & ~explained & (2.0 * rounding < np.abs(d - a)))
    hit = np.flatnonzero(explained)
    if hit.size == 0:
        return Judged(meas, hit, 0.0, 0.0, undecided)
    rows = sel[hit]
    status, reason, kink = (np.array(v, copy=True) for v in (meas.status, meas.reason, meas.kink))
    status[rows], reason[rows], kink[rows] = CheckStatus.INCONCLUSIVE, Reason.KINK, True
    out = Measurement(**{**meas._asdict(), "status": status, "reason": reason, "kink": kink})
    return Judged(out, hit, float(gap[hit].max()), float(np.abs(a - mean)[hit].max()), undecided)
