"""Escalation: concerned measurements are taken again at other steps before a verdict.

After the first batches, a measurement is *concerned* when its outcome may be the step's
fault rather than the gradient's: a failure within ``SURE`` times its tolerance (those
within ``MARGINAL`` first) or with an analytic value ``WILD`` times the FD one, a
non-finite point, a kink, a tolerance too wide to resolve
the values (INCONCLUSIVE), or a pass whose tolerance is wider than ``WEAK`` of the values
(near the floating-point floor a better step may resolve a bug). Each is measured again
at h·m for every m of ``body.LADDER`` in one more engine batch, within a budget of
evaluations, the most concerning first. Then per measurement, among the first and the
ladder's:

- none resolved (PASS or FAIL): INCONCLUSIVE, with the first step's reason when it had one
  other than non-finite, else the most telling of the ladder's (unresolved, then kink, then
  non-finite);
- the resolved one with the smallest tolerance (the most precise) passes: PASS;
- it fails, another resolved step at least 4× larger or smaller fails too with an FD value
  that agrees with it within their tolerances, and no step whose tolerance is below the
  error passed: FAIL;
- a failure that such a pass contradicts: INCONCLUSIVE, kink (the FD value moves with the
  step: f is not smooth at these scales); any other unconfirmed failure: INCONCLUSIVE,
  unresolved.

A larger step counts only where its FD value agrees with the first step's (``merge``).
The bug term a − ∇f does not depend on the step, so a true bug fails at every step precise
enough to see it; a failure caused by the step (truncation, a kink crossed, round-off)
moves or vanishes with it. Runs on the host (NumPy) after the first batches.
"""

from __future__ import annotations

import numpy as np

from .model import Measurement
from .outcomes import CheckStatus, Reason


#: Failures within this many tolerances are re-measured first, then those within SURE;
#: beyond SURE a failure stands (no artefact of the step is that large), unless the
#: analytic value is more than WILD times the FD value: f far from linear at the step (a
#: parameter of 4e-8 in sin(1e7·p) moved by 5e-3) averages its slope away, by any factor.
MARGINAL = 4.0
SURE = 100.0
WILD = 100.0
#: A failure is confirmed by a step at least 2**CONFIRM_APART times larger or smaller: an
#: artefact that grows with the step (dense kinks crossed) differs that far apart.
CONFIRM_APART = 2.0
#: A pass whose tolerance exceeds this fraction of the values is re-measured.
WEAK = 1e-2
#: Escalation may spend at most max(MIN_BUDGET, BUDGET_FACTOR × the first batches) evaluations.
MIN_BUDGET = 4096
BUDGET_FACTOR = 1.0

# Priority of a concerned measurement (lower first); NOT_CONCERNED is left alone.
NOT_CONCERNED = 99
_REASON_PRIORITY = {Reason.NONFINITE: 2, Reason.UNRESOLVED: 3, Reason.KINK: 4}


def priority(meas: Measurement, valid) -> np.ndarray:
    """Per measurement: how concerning it is (0 first), ``NOT_CONCERNED`` to leave it."""
    status, reason = np.asarray(meas.status), np.asarray(meas.reason)
    err, tol = np.abs(np.asarray(meas.error)), np.asarray(meas.tolerance)
    big = np.maximum(np.abs(np.asarray(meas.analytic)), np.abs(np.asarray(meas.numeric)))
    a_ok = np.isfinite(np.asarray(meas.analytic))
    out = np.full(status.shape, NOT_CONCERNED, np.int32)
    wild = np.abs(np.asarray(meas.analytic)) > WILD * np.abs(np.asarray(meas.numeric))
    out[(status == CheckStatus.FAIL) & a_ok & ((err <= SURE * tol) | wild)] = 1
    out[(status == CheckStatus.FAIL) & a_ok & (err <= MARGINAL * tol)] = 0
    for r, p in _REASON_PRIORITY.items():
        out[(status == CheckStatus.INCONCLUSIVE) & (reason == r)] = p
    out[(status == CheckStatus.PASS) & (tol > WEAK * big)] = 5
    out[~np.asarray(valid, bool)] = NOT_CONCERNED
    return out


def choose(prio: np.ndarray, capacity: int) -> np.ndarray:
    """Indices of the concerned measurements to escalate: by priority, at most ``capacity``."""
    idx = np.flatnonzero(prio < NOT_CONCERNED)
    order = np.argsort(prio[idx], kind="stable")
    return idx[order][: max(int(capacity), 0)]


def merge(first: Measurement, ladder: Measurement, sel: np.ndarray, mults) -> Measurement:
    """``first`` with the measurements ``sel`` decided among themselves and their ladder.

    ``ladder`` holds ``len(mults)`` measurements per selected item, step-major (item s at
    step k is row k·len(sel) + s), taken at ``mults[k]`` times the first step. A larger step
    counts only where the first measurement was smooth and finite and the two FD values
    agree within their tolerances: far from x a truncation estimate from h and 2h can be
    fooled (a period of sin crossed), and a step that changes the derivative is no evidence.
    """
    if sel.size == 0:
        return first
    s, steps = sel.size, len(mults)
    fields = Measurement._fields
    cand = {
        f: np.concatenate(
            [np.asarray(getattr(first, f))[sel][None], np.asarray(getattr(ladder, f)).reshape(steps, s)]
        )
        for f in fields
    }  # [1 + steps, s]
    status, reason = cand["status"], cand["reason"]
    resolved = (status == CheckStatus.PASS) | (status == CheckStatus.FAIL)
    larger = np.concatenate([[False], np.asarray(mults) > 1])[:, None]
    smooth = (
        (status[0] == CheckStatus.PASS) | (status[0] == CheckStatus.FAIL) | (reason[0] == Reason.UNRESOLVED)
    )
    near = np.abs(cand["numeric"] - cand["numeric"][0]) <= cand["tolerance"] + cand["tolerance"][0]
    resolved &= ~larger | (smooth[None, :] & near)
    # A ladder step at which f did not change at all is no evidence: the step was below an
    # ulp of x, or below the resolution f computes in (bfloat16 activations inside f).
    smaller = (np.asarray(mults) < 1)[:, None]
    still = cand["numeric"][1:] == 0
    resolved[1:] &= ~(still & (smaller | (cand["analytic"][1:] == 0)))
    tol = np.where(resolved, cand["tolerance"], np.inf)
    best = np.argmin(tol, axis=0)
    cols = np.arange(s)
    n_res = resolved.sum(axis=0)
    best_status = status[best, cols]
    # A failure counts when another step fails too with an FD value that agrees with it: a
    # bug (a − ∇f) is the same at every step, an artefact of the step (kinks crossed, a
    # truncation estimate fooled) moves with it.
    numeric, tolerance = cand["numeric"], cand["tolerance"]
    agree = np.abs(numeric - numeric[best, cols]) <= tolerance + tolerance[best, cols]
    ratio = np.abs(cand["step"]) / np.maximum(np.abs(cand["step"][best, cols]), np.finfo(np.float64).tiny)
    apart = np.abs(np.log2(np.where(ratio > 0, ratio, 1.0))) >= CONFIRM_APART
    others = resolved & (status == CheckStatus.FAIL) & agree & apart
    others[best, cols] = False
    # ... and when no step that could have seen an error that large passed: a pass with a
    # tolerance below |e| contradicts the failure (the error moves with the step).
    big_e = np.abs(cand["error"][best, cols])
    contradicted = (resolved & (status == CheckStatus.PASS) & (tolerance < big_e)).any(axis=0)
    fail = (n_res > 0) & (best_status == CheckStatus.FAIL) & others.any(axis=0) & ~contradicted
    passed = (n_res > 0) & (best_status == CheckStatus.PASS)
    # Unresolved everywhere: the most telling reason among the candidates.
    rank = np.where(status == CheckStatus.INCONCLUSIVE, np.vectorize(_rank)(reason), 0)
    first_why = (status[0] == CheckStatus.INCONCLUSIVE) & (reason[0] != Reason.NONFINITE)
    pick = np.where(n_res > 0, best, np.where(first_why, 0, np.argmax(rank, axis=0)))
    new_reason = np.where(
        fail | passed,
        Reason.NONE,
        np.where(contradicted, Reason.KINK, np.where(n_res > 0, Reason.UNRESOLVED, reason[pick, cols])),
    )
    new_status = np.where(
        fail, CheckStatus.FAIL, np.where(passed, CheckStatus.PASS, CheckStatus.INCONCLUSIVE)
    )
    out = {}
    for f in fields:
        arr = np.array(getattr(first, f), copy=True)
        arr[sel] = cand[f][pick, cols]
        out[f] = arr
    out["status"][sel] = new_status.astype(np.int8)
    out["reason"][sel] = new_reason.astype(np.int8)
    return Measurement._make(out[f] for f in fields)


def _rank(reason) -> int:
    return {Reason.UNRESOLVED: 3, Reason.KINK: 2, Reason.NONFINITE: 1}.get(Reason(int(reason)), 0)
