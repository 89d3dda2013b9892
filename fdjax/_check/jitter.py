"""The jitter test: is a failure left standing the rounding of f at the perturbed points?

The error model bounds the rounding of one f value by eps·|f| (or the noise measured at x).
That is blind to cancellation inside f: where f is small but computed from large terms,
its rounding error is eps times the terms, not eps·|f|. A penalty 100·(Σx − 1)² at a
feasible x in float32 is 0, its gradient 0, but Σx rounds by ~eps, so f(x ± h·e_i) =
100·(±h + r_±)² with residues r_± of ~6e-8, and D = 100·(r_+ + r_−) ≈ 6e-6: a failure
at 60× a tolerance of 1e-7, confirmed at every step of the ladder (the residues do not
scale with h). The AD pass rounds the same sum in another program and gets exactly 0.

So each failure that escalation and the segment test left standing is measured again at
``JITTERS`` bases b_k = x + ``ULPS``·eps·|x|∘u_k (u_k random signs times a uniform
magnitude in [0.5, 1.5): a few ulps of every coordinate), with its step stretched by a
factor 1 + ``STRETCH``·s_k (s_k the same kind of number: not a power of two, so the rounding
of x_i ± h and of every sum it enters changes; the escalation ladder's 2^k·h keep the
mantissa and often the very same residues). At each base: the FD value D_k with that step
and the rule under test A_k. The spread (max − min) of D_k − A_k over the bases, and of
D − median(A_k) (the first FD value against the rule next to x), is the comparison's
rounding there. Where the gradient itself changes within a few ulps of x (large curvature:
the penalty's Hessian is 200·11ᵀ), D_k and A_k move together and their difference does
not; a bug is the same at every base, so the difference does not move either. A at x
itself is left out: a rule wrong at x alone, right a few ulps away, is a bug.

``FACTOR`` times the spread is the comparison's rounding: where it exceeds the round-off
term of the tolerance (margin times the modelled rounding) it takes its place, and the
measurement is judged again: PASS where the wider tolerance still resolves the values, else
INCONCLUSIVE (unresolved). For a smooth, well-conditioned f the spread is a few ulps, below
the model, and nothing changes. It replaces the modelled rounding rather than adding to it:
both measure the same rounding, and a failure the step sweep confirmed (its tolerance built
from the rounding the sweep observed) would otherwise get that rounding counted twice: a
float32 bias element 9% off, confirmed at 1.09x its swept tolerance, passed.

At most ``MAX_ITEMS`` failures are tested, the largest |D − A| first, within the escalation
budget. When every one tested was the rounding, the smaller ones not tested are INCONCLUSIVE
(unresolved), not FAIL: nothing confirms them and the larger ones were all rounding; when
any tested one stands, so do they. Not for the complex step (no difference of f values). Runs on the
host (NumPy).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .model import RESOLUTION, Measurement
from .outcomes import CheckStatus, Reason

#: Bases at which each failure is measured again.
JITTERS = 6
#: Each coordinate moves by up to this many eps·|x_i| (random sign and magnitude).
ULPS = 4.0
#: ... and the step by a factor 1 + STRETCH·s_k (s_k a random sign times [0.5, 1.5)).
STRETCH = 1 / 8
#: The tolerance grows by this many times the measured spread (the range of a few samples,
#: about 2 standard deviations of the rounding: the margin applied to it).
FACTOR = 3.0
#: At most this many failures are tested.
MAX_ITEMS = 512


def candidates(meas: Measurement, valid) -> np.ndarray:
    """−|D − A| of the failures to test (the largest first), inf for the others."""
    status = np.asarray(meas.status)
    ok = (
        np.asarray(valid, bool)
        & (status == CheckStatus.FAIL)
        & np.isfinite(np.asarray(meas.analytic))
        & np.isfinite(np.asarray(meas.numeric))
    )
    return np.where(ok, -np.abs(np.asarray(meas.error, np.float64)), np.inf)


def set_aside(meas: Measurement, sel: np.ndarray) -> Measurement:
    """The failures ``sel`` made INCONCLUSIVE (unresolved): not tested, while every larger
    failure tested was the rounding."""
    status, reason = np.array(meas.status, copy=True), np.array(meas.reason, copy=True)
    status[sel], reason[sel] = CheckStatus.INCONCLUSIVE, Reason.UNRESOLVED
    return Measurement(**{**meas._asdict(), "status": status, "reason": reason})


class Judged(NamedTuple):
    meas: Measurement  # with the failures that the measured rounding explains judged again
    hit: np.ndarray  # the positions in ``sel`` explained
    spread: float  # the largest measured spread of D_k − A_k among them


def judge(meas: Measurement, sel: np.ndarray, fd: np.ndarray, rule: np.ndarray, margin: float) -> Judged:
    """The failures ``sel`` of ``meas`` judged again with the rounding measured at the
    jittered bases (module doc); ``fd`` and ``rule`` [JITTERS, len(sel)] are D_k and A_k."""
    fd, rule = np.asarray(fd, np.float64), np.asarray(rule, np.float64)
    d0 = np.asarray(meas.numeric, np.float64)[sel]
    a0 = np.asarray(meas.analytic, np.float64)[sel]
    ok = np.all(np.isfinite(fd), axis=0) & np.all(np.isfinite(rule), axis=0)
    # D − A at each base, and D at x against the rule next to x (the median of the A_k)
    diffs = np.concatenate([fd - rule, (d0 - np.median(rule, axis=0))[None]])
    spread = np.ptp(diffs, axis=0)
    # the rounding measured replaces the modelled one where it is larger (it measures the
    # same thing: adding the two widened a swept tolerance that already held that rounding)
    roundoff = np.maximum(np.asarray(meas.roundoff, np.float64)[sel], FACTOR * spread / margin)
    ad = np.asarray(meas.ad_rounding, np.float64)[sel]
    tol = margin * (np.asarray(meas.truncation, np.float64)[sel] + roundoff + ad)
    hit = np.flatnonzero(ok & (np.abs(d0 - a0) <= tol))
    if hit.size == 0:
        return Judged(meas, hit, 0.0)
    rows = sel[hit]
    resolved = RESOLUTION * tol[hit] < np.maximum(np.abs(a0[hit]), np.abs(d0[hit]))
    fields = {f: np.array(getattr(meas, f), copy=True) for f in ("status", "reason", "tolerance", "roundoff")}
    fields["status"][rows] = np.where(resolved, CheckStatus.PASS, CheckStatus.INCONCLUSIVE)
    fields["reason"][rows] = np.where(resolved, Reason.NONE, Reason.UNRESOLVED)
    fields["tolerance"][rows] = tol[hit]
    fields["roundoff"][rows] = roundoff[hit]
    out = Measurement(**{**meas._asdict(), **fields})
    return Judged(out, hit, float(spread[hit].max()))
