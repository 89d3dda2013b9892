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
  that agrees with it within their tolerances, no step whose tolerance is below the error
  passed, and no resolved step has an FD value that disagrees with it beyond their
  tolerances: FAIL;
- a failure that such a pass or such a disagreeing step contradicts: INCONCLUSIVE, kink (the
  FD value moves with the step beyond its error bound: f is not smooth at these scales; a
  bug a − ∇f is the same at every step, so every resolved step sees it within its bound);
- a failure within ``MARGINAL`` times its tolerance, unconfirmed, where at least ``OUTVOTE``
  other resolved steps pass with errors nearer zero than to it: PASS, as the most precise
  of those passes (a bug would show at them too; the error moved with the step);
- any other unconfirmed failure: INCONCLUSIVE, unresolved.

An unconfirmed failure (INCONCLUSIVE, unresolved, its |e| above its tolerance), and then a
weak pass (its tolerance wider than ``WEAK`` of the values), is swept (``sweep_decide``, run
by ``host.sweep``; within the budget, and at least ``SWEEP_MIN_ITEMS`` items beyond it):
measured at ``SWEEP_MULTS`` times its step, which with each step's 2h values is a ladder of
steps a factor 2 apart, and that ladder of errors
e = D − A goes through the step sweep's analysis (``_fd.ladder.analyze``). It extrapolates e
(Richardson) inside an asymptotic window and bounds the result by the differences it
observed, where the model bounds round-off by its worst case: near the floating-point floor
the swept bound is far tighter (a float32 bias element whose gradient is 2e-3 of f ~ 1: model
tolerance 1.5e-4, swept bound 5e-6, so a 10% bug is resolved). It can only confirm: FAIL
when the estimate is trusted (a window or converged differences, noise near the eps model,
at least ``SWEEP_MIN_STEPS`` finite and smooth steps), exceeds ``margin`` times its bound plus
the AD rounding, and agrees with the failure it confirms; otherwise the measurement stays
INCONCLUSIVE (or PASS), and a trusted estimate of ``bases.LOW`` to ``margin`` times its bound
is handed to the neighbourhood test (module ``bases``, run after the segment and jitter tests).

A larger step counts only where its FD value agrees with the first step's (``merge``).
The bug term a − ∇f does not depend on the step, so a true bug fails at every step precise
enough to see it; a failure caused by the step (truncation, a kink crossed, round-off)
moves or vanishes with it. Runs on the host (NumPy) after the first batches.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import bases as _bases
from .._fd import Stencil
from .._fd.ladder import Status as SweepStatus
from .._fd.ladder import analyze
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
#: A marginal failure at the most precise step that no other step confirms is outvoted by
#: this many other resolved steps that pass with an error nearer zero than to it.
OUTVOTE = 2
#: A pass whose tolerance exceeds this fraction of the values is re-measured.
WEAK = 1e-2
#: Steps of the confirming sweep as multiples of the step: a factor 4 apart, so that with
#: each one's 2h values the ladder runs from 128h down to h/16 in factors of 2.
SWEEP_MULTS = (64.0, 16.0, 4.0, 1.0, 1 / 4, 1 / 16)
#: Items swept even when escalation spent the budget: the unconfirmed failures first, then
#: the weak passes.
SWEEP_MIN_ITEMS = 32
#: The sweep decides only with at least this many finite, smooth steps in its ladder.
SWEEP_MIN_STEPS = 4
#: Sweep diagnoses that leave its estimate untrusted (steps that were not finite or not
#: smooth are left out of its ladder beforehand).
_UNTRUSTED = SweepStatus.NO_WINDOW | SweepStatus.NOISY
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
    # ... and when every resolved step's FD value agrees with it: D = ∇f + (its FD error) at
    # every step, so two honest error bounds overlap whatever the bug; FD values further apart
    # mean a bound was fooled (a 2h/h truncation estimate that looks small at a step 12× the
    # parameter, across the kinks of a ReLU net: the case of a conv1 weight of 0.1 moved by 1.26)
    moved = (resolved & ~agree).any(axis=0)
    fail = (n_res > 0) & (best_status == CheckStatus.FAIL) & others.any(axis=0) & ~contradicted & ~moved
    passed = (n_res > 0) & (best_status == CheckStatus.PASS)
    # ... and a marginal failure there is outvoted by passes whose errors sit nearer zero than
    # to it: a bug would show at those steps too, within their (smaller) error bounds, so the
    # error moved with the step (dense ReLU kinks fool one step's truncation estimate). The
    # verdict is then the most precise of those passes.
    err = cand["error"]
    voters = resolved & (status == CheckStatus.PASS) & (np.abs(err) < np.abs(err - err[best, cols]))
    voters[best, cols] = False
    marginal = big_e <= MARGINAL * tolerance[best, cols]
    outvoted = (
        (n_res > 0)
        & (best_status == CheckStatus.FAIL)
        & ~fail
        & ~contradicted
        & marginal
        & (voters.sum(axis=0) >= OUTVOTE)
    )
    best = np.where(outvoted, np.argmin(np.where(voters, tolerance, np.inf), axis=0), best)
    passed |= outvoted
    # Unresolved everywhere: the most telling reason among the candidates.
    rank = np.where(status == CheckStatus.INCONCLUSIVE, np.vectorize(_rank)(reason), 0)
    first_why = (status[0] == CheckStatus.INCONCLUSIVE) & (reason[0] != Reason.NONFINITE)
    pick = np.where(n_res > 0, best, np.where(first_why, 0, np.argmax(rank, axis=0)))
    new_reason = np.where(
        fail | passed,
        Reason.NONE,
        np.where(
            contradicted | (moved & (best_status == CheckStatus.FAIL)),
            Reason.KINK,
            np.where(n_res > 0, Reason.UNRESOLVED, reason[pick, cols]),
        ),
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


def sweepable(meas: Measurement, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the measurements a sweep may turn into a FAIL, in two tiers: the failures
    escalation could not confirm (INCONCLUSIVE, unresolved, |e| above the tolerance), and
    the weak passes (a tolerance wider than ``WEAK`` of the values: a bug of that size would
    pass); each by |e|/tolerance, largest first; and that ratio of every measurement. The
    analytic value is finite."""
    status, reason = np.asarray(meas.status), np.asarray(meas.reason)
    err, tol = np.abs(np.asarray(meas.error)), np.asarray(meas.tolerance)
    big = np.maximum(np.abs(np.asarray(meas.analytic)), np.abs(np.asarray(meas.numeric)))
    ok = np.asarray(valid, bool) & np.isfinite(np.asarray(meas.analytic)) & (tol > 0)
    failed = ok & (status == CheckStatus.INCONCLUSIVE) & (reason == Reason.UNRESOLVED) & (err > tol)
    weak = ok & (status == CheckStatus.PASS) & (tol > WEAK * big)
    ratio = np.where(ok, err / np.where(tol > 0, tol, 1.0), 0.0)

    def ranked(mask):
        idx = np.flatnonzero(mask)
        return idx[np.argsort(-ratio[idx], kind="stable")]

    return ranked(failed), ranked(weak), ratio


class Near(NamedTuple):
    """Swept measurements whose trusted estimate is ``bases.LOW`` to ``margin`` times its
    bound (``ratio``): the neighbourhood test's candidates (``host.bases`` ranks them)."""

    items: np.ndarray
    estimate: np.ndarray
    ratio: np.ndarray


def sweep_decide(meas: Measurement, sel: np.ndarray, swept: Measurement, stencil: Stencil, margin: float):
    """``meas`` with the measurements ``sel`` (``sweepable``) made FAIL where their sweep
    confirms a failure (module doc), how many were, and the ``Near`` ones.

    ``swept`` holds ``len(SWEEP_MULTS)`` measurements per selected item, step-major. A
    confirmed failure reports the swept estimate: FD value A + e, error e, tolerance
    ``margin`` × (the swept bound + the AD rounding), the bound split into its truncation and
    round-off parts, and as its step that of the plain estimate with the smallest error bound.
    """
    if sel.size == 0:
        return meas, 0, Near(sel, np.zeros(0), np.zeros(0))
    k, s = len(SWEEP_MULTS), sel.size

    def grid(a):
        return np.asarray(a).reshape(k, s)

    h1 = np.abs(grid(swept.step))
    ok = grid(swept.finite) & ~grid(swept.kink)
    h = np.concatenate([2 * h1, h1])  # [2k, s]: D(2h) and D(h) at every step
    err = np.concatenate([grid(swept.error2), grid(swept.error)])
    rho_sum = np.concatenate([grid(swept.roundoff) * h1] * 2)  # Σ|w|·ρ: the round-off of Σ w f
    usable = np.concatenate([ok, ok]) & np.isfinite(err) & (h > 0)
    order = np.argsort(-h, axis=0, kind="stable")  # the sweep's ladder runs downwards

    def down(a):
        return np.take_along_axis(a, order, axis=0)

    h, err, rho_sum, usable = down(h), down(err), down(rho_sum), down(usable)
    with np.errstate(all="ignore"):
        r = analyze(err, h, rho_sum, usable, stencil, xp=np)
        status = np.asarray(r["status"])
        est, bound = np.asarray(r["estimate"]), np.asarray(r["error"])
        at = np.argmax(h == np.asarray(r["step"])[None], axis=0)  # the smallest step it used
        noise = np.minimum(np.take_along_axis(np.asarray(r["roundoff"]), at[None], 0)[0], bound)
        # The step reported (where the jitter test measures f's rounding next): the plain
        # estimate of the smallest error bound, twice its larger difference to a neighbour
        # plus its round-off bound (the sweep's fallback), where truncation and round-off
        # balance. The swept estimate itself may combine several steps (Richardson).
        dl = np.abs(np.where(np.isnan(r["differences"]), np.inf, r["differences"]))
        prev = np.concatenate([np.full_like(dl[:1], np.inf), dl[:-1]])
        spread = np.where(np.isinf(dl) | np.isinf(prev), np.minimum(dl, prev), np.maximum(dl, prev))
        score = np.where(usable, 2 * spread + np.asarray(r["roundoff"]), np.inf)
        steadiest = np.take_along_axis(h, np.argmin(score, axis=0)[None], 0)[0]
        ad = grid(swept.ad_rounding)[0]
        tol = margin * (bound + ad)
        e_first, tol_first = np.asarray(meas.error)[sel], np.asarray(meas.tolerance)[sel]
        trusted = (
            ((status & int(SweepStatus.CONVERGED)) != 0)
            & ((status & int(_UNTRUSTED)) == 0)
            & (usable.sum(axis=0) >= SWEEP_MIN_STEPS)
            & np.isfinite(tol)
            & (np.abs(est - e_first) <= tol_first + tol)
        )
        confirm = trusted & (np.abs(est) > tol)
        # below the margin but well above the bound: for the neighbourhood test (``bases``)
        ratio = np.abs(est) / (bound + ad)
        near = np.flatnonzero(trusted & ~confirm & (ratio > _bases.LOW))
        trunc = bound - noise
    near_items = Near(sel[near], est[near], ratio[near])
    hit = sel[confirm]
    if hit.size == 0:
        return meas, 0, near_items
    out = {f: np.array(v, copy=True) for f, v in meas._asdict().items()}
    analytic = out["analytic"][hit]
    sign = np.where(out["step"][hit] < 0, -1.0, 1.0)
    for f, v in (
        ("numeric", analytic + est[confirm]),
        ("error", est[confirm]),
        ("tolerance", tol[confirm]),
        ("truncation", trunc[confirm]),
        ("roundoff", noise[confirm]),
        ("step", sign * steadiest[confirm]),
    ):
        out[f][hit] = v
    out["status"][hit] = CheckStatus.FAIL
    out["reason"][hit] = Reason.NONE
    return Measurement._make(out[f] for f in Measurement._fields), int(hit.size), near_items
