"""The error model of a gradient check: one FD measurement against its analytic prediction.

A *measurement* is the FD derivative along one direction u (a basis vector e_i or a random,
gradient-aligned or bisection direction) at the step h and at 2h, from the values
f(x + s·h·u) for the offsets s of ``check_offsets(stencil)`` (always including ±1 and ±2)
and f(x) from the same batch. Its analytic prediction is the same stencil applied to the
analytic linear model L(δ_s) = a·δ_s, where δ_s = fl(x + s·h·u) − x is the displacement the
batch actually took, so that a representable-step error never looks like a gradient error.

With D(h) the FD value and A(h) the analytic prediction, e = D(h) − A(h) and

    tolerance = margin · (T + R + E_ad)
    T    = |e(2h) − e(h)| / (2^p − 1)           truncation (Richardson; p = stencil accuracy)
    R    = (Σ_k |w_k|) · ρ / h                  round-off of the f values
    ρ    = max(eps_f · max_k |f_k|, 2 · σ)      per-value rounding bound; σ = measured noise
    E_ad = 8 · eps · Σ_k |w_k| · (|a|·|δ_k|) / h  rounding of the analytic side

σ is the noise of f measured in the same jit from pairs f(x ± δ) with ulp-sized random δ
(``rows``): it catches cancellation inside f (e.g. log-sum-exp of logits ~50 minus the
target logit) that eps·|f| alone would miss. The bug term a − ∇f cancels in T (it is the same
at h and 2h), so a wrong gradient never widens its own tolerance.

Kinks: with S(h) = f(x+h) − 2f(x) + f(x−h), a function that is smooth at the scale of the step
has S(2h) ≈ 4·S(h) (the difference is h⁴·f''''). Where |4·S(h) − S(2h)| exceeds
``KINK_RATIO``·|S(h)| plus its worst-case rounding 20·ρ, f is not smooth within ±2h of x
(ReLU at 0, abs, max-pool ties, a clip boundary, or a function far outside its Taylor
regime at the step, e.g. tanh(10⁴·p) moved by 10⁻³): the measurement is a *kink*. For one
kink at distance u·h with slope jump J the central error is J·(1 − u)/2; where the test does
not fire (u in [0.6, 0.72]) the truncation estimate T = J·u/12 keeps it within the tolerance
(margin 10). It reports
both one-sided slopes D+ = (f(x+h) − f(x))/h and D− = (f(x) − f(x−h))/h and whether the
analytic value lies between them (a valid subgradient), and it is left out of the verdict.
Kink detection uses f values only, so a bug cannot turn a measurement into a kink.

Outcome of one measurement (``CheckStatus`` and ``Reason``):

- f not finite at one of its points: INCONCLUSIVE (NONFINITE); f finite but the analytic
  value not: FAIL (the derivative is NaN/inf where f is smooth and finite);
- a kink: INCONCLUSIVE (KINK);
- |e| > tolerance: FAIL;
- a tolerance that is not below half the values compared, max(|A|, |D|)/``RESOLUTION``:
  INCONCLUSIVE (UNRESOLVED): such a measurement could not tell a gradient from twice
  itself, so agreement proves nothing. Exception: both sides exactly 0 and f bit-identical
  at every offset (f is flat along the direction and AD says so): PASS;
- otherwise PASS.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .._fd import Stencil
from .outcomes import CheckStatus, Reason


#: Default multiple of the predicted FD error that a difference may reach.
DEFAULT_MARGIN = 10.0
#: A kink when |4·S(h) − S(2h)| > KINK_RATIO·|S(h)| + 20·ρ.
KINK_RATIO = 0.25
#: Measured noise σ is multiplied by this in the rounding bound ρ (max over a few samples).
SIGMA_FACTOR = 2.0
#: Rounding of the analytic side: this many eps times Σ|a_i·δ_i|.
AD_FACTOR = 8.0
#: A measurement resolves the values it compares when RESOLUTION·tolerance < max(|A|, |D|).
RESOLUTION = 2.0


def check_offsets(stencil: Stencil) -> tuple[float, ...]:
    """Offsets evaluated by a check: the stencil at h and at 2h, plus ±1, ±2 for kinks."""
    s = set(stencil.offsets) | {2.0 * o for o in stencil.offsets} | {-2.0, -1.0, 1.0, 2.0}
    return tuple(sorted(s))


class Measurement(NamedTuple):
    """One row per measured direction (all arrays share the leading dimension M)."""

    numeric: jnp.ndarray  # D(h): the FD derivative along the direction
    analytic: jnp.ndarray  # A(h): the analytic prediction for the same displacements
    error: jnp.ndarray  # D(h) − A(h), signed
    tolerance: jnp.ndarray
    truncation: jnp.ndarray
    roundoff: jnp.ndarray
    ad_rounding: jnp.ndarray
    kink: jnp.ndarray  # bool
    slope_plus: jnp.ndarray
    slope_minus: jnp.ndarray
    subgradient: jnp.ndarray  # bool: analytic within [min(D+, D−), max(D+, D−)] ± tolerance
    finite: jnp.ndarray  # bool
    first_bad_offset: jnp.ndarray  # offset of the first non-finite value (nan when finite; 0 = f(x))
    status: jnp.ndarray  # int8 CheckStatus code
    reason: jnp.ndarray  # int8 Reason code (NONE unless INCONCLUSIVE)
    step: jnp.ndarray  # the nominal step h the measurement was taken at
    error2: jnp.ndarray  # D(2h) − A(2h), signed: the same error at twice the step


def rounding_bound(values, f0, sigma, eps_f, xp=jnp):
    """ρ per measurement: max(eps_f · max |f|, SIGMA_FACTOR · σ). values [K, M]."""
    mag = xp.maximum(xp.max(xp.abs(values), axis=0), xp.abs(f0))
    return xp.maximum(eps_f * mag, SIGMA_FACTOR * sigma)


def measure(
    F, f0, L, B, h, rho, stencil: Stencil, offsets, *, eps_ad: float, margin: float, xp=jnp
) -> Measurement:
    """Apply the error model (module docstring) to a batch of measurements.

    Args:
        F: f values [K, M] at the offsets ``offsets`` (K of them) for M directions.
        f0: f(x) from the same batch (scalar).
        L: analytic predictions a·δ [K, M] of f(x + δ_k) − f(x) to first order.
        B: |a|·|δ| [K, M] (bounds the analytic side's rounding).
        h: nominal step per direction [M].
        rho: rounding bound of one f value [M] (``rounding_bound``).
        stencil: the first-derivative stencil of the check.
        offsets: the K offsets, a tuple of floats (``check_offsets(stencil)``).
        eps_ad: machine epsilon of the analytic values.
        margin: multiple of the predicted error allowed.
        xp: the array module, ``jax.numpy`` (traced) or ``numpy`` (on the host).
    """
    pos = {o: k for k, o in enumerate(offsets)}
    w = stencil.weights
    w0 = stencil.center_weight

    def at(arr, s):
        return arr[pos[s]]

    def apply(arr, scale, center):
        tot = sum(wk * at(arr, scale * s) for s, wk in zip(stencil.offsets, w, strict=False))
        if center is not None and w0 != 0.0:
            tot = tot + w0 * center
        return tot / (scale * h)

    d1 = apply(F, 1.0, f0)
    a1 = apply(L, 1.0, None)
    d2 = apply(F, 2.0, f0)
    a2 = apply(L, 2.0, None)
    err = d1 - a1
    p = stencil.accuracy
    trunc = xp.abs((d2 - a2) - err) / (2.0**p - 1.0)
    sumw = sum(abs(x) for x in w) + abs(w0)
    roundoff = sumw * rho / h
    ad = AD_FACTOR * eps_ad * sum(abs(wk) * at(B, s) for s, wk in zip(stencil.offsets, w, strict=False)) / h
    tol = margin * (trunc + roundoff + ad)

    s1 = at(F, 1.0) - 2 * f0 + at(F, -1.0) - (at(L, 1.0) + at(L, -1.0))
    s2 = at(F, 2.0) - 2 * f0 + at(F, -2.0) - (at(L, 2.0) + at(L, -2.0))
    kink = xp.abs(4 * s1 - s2) > KINK_RATIO * xp.abs(s1) + 20.0 * rho
    dplus = (at(F, 1.0) - f0) / h
    dminus = (f0 - at(F, -1.0)) / h
    lo = xp.minimum(dplus, dminus) - tol
    hi = xp.maximum(dplus, dminus) + tol
    sub = (a1 >= lo) & (a1 <= hi)

    fin_rows = xp.isfinite(F)
    f_ok = xp.all(fin_rows, axis=0) & xp.isfinite(f0)
    a_ok = xp.all(xp.isfinite(L), axis=0) & xp.isfinite(a1)
    finite = f_ok & a_ok & xp.isfinite(tol)
    first = xp.argmin(fin_rows, axis=0)
    offs = xp.asarray(offsets, F.dtype)
    bad_off = xp.where(
        ~xp.isfinite(f0),
        xp.zeros_like(d1),
        xp.where(xp.all(fin_rows, axis=0), xp.full_like(d1, xp.nan), offs[first]),
    )
    bad_off = xp.where(f_ok & a_ok, xp.full_like(d1, xp.nan), bad_off)
    big = xp.maximum(xp.abs(a1), xp.abs(d1))
    flat = (a1 == 0) & (d1 == 0) & xp.all(F == f0, axis=0)
    unresolved = ~(RESOLUTION * tol < big) & ~flat
    fail = (f_ok & ~a_ok) | (finite & ~kink & (xp.abs(err) > tol))
    reason = xp.where(
        ~f_ok,
        Reason.NONFINITE,
        xp.where(
            fail,
            Reason.NONE,
            xp.where(kink, Reason.KINK, xp.where(unresolved, Reason.UNRESOLVED, Reason.NONE)),
        ),
    ).astype(np.int8)
    status = xp.where(
        fail, CheckStatus.FAIL, xp.where(reason == Reason.NONE, CheckStatus.PASS, CheckStatus.INCONCLUSIVE)
    ).astype(np.int8)
    return Measurement(
        numeric=d1,
        analytic=a1,
        error=err,
        tolerance=tol,
        truncation=trunc,
        roundoff=roundoff,
        ad_rounding=ad,
        kink=kink & finite,
        slope_plus=dplus,
        slope_minus=dminus,
        subgradient=sub,
        finite=finite,
        first_bad_offset=bad_off,
        status=status,
        reason=reason,
        step=h * xp.ones_like(d1),
        error2=d2 - a2,
    )


def relative_error(a, n, xp=jnp):
    """|a − n| / max(|a|, |n|), 0 where both are 0 (cs231n), NaN where either is NaN."""
    den = xp.maximum(xp.abs(a), xp.abs(n))
    return xp.where(den > 0, xp.abs(a - n) / xp.where(den > 0, den, 1), xp.where(den == 0, 0.0, np.nan))


def digits_of(rel, eps: float, xp=jnp):
    """Significant decimal digits in agreement: −log10(rel) clipped to [0, −log10(eps)]."""
    top = -math.log10(eps)
    return xp.clip(-xp.log10(xp.maximum(rel, eps)), 0.0, top)
