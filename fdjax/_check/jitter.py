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
magnitude in [0.5, 1.5); a few ulps of every coordinate, so every rounding inside f changes
while f's smooth part does not): the FD value D_k at b_k with the measurement's own step,
and the rule under test A_k at b_k. The spread of {D, D_1, …, D_K} is D's rounding, that of
{A_1, …, A_K} the analytic side's (A at x itself is left out: a rule wrong at x alone,
right a few ulps away, is a bug). They replace the model's round-off and AD terms where
larger, and the measurement is judged again with the check's margin: a failure within the
measured rounding becomes PASS where the widened tolerance still resolves the values,
else INCONCLUSIVE (unresolved). For a smooth, well-conditioned f the spreads are a few
ulps of D and A, far below the model's terms, and nothing changes; a bug is the same at
every base, so it still fails.

At most ``MAX_ITEMS`` failures are tested, the most marginal first, within the escalation
budget; the rest stand. Not for the complex step (no difference of f values). Runs on the
host (NumPy).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .model import RESOLUTION, Measurement
from .outcomes import CheckStatus, Reason

#: Bases at which each failure is measured again.
JITTERS = 4
#: Each coordinate moves by up to this many eps·|x_i| (random sign and magnitude).
ULPS = 4.0
#: ... and the step by a factor 1 + STRETCH·s_k (s_k a random sign times [0.5, 1.5)).
STRETCH = 1 / 8
#: The tolerance grows by this many times the measured spreads (each the range of a few
#: samples, about 2.3 standard deviations of the rounding: the margin applied to them).
FACTOR = 3.0
#: At most this many failures are tested.
MAX_ITEMS = 512


def candidates(meas: Measurement, valid) -> np.ndarray:
    """err/tol of the failures to test (inf for the others): every finite failure."""
    status = np.asarray(meas.status)
    err, tol = np.abs(np.asarray(meas.error)), np.asarray(meas.tolerance)
    ok = (
        np.asarray(valid, bool)
        & (status == CheckStatus.FAIL)
        & np.isfinite(np.asarray(meas.analytic))
        & np.isfinite(np.asarray(meas.numeric))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, err / np.where(tol > 0, tol, np.finfo(np.float64).tiny), np.inf)


class Judged(NamedTuple):
    meas: Measurement  # with the failures that the measured rounding explains judged again
    hit: np.ndarray  # the positions in ``sel`` explained
    spread: float  # the largest measured rounding (D's plus A's) among them


def judge(meas: Measurement, sel: np.ndarray, fd: np.ndarray, rule: np.ndarray, margin: float) -> Judged:
    """The failures ``sel`` of ``meas`` judged again with the rounding measured at the
    jittered bases (module doc); ``fd`` and ``rule`` [JITTERS, len(sel)] are D_k and A_k."""
    fd, rule = np.asarray(fd, np.float64), np.asarray(rule, np.float64)
    d0 = np.asarray(meas.numeric, np.float64)[sel]
    a0 = np.asarray(meas.analytic, np.float64)[sel]
    ok = np.all(np.isfinite(fd), axis=0) & np.all(np.isfinite(rule), axis=0)
    s_d = np.ptp(np.concatenate([d0[None], fd]), axis=0)
    s_a = np.ptp(rule, axis=0)
    roundoff = np.asarray(meas.roundoff, np.float64)[sel] + FACTOR * s_d / margin
    ad = np.asarray(meas.ad_rounding, np.float64)[sel] + FACTOR * s_a / margin
    tol = margin * (np.asarray(meas.truncation, np.float64)[sel] + roundoff + ad)
    hit = np.flatnonzero(ok & (np.abs(d0 - a0) <= tol))
    if hit.size == 0:
        return Judged(meas, hit, 0.0)
    rows = sel[hit]
    resolved = RESOLUTION * tol[hit] < np.maximum(np.abs(a0[hit]), np.abs(d0[hit]))
    fields = {
        f: np.array(getattr(meas, f), copy=True)
        for f in ("status", "reason", "tolerance", "roundoff", "ad_rounding")
    }
    fields["status"][rows] = np.where(resolved, CheckStatus.PASS, CheckStatus.INCONCLUSIVE)
    fields["reason"][rows] = np.where(resolved, Reason.NONE, Reason.UNRESOLVED)
    fields["tolerance"][rows] = tol[hit]
    fields["roundoff"][rows] = roundoff[hit]
    fields["ad_rounding"][rows] = ad[hit]
    out = Measurement(**{**meas._asdict(), **fields})
    return Judged(out, hit, float((s_d + s_a)[hit].max()))
