"""Numerics of the step sweep: a ladder of FD estimates per channel -> step, estimate, error.

Pure array code on [K, C] arrays (K steps h_0 > h_1 > ... of a geometric ladder, C channels:
parameters × output elements), written once against an array namespace ``xp``: ``jax.numpy``
inside a trace (``step="auto"``, a sweep under the user's jit), ``numpy`` on the host for an
eager ``fdjax.sweep`` (nothing to compile). Both give the same bits
(``tests/test_adaptive.py`` compares them) because the arithmetic avoids what XLA computes
differently from NumPy: ``**`` with a power other than 2 (``ipow`` multiplies instead), a
product that feeds a sum (XLA fuses the two into one FMA), a division by a constant, a square
root or a broadcast (XLA multiplies by the reciprocal instead). Only the logarithms behind
the observed orders (and the slope test of ``_measure_noise``, which keeps a margin) may
differ in their last bits. The engine and the public API live in ``fdjax._sweep``.

Model (DESIGN.md "Numerics"). D_k = Σ_s w_s f(x + s·h_k) / h_k^d has a truncation error
C·h_k^p + ... and a round-off error e_k / h_k^d, where e_k, the error of the weighted sum of
values, is bounded by max(c·eps·Σ|w_s f_s|, κ·σ̂) with σ̂ the noise measured on the ladder.
While truncation dominates, Δ_k = D_k − D_{k+1} shrinks by R^p per step (R = h_k/h_{k+1});
a difference counts only when it exceeds the noise bound of its two estimates.

An estimate is *trusted* when the ratios Δ_{k−1}/Δ_k agree with R^p (an asymptotic window)
or when the differences sank below the noise (converged). Richardson levels (orders p + ℓq,
ℓ <= DEFAULT_LEVELS) give more candidates. Only the last asymptotic window counts (before it, large steps
can fake a geometric sequence); the trusted candidate with the smallest estimated error wins.
"""

from __future__ import annotations

import enum

import jax.numpy as jnp
import numpy as np

from .stencils import Stencil


class Status(enum.IntFlag):
    """Per-parameter diagnosis of a step sweep (bit flags; several may be set).

    Attributes:
        CONVERGED: a trusted estimate was found: in an asymptotic window (differences
            shrinking by R^p from one step to the next, R = h_k/h_{k+1}) or where the differences sank below
            the noise.
        EXACT: every difference of the ladder is below the eps·|f| round-off (e.g. a
            low-degree polynomial): exact up to round-off. Set together with CONVERGED.
        ROUNDOFF_LIMITED: round-off dominates the error estimate of the chosen value.
        KINK: the one-sided slopes (f(x+h) − f(x))/h and (f(x) − f(x−h))/h disagree beyond
            the noise and do not approach each other as h shrinks: no derivative at x.
        NOISY: the noise measured on the ladder is far (>= 1000×) above the eps·|f| model.
        NO_WINDOW: no trusted estimate; the value is the most stable plain estimate and its
            error estimate only the spread of its neighbours.
        NONFINITE: f was NaN/inf at some steps; they were masked.
    """

    CONVERGED = 1
    EXACT = 2
    ROUNDOFF_LIMITED = 4
    KINK = 8
    NOISY = 16
    NO_WINDOW = 32
    NONFINITE = 64


#: Richardson levels tried on top of the plain estimates (orders p, p+q, ..., p+3q). Three
#: levels let smooth functions use the large steps of the ladder, where round-off is
#: smallest (a 1,102-parameter MLP: median relative error 6.7e-12 against 1.6e-11 with two).
DEFAULT_LEVELS = 3
#: Round-off model: |error of Σ w_s f_s| <= ROUNDOFF_ULPS · eps · Σ |w_s f_s|.
ROUNDOFF_ULPS = 1.0
#: The noise bound is KAPPA × the measured standard deviation of the noise.
KAPPA = 2.5
#: NOISY when the measured noise bound exceeds the eps model by this factor.
NOISY_FACTOR = 1000.0
#: Half-width, in powers of two, of the band a ratio Δ_{k−1}/Δ_k must fall in around R^p.
BAND = 0.6
#: Differences after the last window used to measure the noise.
NOISE_STEPS = 6


def default_ratio(dtype) -> float:
    """Step ratio R = h_k/h_{k+1} of the default ladder: 4 in float64, 2 in lower precision.

    In float64 the asymptotic window (truncation dominating round-off) spans decades, so
    quartering keeps several points in it at half the evaluations. In float32 the window
    can be a factor of a few wide (x^(1/3) near 0, sin(1000x)), and halving keeps it.
    """
    return 4.0 if jnp.finfo(dtype).nmant >= 52 else 2.0


def default_num_steps(dtype) -> int:
    """Default ladder length: 14 quarterings in float64 (0.1 down to 1.5e-9), 22 halvings in
    float32 (down to 4.8e-8), 12 halvings in 16-bit floats."""
    bits = jnp.finfo(dtype).nmant  # 52, 23, 10 (float16), 7 (bfloat16): jnp.finfo knows ml_dtypes
    return 14 if bits >= 52 else 22 if bits >= 23 else 12


def relative_ladder(num_steps: int, dtype, first: float = 0.1, ratio: float = 2.0) -> np.ndarray:
    """Relative steps ``first · ratio^-k``, k = 0..num_steps−1."""
    return (first * float(ratio) ** -np.arange(num_steps, dtype=np.float64)).astype(np.dtype(dtype))


def next_order_step(stencil: Stencil) -> int:
    """q: the truncation series runs in orders p, p+q, p+2q, ... (2 for symmetric stencils)."""
    if stencil.complex_step:
        return 2
    d, p = stencil.derivative, stencil.accuracy
    offs, ws = stencil.offsets, stencil.weights
    for m in range(d + p + 1, d + p + 3):
        moment = sum(w * s**m for s, w in zip(offs, ws, strict=True))
        size = sum(abs(w * s**m) for s, w in zip(offs, ws, strict=True))
        if abs(moment) > 1e-12 * size:
            return m - d - p
    return 2  # pragma: no cover - not reached for stencils with a finite expansion


def ipow(a, p: int):
    """a**p for an int p >= 1 by repeated squaring, written out: NumPy (libm's pow) and XLA
    (its own integer power) would round a**4 differently; the same products round the same."""
    out = None
    while True:
        if p & 1:
            out = a if out is None else out * a
        p >>= 1
        if not p:
            return out
        a = a * a


def _ratio_power(xp, R, p: int):
    """R^p for step ratios R > 1, through maximum(·, 1) (a no-op) so that the product is
    rounded before R^p − 1: XLA would fuse the last product and the subtraction into one FMA."""
    return xp.maximum(ipow(R, p), 1.0)


def _back(xp, a, k, fill):
    """a[j − k] along axis 0 (k > 0: the entry k places earlier; k < 0: later), padded."""
    pad = xp.full((abs(k),) + a.shape[1:], fill, a.dtype)
    return xp.concatenate([pad, a[:-k]]) if k > 0 else xp.concatenate([a[-k:], pad])


def _median(xp, a, mask):
    """Median along axis 0 of the entries where ``mask`` holds (NaN where none)."""
    n = xp.sum(mask, axis=0)
    srt = xp.sort(xp.where(mask, a, xp.inf), axis=0)
    lo = _pick(xp, srt, xp.maximum((n - 1) // 2, 0))
    hi = _pick(xp, srt, xp.maximum(n // 2, 0))
    return xp.where(n > 0, 0.5 * (lo + hi), xp.nan)


def _pad_rows(xp, a, n, fill):
    """Append n rows of ``fill`` along axis 0."""
    return xp.concatenate([a, xp.full((n,) + a.shape[1:], fill, a.dtype)]) if n else a


def _pick(xp, a, j):
    return xp.take_along_axis(a, j[None], 0)[0]


def _differences(xp, T, N, V, Rp):
    """One level of the table: differences, significance, the ratio test (all [L−1, C]);
    ``Rp``: (h_j/h_{j+1})^p."""
    dl = T[:-1] - T[1:]
    vd = V[:-1] & V[1:]
    sig = vd & (xp.abs(dl) > N[:-1] + N[1:])
    prev, prev_sig = _back(xp, dl, 1, 0.0), _back(xp, sig, 1, False)
    ratio = prev / xp.where(dl == 0, 1.0, dl)
    target = _back(xp, Rp, 1, 1.0)  # Δ_{j−1}/Δ_j ≈ (h_{j−1}/h_j)^p
    asym = prev_sig & sig & (ratio >= target * 2.0**-BAND) & (ratio <= target * 2.0**BAND)
    return dict(
        dl=dl,
        vd=vd,
        Rp=Rp,
        sig=sig,
        insig=vd & ~sig,
        prev=prev,
        ratio=ratio,
        target=target,
        asym=asym,
        run2=asym & _back(xp, asym, 1, False),
    )


def _restrict(xp, lv, ok):
    """Drop differences whose step ratio is unusable (``ok`` False) from every test."""
    vd = lv["vd"] & ok
    sig = lv["sig"] & vd
    asym = lv["asym"] & vd & _back(xp, vd, 1, False)
    return {
        **lv,
        "vd": vd,
        "sig": sig,
        "insig": vd & ~sig,
        "asym": asym,
        "run2": asym & _back(xp, asym, 1, False),
    }


def _last_window_start(xp, asym, run2):
    """Index (in differences) where the last run of >= 2 consecutive asymptotic ratios starts,
    or −1; the run covers values from that index − 1 on."""
    idx = xp.arange(asym.shape[0], dtype=xp.int32)[:, None]
    last = xp.max(xp.where(run2, idx, -1), axis=0)
    broken = xp.max(xp.where(~asym & (idx <= last), idx, -1), axis=0)
    return xp.where(last >= 0, broken + 1, -1)


def _measure_noise(xp, D, hd, vd, last_window, order_plus_d, R, d_order):
    """σ̂: the noise of the weighted sum of values, from the differences after the last window
    (``last_window``: index of its last difference, −1 if none: then from where the
    differences stop falling at the truncation rate).

    Where round-off dominates, D_k = D + e_k/h_k^d with independent e_k, so
    ν_k = |Δ_k| / sqrt(h_k^-2d + h_{k+1}^-2d) estimates |e| (median 0.674·σ). The first
    NOISE_STEPS differences after the window are used (the last ones, with steps near the
    spacing of floating-point numbers, show correlated rounding). A run still falling like
    h^(p+d) is truncation, not noise: then σ̂ = 0 and the eps model alone is used.
    """
    # the divisor goes through maximum(·, 0) (a no-op): XLA would rewrite a/sqrt(b) as a·rsqrt(b),
    # which rounds differently from NumPy's division in float32
    root = xp.maximum(xp.sqrt(1 / (hd[:-1] * hd[:-1]) + 1 / (hd[1:] * hd[1:])), 0.0)
    nu = xp.abs(D[:-1] - D[1:]) / root
    # without a window: start where ν stops falling at the truncation rate, ν_j >= ν_{j−1}·R^-(p+d)/2
    # with R = h_{j−1}/h_j (compared as ν_j·sqrt(R^(p+d)) >= ν_{j−1}: no logarithm, no pow)
    idx = xp.arange(nu.shape[0], dtype=xp.int32)[:, None]
    rate = _back(xp, xp.sqrt(ipow(R, order_plus_d)), 1, 1.0)
    slow = vd & _back(xp, vd, 1, False) & (nu * rate >= _back(xp, nu, 1, 0.0))
    first_slow = xp.min(xp.where(slow, idx, nu.shape[0]), axis=0)
    use = vd & xp.where((last_window >= 0)[None], idx > last_window[None], idx >= first_slow[None])
    count = xp.cumsum(use.astype(xp.int32), axis=0)
    use = use & (count <= NOISE_STEPS)
    sigma = _median(xp, nu, use) * (1 / 0.674)  # XLA multiplies by the reciprocal anyway
    # least-squares slope of log2 ν against log2 h over the points used
    pos = use & (nu > 0)
    w = pos.astype(nu.dtype)
    n = xp.maximum(xp.sum(w, axis=0), 1.0)
    lh = xp.log2(xp.where(pos, hd[:-1], 1.0))
    lnu = xp.log2(xp.where(pos, nu, 1.0))
    mh, mn = xp.sum(w * lh, axis=0) / n, xp.sum(w * lnu, axis=0) / n
    var = xp.sum(w * (lh - mh) ** 2, axis=0)
    slope = xp.sum(w * (lh - mh) * (lnu - mn), axis=0) / xp.where(var > 0, var, 1.0)
    # (a slope within 2^-10 of the threshold is not falling: values quantized at the float
    # spacing can sit exactly on it, and the logarithms of NumPy and XLA round differently)
    falling = slope > 0.5 * order_plus_d / d_order * (1 + 2.0**-10)
    ok = (xp.sum(use, axis=0) >= 3) & ~falling & xp.isfinite(sigma)
    return xp.where(ok, sigma, 0.0)


def analyze(D, h, e_model, valid, stencil: Stencil, levels: int = DEFAULT_LEVELS, gap=None, *, xp=jnp):
    """Choose the step and the estimate per channel. Arrays are [K, C]; returns a dict.

    Args:
        D: FD estimates on the ladder (ignored where not ``valid``).
        h: steps actually taken, decreasing along axis 0.
        e_model: round-off bound of the weighted sum of values (before dividing by h^d).
        valid: the values behind D_k were finite.
        stencil: the stencil (order p, derivative d, symmetry).
        levels: Richardson levels on top of the plain estimates.
        gap: optional (g, g_model, g_scale): g_k = f(x+h_k) − 2f(x) + f(x−h_k), its eps-model
            bound, and the factor from σ̂ to the noise of g. Enables KINK detection.
        xp: the array namespace of the arrays, ``jax.numpy`` (default) or ``numpy`` (call it
            under ``np.errstate(all="ignore")``: NaN and inf are expected here).
    """
    dt = D.dtype
    d, p0, q = stencil.derivative, stencil.accuracy, next_order_step(stencil)
    nonfinite = xp.any(~valid, axis=0)
    valid = valid & xp.isfinite(D) & (h > 0)
    D = xp.where(valid, D, 0.0)
    h = xp.where(valid, h, 1.0)
    hd = ipow(h, d)
    R = h[:-1] / h[1:]
    vpair = valid[:-1] & valid[1:] & (R > 1.05)  # taken steps can coincide near the float spacing
    R = xp.where(vpair, R, 2.0)
    inf = xp.asarray(xp.inf, dt)

    # ---- pass 1: windows under the eps model, then the noise measured after the last one
    lv = _restrict(
        xp, _differences(xp, D, xp.where(valid, e_model / hd, inf), valid, _ratio_power(xp, R, p0)), vpair
    )
    idx = xp.arange(D.shape[0] - 1, dtype=xp.int32)[:, None]
    last_run = xp.max(xp.where(lv["run2"], idx, -1), axis=0)
    sigma = _measure_noise(xp, D, hd, vpair, last_run, p0 + d, R, d)
    e_bound = xp.maximum(e_model, KAPPA * sigma[None])
    noisy = KAPPA * sigma > NOISY_FACTOR * _median(xp, e_model, valid)  # far above eps·Σ|w f|
    N = xp.where(valid, e_bound / hd, inf)  # ρ_k: round-off bound of D_k

    # ---- pass 2: the Richardson table with the measured noise. Level ℓ (order p + ℓq) is
    # padded to K rows and stacked along the channel axis (column ℓ·C + c), so that one set
    # of tests runs over every level at once.
    K, C = D.shape
    Ts, Ns, Vs, Rps = [], [], [], []
    T, Nl, V, p = D, N, valid, p0
    for _ in range(levels + 1):
        if T.shape[0] < 3:
            break
        fill = K - T.shape[0]
        Ts.append(_pad_rows(xp, T, fill, 0.0))
        Ns.append(_pad_rows(xp, Nl, fill, xp.inf))
        Vs.append(_pad_rows(xp, V, fill, False))
        Rps.append(_ratio_power(xp, R, p))
        Rp = Rps[-1][: T.shape[0] - 1]
        V = V[:-1] & V[1:] & vpair[: T.shape[0] - 1]
        # (Rp·N_{j+1} + N_j)/(Rp − 1), written without a product added to a sum (XLA fuses
        # those into one FMA, NumPy does not: the two would round differently)
        T, Nl = T[1:] + (T[1:] - T[:-1]) / (Rp - 1), Nl[1:] + (Nl[1:] + Nl[:-1]) / (Rp - 1)
        p = p + q
    nl = len(Ts)
    stack = lambda parts: xp.concatenate(parts, axis=1)  # noqa: E731
    tile = lambda a: xp.tile(a, (1, nl))  # noqa: E731
    split = lambda a: a.reshape(a.shape[0], nl, C)  # noqa: E731
    T, Nl = stack(Ts), stack(Ns)
    lv = _restrict(xp, _differences(xp, T, Nl, stack(Vs), stack(Rps)), tile(vpair))

    # the last asymptotic window of the lowest level that has one: earlier candidates are out
    starts = split(_last_window_start(xp, lv["asym"], lv["run2"])[None])[0]  # [levels, C]
    anchor = xp.full((C,), -1, xp.int32)
    for ell in reversed(range(nl)):
        anchor = xp.where(starts[ell] >= 0, starts[ell] - 1, anchor)
    has_window = tile(anchor[None] >= 0)
    anchor = tile(anchor[None])

    j = xp.arange(K - 1, dtype=xp.int32)[:, None]
    dl, prev = lv["dl"], xp.where(_back(xp, lv["vd"], 1, False), lv["prev"], 0.0)
    pred = xp.abs(prev) / lv["target"]
    # value T[j+1], its truncation error from Δ[j] (and the one Δ[j−1] predicts)
    ok_pos = j + 1 >= anchor
    strong = lv["run2"] | (lv["insig"] & _back(xp, lv["run2"], 1, False))
    weak = has_window & (lv["asym"] | (lv["insig"] & _back(xp, lv["asym"], 1, False)))
    t_strong = xp.maximum(xp.abs(dl), pred) / (lv["Rp"] - 1)
    t_weak = xp.maximum(xp.abs(dl), pred)
    # Richardson of a trusted pair of the level below: the leading term is gone, so its error
    # is at most the parent's; at most |Δ| too while the differences shrink.
    below = (
        lambda a, fill: _back(
            xp,  # noqa: E731
            stack([xp.full((K - 1, C), fill, a.dtype), a[:, : (nl - 1) * C]]),
            -1,
            fill,
        )
    )
    p_strong, p_trunc = below(strong & ok_pos, False), below(t_strong, xp.inf)
    inherit = has_window & p_strong & ~strong & ~weak
    shrinking = xp.abs(dl) <= 0.5 * xp.abs(prev)
    t_weak = xp.where(inherit, xp.where(shrinking, xp.minimum(xp.abs(dl), p_trunc), p_trunc), t_weak)
    trunc = xp.where(strong, t_strong, t_weak)
    err = xp.where(ok_pos & (strong | weak | inherit), trunc + Nl[1:], xp.inf)
    # converged: value T[j] with Δ[j−1] (or, for j = 0, Δ[1]) and Δ[j] below the noise
    nxt = xp.concatenate([xp.abs(dl[1:]), xp.zeros_like(dl[:1])])
    first = (j == 0) & _back(xp, lv["insig"], -1, False)
    conv = lv["insig"] & (_back(xp, lv["insig"], 1, False) | first) & (j >= anchor)
    c_trunc = xp.maximum(xp.abs(dl), xp.where(j == 0, nxt, xp.abs(prev))) * lv["Rp"] / (lv["Rp"] - 1)
    c_err = xp.where(conv, c_trunc + Nl[:-1], xp.inf)
    # the smallest step entering T_ℓ[j] is h[j + ℓ]
    h_l = stack([_pad_rows(xp, h[ell:], ell, xp.nan) for ell in range(nl)])
    level = xp.repeat(xp.arange(nl, dtype=xp.int32), C)[None]
    cands = [  # each [(K−1)·levels, C]: one argmin over every level and step
        (split(a).reshape(-1, C) if a.ndim else a)
        for a in (
            xp.concatenate([xp.where(xp.isnan(err), xp.inf, err), xp.where(xp.isnan(c_err), xp.inf, c_err)]),
            xp.concatenate([T[1:], T[:-1]]),
            xp.concatenate([trunc, c_trunc]),
            xp.concatenate([Nl[1:], Nl[:-1]]),
            xp.concatenate([h_l[1:], h_l[:-1]]),
            xp.broadcast_to(level, (2 * (K - 1), nl * C)),
        )
    ]
    jb = xp.argmin(cands[0], axis=0)
    best = dict(
        zip(
            ("err", "value", "trunc", "noise", "step", "level"),
            (_pick(xp, a, jb) for a in cands),
            strict=True,
        )
    )
    converged = xp.isfinite(best["err"])
    lv0 = {k: v[:, :C] for k, v in lv.items()}
    # ---- fallback: the most stable plain estimate; error: twice the spread of its neighbours
    nan_row = xp.full((1,) + D.shape[1:], xp.nan, dt)
    dl0 = xp.where(lv0["vd"], lv0["dl"], xp.nan)
    spread = xp.fmax(xp.abs(xp.concatenate([nan_row, dl0])), xp.abs(xp.concatenate([dl0, nan_row])))
    fb_err = xp.where(valid, xp.where(xp.isfinite(spread), 2 * spread, 0.0) + N, inf)
    jf = xp.argmin(fb_err, axis=0)
    any_valid = xp.any(valid, axis=0)
    value = xp.where(converged, best["value"], xp.where(any_valid, _pick(xp, D, jf), xp.nan))
    error = xp.where(converged, best["err"], xp.where(any_valid, _pick(xp, fb_err, jf), xp.inf))
    step = xp.where(converged, best["step"], xp.where(any_valid, _pick(xp, h, jf), xp.nan))
    noise_part = xp.where(converged, best["noise"], _pick(xp, N, jf))
    trunc_part = xp.where(converged, best["trunc"], error - noise_part)

    exact = (xp.sum(lv0["vd"], axis=0) >= 2) & ~xp.any(lv0["sig"], axis=0)
    orders = xp.where(
        _back(xp, lv0["sig"], 1, False) & lv0["sig"],
        xp.log2(xp.abs(lv0["ratio"])) / xp.log2(_back(xp, R, 1, 2.0)),
        xp.nan,
    )
    in_window = lv0["asym"] & (idx >= _last_window_start(xp, lv0["asym"], lv0["run2"])[None])
    p_hat = _median(xp, orders, in_window)

    def flag(cond, s):
        return xp.where(cond, xp.int32(int(s)), xp.int32(0))

    status = flag(converged, Status.CONVERGED) | flag(~converged, Status.NO_WINDOW)
    status |= flag(converged & exact & ~noisy, Status.EXACT)
    status |= flag(converged & ~exact & (noise_part > trunc_part), Status.ROUNDOFF_LIMITED)
    status |= flag(noisy, Status.NOISY)
    status |= flag(nonfinite, Status.NONFINITE)

    pad = lambda a, fill: xp.concatenate([a, xp.full((1,) + a.shape[1:], fill, a.dtype)])  # noqa: E731
    out = dict(
        estimate=value,
        error=error,
        step=step,
        level=xp.where(converged, best["level"], 0),
        order=p_hat,
        noise=KAPPA * sigma,
        roundoff=N,
        differences=pad(xp.where(lv0["vd"], lv0["dl"], xp.nan), xp.nan),
        significant=pad(lv0["sig"], False),
        orders=pad(orders, xp.nan),
    )
    if gap is not None:
        kink, i_k, slope_gap = _kink(xp, gap, hd, valid, sigma)
        status |= flag(kink, Status.KINK)
        out["error"] = xp.where(kink, xp.fmax(out["error"], xp.abs(slope_gap) / 2), out["error"])
        out["kink_index"] = i_k
        out["gap"] = slope_gap
    out["status"] = status
    return out


def _kink(xp, gap, hd, valid, sigma):
    """KINK: g_k = (f(x+h) − 2f(x) + f(x−h))/h stays significant and does not shrink like h.

    For a smooth f, g_k ≈ h·f''(x) halves with h; at a kink it tends to the jump of the
    slope. The last three consecutive significant g's decide. Returns (flag, the step index
    of the last significant g, the largest slope gap of those three).
    """
    g, g_model, g_scale = gap
    K = g.shape[0]
    noise = xp.maximum(g_model, KAPPA * g_scale * sigma[None])
    sig = valid & (xp.abs(g) > 2 * noise)
    g = g / hd
    prev = _back(xp, g, 1, 0.0)
    flat = sig & _back(xp, sig, 1, False) & (g / xp.where(prev == 0, 1.0, prev) >= 0.7)
    triple = sig & _back(xp, sig, 1, False) & _back(xp, sig, 2, False)
    last = xp.max(xp.where(triple, xp.arange(K, dtype=xp.int32)[:, None], -1), axis=0)
    at = xp.maximum(last, 0)
    kink = (last >= 2) & _pick(xp, flat, at) & _pick(xp, flat, xp.maximum(at - 1, 0))
    gmax = xp.max(xp.abs(xp.stack([_pick(xp, g, xp.maximum(at - i, 0)) for i in range(3)])), axis=0)
    return kink, at, gmax
