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

- |D − Ā| ≤ margin·(round-off + AD rounding) + Q, with Q = |Ā − Ā₂|, Ā₂ the rule on every
  other node (the usual estimate of the finer rule's error: a few times too large where G
  is smooth, of the right size where G is a staircase of many small jumps; there is no
  truncation term: D is the integral), and
- that tolerance is below half of |D − A| (A the gradient at x): the test could have seen
  an error as large as the failure, and
- the rule's median over the nodes within h/8 of x is within half of |A − Ā| of A: the
  rule near x agrees with the rule at x (a rule wrong at x alone, right a node away, is a
  bug that the average would hide).

Otherwise the failure stands. A wrong rule (a − ∇f ≠ 0 along the step) integrates to a wrong
difference, so a bug escapes only if its error averages to zero at the scale of the step.
Only failures within ``escalate.SURE`` tolerances are tested (beyond, no artefact of a step
is that large), at most ``MAX_ITEMS`` within the escalation budget, the most marginal first.
Not for the complex step (not a difference of f values). Runs on the host (NumPy).
"""

from __future__ import annotations

import numpy as np

from . import escalate as _esc
from .model import Measurement
from .outcomes import CheckStatus, Reason
from .._fd import Stencil

#: Points along each step at which the rule is evaluated.
NODES = 64
#: The rule's median over the nodes within this many steps of x stands for its value near x.
NEAR = 0.125
#: At most this many failures are tested; an AD evaluation counts as this many of f.
MAX_ITEMS = 16
AD_COST = 3


def kernel(stencil: Stencil) -> tuple[tuple[float, ...], np.ndarray, np.ndarray] | None:
    """(nodes s_j in units of h, the trapezoid rule's weights K_j·w_j on them, and those of
    the rule on every other node) for the stencil's averaging kernel; None where an offset
    is not a whole number of steps (the pieces where K is constant would not fall on nodes)."""
    offs = np.asarray(stencil.offsets, np.float64)
    if np.any(offs != np.round(offs)):
        return None
    lo, hi = int(min(0.0, offs.min())), int(max(0.0, offs.max()))
    per = max(2, 2 * (NODES // (2 * (hi - lo))))  # nodes per unit step, even
    s = lo + np.arange((hi - lo) * per + 1) / per
    fine, coarse = np.zeros(s.size), np.zeros(s.size)
    for a in range(lo, hi):  # K is constant on (a, a + 1)
        mid = a + 0.5
        k = sum(w * (0 < mid < o) - w * (o < mid < 0) for o, w in zip(offs, stencil.weights, strict=True))
        j = (a - lo) * per
        fine[j : j + per + 1] += k * _trapezoid(per + 1) / per
        coarse[j : j + per + 1 : 2] += k * _trapezoid(per // 2 + 1) * 2 / per
    used = (fine != 0) | (coarse != 0)
    return tuple(float(v) for v in s[used]), fine[used], coarse[used]


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


def judge(meas: Measurement, sel: np.ndarray, slopes: np.ndarray, rules, margin: float):
    """``meas`` with the failures ``sel`` that f's slope along the step explains made
    INCONCLUSIVE (KINK); ``slopes`` [nodes, len(sel)] are the rule's G_j. Returns (meas,
    the positions in ``sel`` changed, the largest |D − Ā| among them, the largest |A − Ā|)."""
    g = np.asarray(slopes, np.float64)
    d = np.asarray(meas.numeric, np.float64)[sel]
    a = np.asarray(meas.analytic, np.float64)[sel]
    nodes, fine, coarse = rules
    mean = fine @ g
    q = np.abs(mean - coarse @ g)
    tol = margin * (np.asarray(meas.roundoff)[sel] + np.asarray(meas.ad_rounding)[sel]) + q
    gap = np.abs(d - mean)
    # the rule near x must be near its value at x: a rule wrong at x alone (right a node
    # away) is a bug the average would hide
    near = np.median(g[np.abs(np.asarray(nodes)) <= NEAR], axis=0)
    smooth_at_x = np.abs(a - near) <= 0.5 * np.abs(a - mean)
    explained = np.isfinite(mean) & np.isfinite(q) & (gap <= tol) & (2.0 * tol < np.abs(d - a)) & smooth_at_x
    hit = np.flatnonzero(explained)
    if hit.size == 0:
        return meas, hit, 0.0, 0.0
    rows = sel[hit]
    status, reason, kink = (np.array(v, copy=True) for v in (meas.status, meas.reason, meas.kink))
    status[rows], reason[rows], kink[rows] = CheckStatus.INCONCLUSIVE, Reason.KINK, True
    out = Measurement(**{**meas._asdict(), "status": status, "reason": reason, "kink": kink})
    return out, hit, float(gap[hit].max()), float(np.abs(a - mean)[hit].max())
