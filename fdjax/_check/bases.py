"""The neighbourhood test: is a failure the sweep measured below its margin the same at other
points next to x?

Near the floating-point floor the step sweep resolves errors the first steps cannot, but it
confirms a failure only beyond ``margin`` times its bound: a float32 bias element whose rule
is 5% off (an error of 1.6e-4 on a gradient of 3.2e-3, f ~ 1.2) sits at 6.4× its swept
bound, and a lower margin would not separate it from correct functions that are not smooth
at the scale of the step: over the verdict corpus a correct float32 ReLU MLP reaches 7.6×
its bound, a correct model with bfloat16 activations 6.1×, a feasible penalty in float32
(its rounding cancels) 6.6×. Their FD errors are artefacts of where the kinks, the 16-bit
roundings or the cancelling terms fall around x.

A wrong rule differs from an artefact in one respect that can be measured: a − ∇f is a
property of the rule, the same (up to its smooth variation) at every point next to x, while
an artefact depends on exactly where x is. So a failure the sweep measured trusted and
consistent, at ``LOW`` to ``margin`` times its bound, is measured again at ``BASES`` bases
b_k = x + ``SPREAD``·h∘u_k (h the default step of every coordinate, u_k random signs times
a uniform magnitude in [0.5, 1.5)): every coordinate moves, so the kinks crossed, the
16-bit roundings and the cancelling residues all change. At each base, from the FD values
D_k(h) and D_k(2h) and the rule under test A_k at b_k, the Richardson-extrapolated error

    r_k = e_k(h) − (e_k(2h) − e_k(h)) / (2^p − 1),   e_k(s) = D_k(s) − A_k

(the truncation of order p removed, as the model's estimate does). A FAIL needs, over the
finite bases (at least ``MIN_BASES``):

- |mean r| > ``Z`` standard errors of the mean plus ``margin`` times the AD rounding: the
  same error at every base (over the verdict corpus: 106 candidates on correct gradients,
  the largest at 5.8 standard errors, a float32 ReLU MLP; the 5% bug above at 53, and the
  114 candidates it confirmed on buggy cases all beyond 22);
- mean r within a factor ``AGREE`` of the sweep's estimate, with its sign: the error the
  sweep saw at x.

The confirmed failure reports mean r as its error and Z standard errors (+ the AD term) as
its tolerance, split as the model's round-off part. Otherwise the measurement stays as it
was (INCONCLUSIVE or PASS). Runs last, after the jitter and segment tests: it averages the
rounding over many bases, so the jitter's one-base rounding does not apply to it. Not for
the complex step. On the host (NumPy), from one engine batch.
"""

from __future__ import annotations

import numpy as np

from .._fd import Stencil
from .model import Measurement
from .outcomes import CheckStatus, Reason

#: Bases at which each failure is measured again.
BASES = 16
#: ... of which at least this many must give finite values.
MIN_BASES = 12
#: Every coordinate moves by up to this fraction of its default step (random sign and size).
SPREAD = 0.25
#: A failure stands at this many standard errors of the mean error over the bases.
Z = 20.0
#: Candidates: a trusted sweep estimate at least LOW times its bound (plus the AD rounding).
LOW = 2.0
#: The mean error agrees with the sweep's estimate within this factor.
AGREE = 2.0
#: Only where f and its rule compute in this precision or finer (float32's eps): a 16-bit
#: rounding inside f (bfloat16 activations) is coarser than the bases' moves, so its error
#: is the same at every base too (a correct such model reached 25 standard errors).
MAX_EPS = float(np.finfo(np.float32).eps)
#: At most this many candidates, the largest estimate over bound first (even when
#: escalation spent the budget: they are few and cheap).
MAX_ITEMS = 16


def judge(
    meas: Measurement,
    sel: np.ndarray,
    est: np.ndarray,
    fd_h: np.ndarray,
    fd_2h: np.ndarray,
    rule: np.ndarray,
    stencil: Stencil,
    margin: float,
) -> tuple[Measurement, int]:
    """``meas`` with the candidates ``sel`` (their sweep estimates ``est``) made FAIL where the
    error is the same at every base (module doc), and how many were. ``fd_h``, ``fd_2h`` and
    ``rule`` are [BASES, len(sel)]: D_k(h), D_k(2h) and A_k."""
    if sel.size == 0:
        return meas, 0
    fd_h, fd_2h, rule = (np.asarray(a, np.float64) for a in (fd_h, fd_2h, rule))
    e_h, e_2h = fd_h - rule, fd_2h - rule
    r = e_h - (e_2h - e_h) / (2.0**stencil.accuracy - 1.0)
    ok = np.isfinite(r)
    n = ok.sum(axis=0)
    with np.errstate(all="ignore"):
        mean = np.where(ok, r, 0.0).sum(axis=0) / np.maximum(n, 1)
        var = np.where(ok, (r - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n - 1, 1)
        se = np.sqrt(var / np.maximum(n, 1))
        est = np.asarray(est, np.float64)
        ad = np.asarray(meas.ad_rounding, np.float64)[sel]
        tol = Z * se + margin * ad
        agree = (np.sign(mean) == np.sign(est)) & (np.abs(mean) * AGREE >= np.abs(est))
        agree &= np.abs(mean) <= AGREE * np.abs(est)
        confirm = (n >= MIN_BASES) & np.isfinite(tol) & (np.abs(mean) > tol) & agree
    hit = sel[confirm]
    if hit.size == 0:
        return meas, 0
    out = {f: np.array(v, copy=True) for f, v in meas._asdict().items()}
    for f, v in (
        ("numeric", out["analytic"][hit] + mean[confirm]),
        ("error", mean[confirm]),
        ("tolerance", tol[confirm]),
        ("truncation", np.zeros(hit.size)),
        ("roundoff", Z * se[confirm] / margin),
    ):
        out[f][hit] = v
    out["status"][hit] = CheckStatus.FAIL
    out["reason"][hit] = Reason.NONE
    return Measurement._make(out[f] for f in Measurement._fields), int(hit.size)
