"""Numerics of the step sweep: a ladder of FD estimates per channel -> step, estimate, error.

Pure array code on [K, C] arrays (K steps h_0 > h_1 > ... of a geometric ladder, C channels:
parameters × output elements), traced inside the caller's jit. The engine and the public API
live in ``fdjax._sweep``.

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


def _back(a, k, fill):
    """a[j − k] along axis 0 (k > 0: the entry k places earlier; k < 0: later), padded."""
    pad = jnp.full((abs(k),) + a.shape[1:], fill, a.dtype)
    return jnp.concatenate([pad, a[:-k]]) if k > 0 else jnp.concatenate([a[-k:], pad])


def _median(a, mask):
    """Median along axis 0 of the entries where ``mask`` holds (NaN where none)."""
    n = jnp.sum(mask, axis=0)
    srt = jnp.sort(jnp.where(mask, a, jnp.inf), axis=0)
    lo = _pick(srt, jnp.maximum((n - 1) // 2, 0))
    hi = _pick(srt, jnp.maximum(n // 2, 0))
    return jnp.where(n > 0, 0.5 * (lo + hi), jnp.nan)


def _pad_rows(a, n, fill):
    """Append n rows of ``fill`` along axis 0."""
    return jnp.concatenate([a, jnp.full((n,) + a.shape[1:], fill, a.dtype)]) if n else a


def _pick(a, j):
    return jnp.take_along_axis(a, j[None], 0)[0]


def _differences(T, N, V, R, p):
    """One level of the table: differences, significance, the ratio test (all [L−1, C])."""
    dl = T[:-1] - T[1:]
    vd = V[:-1] & V[1:]
    Rp = R**p
    sig = vd & (jnp.abs(dl) > N[:-1] + N[1:])
    prev, prev_sig = _back(dl, 1, 0.0), _back(sig, 1, False)
    ratio = prev / jnp.where(dl == 0, 1.0, dl)
    target = _back(Rp, 1, 1.0)  # Δ_{j−1}/Δ_j ≈ (h_{j−1}/h_j)^p
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
        run2=asym & _back(asym, 1, False),
    )


def _restrict(lv, ok):
    """Drop differences whose step ratio is unusable (``ok`` False) from every test."""
    vd = lv["vd"] & ok
    sig = lv["sig"] & vd
    asym = lv["asym"] & vd & _back(vd, 1, False)
    return {
        **lv,
        "vd": vd,
        "sig": sig,
        "insig": vd & ~sig,
        "asym": asym,
        "run2": asym & _back(asym, 1, False),
    }


def _last_window_start(asym, run2):
    """Index (in differences) where the last run of >= 2 consecutive asymptotic ratios starts,
    or −1; the run covers values from that index − 1 on."""
    idx = jnp.arange(asym.shape[0], dtype=jnp.int32)[:, None]
    last = jnp.max(jnp.where(run2, idx, -1), axis=0)
    broken = jnp.max(jnp.where(~asym & (idx <= last), idx, -1), axis=0)
    return jnp.where(last >= 0, broken + 1, -1)


def _measure_noise(D, hd, vd, last_window, order_plus_d, log2R, d_order):
    """σ̂: the noise of the weighted sum of values, from the differences after the last window
    (``last_window``: index of its last difference, −1 if none: then from where the
    differences stop falling at the truncation rate).

    Where round-off dominates, D_k = D + e_k/h_k^d with independent e_k, so
    ν_k = |Δ_k| / sqrt(h_k^-2d + h_{k+1}^-2d) estimates |e| (median 0.674·σ). The first
    NOISE_STEPS differences after the window are used (the last ones, with steps near the
    spacing of floating-point numbers, show correlated rounding). A run still falling like
    h^(p+d) is truncation, not noise: then σ̂ = 0 and the eps model alone is used.
    """
    nu = jnp.abs(D[:-1] - D[1:]) / jnp.sqrt(hd[:-1] ** -2 + hd[1:] ** -2)
    # without a window: start where ν stops falling at the truncation rate
    idx = jnp.arange(nu.shape[0], dtype=jnp.int32)[:, None]
    slow = (
        vd
        & _back(vd, 1, False)
        & (nu >= _back(nu, 1, 0.0) * 2.0 ** (-0.5 * order_plus_d * _back(log2R, 1, 1.0)))
    )
    first_slow = jnp.min(jnp.where(slow, idx, nu.shape[0]), axis=0)
    use = vd & jnp.where((last_window >= 0)[None], idx > last_window[None], idx >= first_slow[None])
    count = jnp.cumsum(use.astype(jnp.int32), axis=0)
    use = use & (count <= NOISE_STEPS)
    sigma = _median(nu, use) / 0.674
    # least-squares slope of log2 ν against log2 h over the points used
    pos = use & (nu > 0)
    w = pos.astype(nu.dtype)
    n = jnp.maximum(jnp.sum(w, axis=0), 1.0)
    lh = jnp.log2(jnp.where(pos, hd[:-1], 1.0))
    lnu = jnp.log2(jnp.where(pos, nu, 1.0))
    mh, mn = jnp.sum(w * lh, axis=0) / n, jnp.sum(w * lnu, axis=0) / n
    var = jnp.sum(w * (lh - mh) ** 2, axis=0)
    slope = jnp.sum(w * (lh - mh) * (lnu - mn), axis=0) / jnp.where(var > 0, var, 1.0)
    falling = slope > 0.5 * order_plus_d / d_order
    ok = (jnp.sum(use, axis=0) >= 3) & ~falling & jnp.isfinite(sigma)
    return jnp.where(ok, sigma, 0.0)


def analyze(D, h, e_model, valid, stencil: Stencil, levels: int = DEFAULT_LEVELS, gap=None):
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
    """
    dt = D.dtype
    d, p0, q = stencil.derivative, stencil.accuracy, next_order_step(stencil)
    nonfinite = jnp.any(~valid, axis=0)
    valid = valid & jnp.isfinite(D) & (h > 0)
    D = jnp.where(valid, D, 0.0)
    h = jnp.where(valid, h, 1.0)
    hd = h**d
    R = h[:-1] / h[1:]
    vpair = valid[:-1] & valid[1:] & (R > 1.05)  # taken steps can coincide near the float spacing
    R = jnp.where(vpair, R, 2.0)
    inf = jnp.asarray(jnp.inf, dt)

    # ---- pass 1: windows under the eps model, then the noise measured after the last one
    lv = _restrict(_differences(D, jnp.where(valid, e_model / hd, inf), valid, R, p0), vpair)
    idx = jnp.arange(D.shape[0] - 1, dtype=jnp.int32)[:, None]
    last_run = jnp.max(jnp.where(lv["run2"], idx, -1), axis=0)
    sigma = _measure_noise(D, hd, vpair, last_run, p0 + d, jnp.log2(R), d)
    e_bound = jnp.maximum(e_model, KAPPA * sigma[None])
    noisy = KAPPA * sigma > NOISY_FACTOR * _median(e_model, valid)  # far above eps·Σ|w f|
    N = jnp.where(valid, e_bound / hd, inf)  # ρ_k: round-off bound of D_k

    # ---- pass 2: the Richardson table with the measured noise. Level ℓ (order p + ℓq) is
    # padded to K rows and stacked along the channel axis (column ℓ·C + c), so that one set
    # of tests runs over every level at once.
    K, C = D.shape
    Ts, Ns, Vs, orders_l = [], [], [], []
    T, Nl, V, p = D, N, valid, p0
    for _ in range(levels + 1):
        if T.shape[0] < 3:
            break
        fill = K - T.shape[0]
        Ts.append(_pad_rows(T, fill, 0.0))
        Ns.append(_pad_rows(Nl, fill, jnp.inf))
        Vs.append(_pad_rows(V, fill, False))
        orders_l.append(p)
        Rp = R[: T.shape[0] - 1] ** p
        V = V[:-1] & V[1:] & vpair[: T.shape[0] - 1]
        T, Nl = T[1:] + (T[1:] - T[:-1]) / (Rp - 1), (Rp * Nl[1:] + Nl[:-1]) / (Rp - 1)
        p = p + q
    nl = len(Ts)
    stack = lambda parts: jnp.concatenate(parts, axis=1)  # noqa: E731
    tile = lambda a: jnp.tile(a, (1, nl))  # noqa: E731
    split = lambda a: a.reshape(a.shape[0], nl, C)  # noqa: E731
    T, Nl = stack(Ts), stack(Ns)
    p_col = jnp.repeat(jnp.asarray(orders_l, dt), C)[None]
    lv = _restrict(_differences(T, Nl, stack(Vs), tile(R), p_col), tile(vpair))

    # the last asymptotic window of the lowest level that has one: earlier candidates are out
    starts = split(_last_window_start(lv["asym"], lv["run2"])[None])[0]  # [levels, C]
    anchor = jnp.full((C,), -1, jnp.int32)
    for ell in reversed(range(nl)):
        anchor = jnp.where(starts[ell] >= 0, starts[ell] - 1, anchor)
    has_window = tile(anchor[None] >= 0)
    anchor = tile(anchor[None])

    j = jnp.arange(K - 1, dtype=jnp.int32)[:, None]
    dl, prev = lv["dl"], jnp.where(_back(lv["vd"], 1, False), lv["prev"], 0.0)
    pred = jnp.abs(prev) / lv["target"]
    # value T[j+1], its truncation error from Δ[j] (and the one Δ[j−1] predicts)
    ok_pos = j + 1 >= anchor
    strong = lv["run2"] | (lv["insig"] & _back(lv["run2"], 1, False))
    weak = has_window & (lv["asym"] | (lv["insig"] & _back(lv["asym"], 1, False)))
    t_strong = jnp.maximum(jnp.abs(dl), pred) / (lv["Rp"] - 1)
    t_weak = jnp.maximum(jnp.abs(dl), pred)
    # Richardson of a trusted pair of the level below: the leading term is gone, so its error
    # is at most the parent's; at most |Δ| too while the differences shrink.
    below = (
        lambda a, fill: _back(  # noqa: E731
            stack([jnp.full((K - 1, C), fill, a.dtype), a[:, : (nl - 1) * C]]), -1, fill
        )
    )
    p_strong, p_trunc = below(strong & ok_pos, False), below(t_strong, jnp.inf)
    inherit = has_window & p_strong & ~strong & ~weak
    shrinking = jnp.abs(dl) <= 0.5 * jnp.abs(prev)
    t_weak = jnp.where(inherit, jnp.where(shrinking, jnp.minimum(jnp.abs(dl), p_trunc), p_trunc), t_weak)
    trunc = jnp.where(strong, t_strong, t_weak)
    err = jnp.where(ok_pos & (strong | weak | inherit), trunc + Nl[1:], jnp.inf)
    # converged: value T[j] with Δ[j−1] (or, for j = 0, Δ[1]) and Δ[j] below the noise
    nxt = jnp.concatenate([jnp.abs(dl[1:]), jnp.zeros_like(dl[:1])])
    first = (j == 0) & _back(lv["insig"], -1, False)
    conv = lv["insig"] & (_back(lv["insig"], 1, False) | first) & (j >= anchor)
    c_trunc = jnp.maximum(jnp.abs(dl), jnp.where(j == 0, nxt, jnp.abs(prev))) * lv["Rp"] / (lv["Rp"] - 1)
    c_err = jnp.where(conv, c_trunc + Nl[:-1], jnp.inf)
    # the smallest step entering T_ℓ[j] is h[j + ℓ]
    h_l = stack([_pad_rows(h[ell:], ell, jnp.nan) for ell in range(nl)])
    level = jnp.repeat(jnp.arange(nl, dtype=jnp.int32), C)[None]
    cands = [  # each [(K−1)·levels, C]: one argmin over every level and step
        (split(a).reshape(-1, C) if a.ndim else a)
        for a in (
            jnp.concatenate(
                [jnp.where(jnp.isnan(err), jnp.inf, err), jnp.where(jnp.isnan(c_err), jnp.inf, c_err)]
            ),
            jnp.concatenate([T[1:], T[:-1]]),
            jnp.concatenate([trunc, c_trunc]),
            jnp.concatenate([Nl[1:], Nl[:-1]]),
            jnp.concatenate([h_l[1:], h_l[:-1]]),
            jnp.broadcast_to(level, (2 * (K - 1), nl * C)),
        )
    ]
    jb = jnp.argmin(cands[0], axis=0)
    best = dict(
        zip(("err", "value", "trunc", "noise", "step", "level"), (_pick(a, jb) for a in cands), strict=True)
    )
    converged = jnp.isfinite(best["err"])
    lv0 = {k: v[:, :C] for k, v in lv.items()}
    # ---- fallback: the most stable plain estimate; error: twice the spread of its neighbours
    nan_row = jnp.full((1,) + D.shape[1:], jnp.nan, dt)
    dl0 = jnp.where(lv0["vd"], lv0["dl"], jnp.nan)
    spread = jnp.fmax(jnp.abs(jnp.concatenate([nan_row, dl0])), jnp.abs(jnp.concatenate([dl0, nan_row])))
    fb_err = jnp.where(valid, jnp.where(jnp.isfinite(spread), 2 * spread, 0.0) + N, inf)
    jf = jnp.argmin(fb_err, axis=0)
    any_valid = jnp.any(valid, axis=0)
    value = jnp.where(converged, best["value"], jnp.where(any_valid, _pick(D, jf), jnp.nan))
    error = jnp.where(converged, best["err"], jnp.where(any_valid, _pick(fb_err, jf), jnp.inf))
    step = jnp.where(converged, best["step"], jnp.where(any_valid, _pick(h, jf), jnp.nan))
    noise_part = jnp.where(converged, best["noise"], _pick(N, jf))
    trunc_part = jnp.where(converged, best["trunc"], error - noise_part)

    exact = (jnp.sum(lv0["vd"], axis=0) >= 2) & ~jnp.any(lv0["sig"], axis=0)
    orders = jnp.where(
        _back(lv0["sig"], 1, False) & lv0["sig"],
        jnp.log2(jnp.abs(lv0["ratio"])) / jnp.log2(_back(R, 1, 2.0)),
        jnp.nan,
    )
    in_window = lv0["asym"] & (idx >= _last_window_start(lv0["asym"], lv0["run2"])[None])
    p_hat = _median(orders, in_window)

    def flag(cond, s):
        return jnp.where(cond, jnp.int32(int(s)), jnp.int32(0))

    status = flag(converged, Status.CONVERGED) | flag(~converged, Status.NO_WINDOW)
    status |= flag(converged & exact & ~noisy, Status.EXACT)
    status |= flag(converged & ~exact & (noise_part > trunc_part), Status.ROUNDOFF_LIMITED)
    status |= flag(noisy, Status.NOISY)
    status |= flag(nonfinite, Status.NONFINITE)

    pad = lambda a, fill: jnp.concatenate([a, jnp.full((1,) + a.shape[1:], fill, a.dtype)])  # noqa: E731
    out = dict(
        estimate=value,
        error=error,
        step=step,
        level=jnp.where(converged, best["level"], 0),
        order=p_hat,
        noise=KAPPA * sigma,
        roundoff=N,
        differences=pad(jnp.where(lv0["vd"], lv0["dl"], jnp.nan), jnp.nan),
        significant=pad(lv0["sig"], False),
        orders=pad(orders, jnp.nan),
    )
    if gap is not None:
        kink, i_k, slope_gap = _kink(gap, hd, valid, sigma)
        status |= flag(kink, Status.KINK)
        out["error"] = jnp.where(kink, jnp.fmax(out["error"], jnp.abs(slope_gap) / 2), out["error"])
        out["kink_index"] = i_k
        out["gap"] = slope_gap
    out["status"] = status
    return out


def _kink(gap, hd, valid, sigma):
    """KINK: g_k = (f(x+h) − 2f(x) + f(x−h))/h stays significant and does not shrink like h.

    For a smooth f, g_k ≈ h·f''(x) halves with h; at a kink it tends to the jump of the
    slope. The last three consecutive significant g's decide. Returns (flag, the step index
    of the last significant g, the largest slope gap of those three).
    """
    g, g_model, g_scale = gap
    K = g.shape[0]
    noise = jnp.maximum(g_model, KAPPA * g_scale * sigma[None])
    sig = valid & (jnp.abs(g) > 2 * noise)
    g = g / hd
    prev = _back(g, 1, 0.0)
    flat = sig & _back(sig, 1, False) & (g / jnp.where(prev == 0, 1.0, prev) >= 0.7)
    triple = sig & _back(sig, 1, False) & _back(sig, 2, False)
    last = jnp.max(jnp.where(triple, jnp.arange(K, dtype=jnp.int32)[:, None], -1), axis=0)
    at = jnp.maximum(last, 0)
    kink = (last >= 2) & _pick(flat, at) & _pick(flat, jnp.maximum(at - 1, 0))
    gmax = jnp.max(jnp.abs(jnp.stack([_pick(g, jnp.maximum(at - i, 0)) for i in range(3)])), axis=0)
    return kink, at, gmax
