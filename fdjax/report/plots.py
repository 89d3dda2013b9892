"""Figures of a report (matplotlib, Agg backend), from plain numbers — never from a model.

Each ``*_figure`` function returns a ``matplotlib.figure.Figure``; ``svg_data_uri`` turns
one into a ``data:image/svg+xml;base64,...`` URI for a self-contained HTML page.
matplotlib is imported on first use: it is an optional dependency (``fdjax[report]``).
"""

from __future__ import annotations

import base64
import io
from typing import Any
from collections.abc import Sequence

import numpy as np

__all__ = [
    "require_matplotlib",
    "svg_data_uri",
    "save",
    "error_vs_step_figure",
    "relative_error_histogram",
    "scatter_figure",
    "secant_figure",
    "gradient_norms_figure",
    "landscape_figure",
    "PALETTE",
]

#: Colours shared by the figures and the HTML page.
PALETTE = {
    "ink": "#1f2933",
    "muted": "#7b8794",
    "grid": "#e4e7eb",
    "blue": "#2563eb",
    "orange": "#ea580c",
    "green": "#16a34a",
    "red": "#dc2626",
    "purple": "#7c3aed",
    "teal": "#0d9488",
}
_CYCLE = ["#2563eb", "#ea580c", "#16a34a", "#7c3aed", "#0d9488", "#db2777", "#ca8a04", "#475569"]


def require_matplotlib():
    """Import matplotlib with the Agg backend, or raise a clear ImportError."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("fdjax reports with plots need matplotlib: pip install 'fdjax[report]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float = 6.4, height: float = 4.0):
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    _style(ax)
    return fig, ax


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(PALETTE["muted"])
    ax.tick_params(colors=PALETTE["ink"], labelsize=9)
    ax.grid(True, color=PALETTE["grid"], linewidth=0.8)
    ax.set_axisbelow(True)
    ax.title.set_color(PALETTE["ink"])


def svg_data_uri(fig) -> str:
    """The figure as an SVG data URI (the figure is closed)."""
    plt = require_matplotlib()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def save(fig, path: str) -> None:
    """Write the figure to ``path`` (format from the suffix: .png, .svg, .pdf) and close it."""
    plt = require_matplotlib()
    fig.savefig(path, dpi=150, metadata=None if not str(path).endswith(".svg") else {"Date": None})
    plt.close(fig)


def _positive(a) -> np.ndarray:
    a = np.asarray([np.nan if v is None else v for v in a], dtype=np.float64)
    return np.where(a > 0, a, np.nan)


def error_vs_step_figure(curves: Sequence[dict[str, Any]], title: str = "Error vs step h"):
    """Log-log error against h for a few parameters: the V-shaped curve.

    Each curve is a dict with ``name``, ``steps`` and ``errors`` (true error when known, else
    |D_k − D_{k+1}|), optional ``roundoff`` (the round-off bound per step), ``chosen_step``,
    ``order`` (p for the truncation model line C·h^p through the curve at the chosen step),
    ``chosen_error`` (the error of the chosen estimate, drawn as a star at the chosen step:
    it may be a Richardson extrapolation, far below the plain curve) and ``error_label``.
    """
    fig, ax = _figure(6.6, 4.2)
    for i, c in enumerate(curves):
        color = _CYCLE[i % len(_CYCLE)]
        h = np.asarray(c["steps"], dtype=np.float64)
        e = _positive(c["errors"])
        ax.plot(h, e, "o-", ms=3, lw=1.4, color=color, label=c["name"])
        if c.get("roundoff") is not None:
            r = _positive(c["roundoff"])
            ax.plot(h[: len(r)], r, ":", lw=1.0, color=color, alpha=0.7)
        hs = c.get("chosen_step")
        if hs is not None and np.isfinite(hs) and hs > 0:
            k = int(np.nanargmin(np.abs(np.log(h) - np.log(hs))))
            p = c.get("order")
            ek = e[k]
            if p is not None and np.isfinite(p) and np.isfinite(ek):
                trunc_h = h[h >= hs]
                ax.plot(trunc_h, ek * (trunc_h / hs) ** p, "--", lw=1.0, color=color, alpha=0.8)
            ce = c.get("chosen_error")
            y = ce if ce is not None and np.isfinite(ce) and ce > 0 else ek
            if np.isfinite(y):
                ax.plot([hs], [y], marker="*", ms=13, color=color, markeredgecolor="white", zorder=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step h")
    label = curves[0].get("error_label", "error") if curves else "error"
    ax.set_ylabel(label)
    ax.set_title(title, fontsize=11, loc="left")
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    muted = PALETTE["muted"]
    handles += [
        Line2D([], [], ls="--", color=muted, label="truncation ∝ h^p"),
        Line2D([], [], ls=":", color=muted, label="round-off bound"),
        Line2D([], [], ls="", marker="*", ms=10, color=muted, label="chosen h, its error"),
    ]
    ax.legend(handles=handles, fontsize=8, frameon=False, ncols=2)
    return fig


def relative_error_histogram(leaves: Sequence[tuple[str, Sequence[float]]], tolerance: float | None = None):
    """Histogram of per-element relative errors (log10), one colour per leaf."""
    fig, ax = _figure(6.6, 4.0)
    tiny = 1e-18
    data = []
    for name, errs in leaves:
        e = np.asarray([np.nan if v is None else v for v in errs], dtype=np.float64)
        e = e[np.isfinite(e)]
        data.append((name, np.log10(np.maximum(e, tiny))))
    allv = np.concatenate([d for _, d in data]) if data else np.zeros(0)
    if allv.size:
        lo, hi = np.floor(allv.min()), np.ceil(allv.max())
        bins = np.linspace(lo, max(hi, lo + 1), 40)
        ax.hist(
            [d for _, d in data],
            bins=bins,
            stacked=True,
            label=[n for n, _ in data],
            color=_CYCLE[: len(data)] if len(data) <= len(_CYCLE) else None,
        )
    if tolerance:
        ax.axvline(np.log10(tolerance), color=PALETTE["red"], ls="--", lw=1, label="tolerance")
    ax.set_xlabel("log10 relative error |a − n| / max(|a|, |n|)")
    ax.set_ylabel("elements")
    ax.set_title("Relative error per element", fontsize=11, loc="left")
    ax.legend(fontsize=8, frameon=False)
    return fig


def scatter_figure(
    analytic: Sequence[float],
    numeric: Sequence[float],
    failed: Sequence[bool] | None = None,
    kink: Sequence[bool] | None = None,
):
    """Analytic (AD) against numeric (FD) gradient, one point per element, with y = x."""
    fig, ax = _figure(6.0, 4.2)
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    bad = np.zeros(a.shape, bool) if failed is None else np.asarray(failed, bool)
    kk = np.zeros(a.shape, bool) if kink is None else np.asarray(kink, bool)
    ok = ~bad & ~kk
    lim = np.nanmax(np.abs(np.concatenate([a, n]))) if a.size else 1.0
    lim = 1.05 * (lim if np.isfinite(lim) and lim > 0 else 1.0)
    ax.plot([-lim, lim], [-lim, lim], color=PALETTE["muted"], lw=1, zorder=1)
    ax.scatter(a[ok], n[ok], s=9, color=PALETTE["blue"], alpha=0.7, label="passed", rasterized=a.size > 4000)
    if kk.any():
        ax.scatter(a[kk], n[kk], s=16, marker="D", color=PALETTE["orange"], label="kink")
    if bad.any():
        ax.scatter(a[bad], n[bad], s=22, marker="x", color=PALETTE["red"], label="failed")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("analytic (jax.grad)")
    ax.set_ylabel("numeric (finite differences)")
    ax.set_title("Analytic vs numeric", fontsize=11, loc="left")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return fig


def secant_figure(
    theta: float,
    epsilon: float,
    points: Sequence[tuple[float, float]],
    through: tuple[float, float],
    slope: float,
    *,
    curve: tuple[Sequence[float], Sequence[float]] | None = None,
    tangent: tuple[float, float] | None = None,
    title: str = "Loss points and secant",
    xlabel: str = "θ",
):
    """The calculator's chart: the loss points, the secant line (slope = the FD gradient)
    through the point ``through``, and optionally the loss curve and the tangent
    ``tangent = (J(θ), analytic slope)``."""
    fig, ax = _figure(6.0, 4.0)
    pts = sorted(points)
    xs = np.asarray([p[0] for p in pts], dtype=np.float64)
    ys = np.asarray([p[1] for p in pts], dtype=np.float64)
    if curve is not None:
        ax.plot(curve[0], curve[1], color=PALETTE["ink"], lw=1.6, label="J along θ", zorder=2)
        lo, hi = float(np.min(curve[0])), float(np.max(curve[0]))
    else:
        span = xs.max() - xs.min() if xs.max() > xs.min() else max(abs(theta), 1.0)
        lo, hi = xs.min() - 0.6 * span, xs.max() + 0.6 * span
    t = np.linspace(lo, hi, 2)
    ax.plot(
        t,
        through[1] + slope * (t - through[0]),
        color=PALETTE["blue"],
        lw=1.5,
        label=f"secant (FD), slope {slope:.6g}",
        zorder=3,
    )
    if tangent is not None:
        ax.plot(
            t,
            tangent[0] + tangent[1] * (t - theta),
            "--",
            color=PALETTE["orange"],
            lw=1.4,
            label=f"tangent (analytic), slope {tangent[1]:.6g}",
            zorder=3,
        )
    ax.plot(xs, ys, "o", ms=7, color=PALETTE["blue"], markeredgecolor="white", zorder=5)
    names = {-1: "J(θ−ε)", 0: "J(θ)", 1: "J(θ+ε)"}
    for x, y in pts:
        k = int(np.clip(np.round((x - theta) / epsilon), -1, 1)) if epsilon > 0 else 0
        ax.annotate(
            names[k], (x, y), textcoords="offset points", xytext=(6, -14), fontsize=9, color=PALETTE["ink"]
        )
    ax.axvline(theta, color=PALETTE["muted"], lw=0.8, ls=":")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("J")
    ax.set_title(title, fontsize=11, loc="left")
    ax.legend(fontsize=8, frameon=False)
    return fig


def gradient_norms_figure(names: Sequence[str], norms: Sequence[float], flags: Sequence[str]):
    """Horizontal bars of each leaf's gradient norm (log scale); flagged leaves in colour."""
    fig, ax = _figure(6.6, max(1.8, 0.42 * len(names) + 1.0))
    v = np.asarray(norms, dtype=np.float64)
    colors = [
        PALETTE["red"] if f == "exploding" else PALETTE["orange"] if f == "vanishing" else PALETTE["blue"]
        for f in flags
    ]
    y = np.arange(len(names))[::-1]
    floor = np.nanmin(v[v > 0]) / 10 if np.any(v > 0) else 1e-12
    ax.barh(y, np.where(v > 0, v, floor), color=colors, height=0.6, left=0)
    ax.set_yticks(y, names, fontsize=9, fontfamily="monospace")
    ax.set_xscale("log")
    ax.set_xlabel("‖∇‖ per leaf (analytic gradient)")
    ax.set_title("Layer-wise gradient norms", fontsize=11, loc="left")
    for yi, vi, f in zip(y, v, flags, strict=False):
        ax.annotate(
            f"{vi:.3g}" + (f"  {f}" if f != "ok" else ""),
            (max(vi, floor), yi),
            textcoords="offset points",
            xytext=(4, -3),
            fontsize=8,
            color=PALETTE["ink"],
        )
    ax.grid(False, axis="y")
    return fig


def landscape_figure(alphas: Sequence[float], betas: Sequence[float], loss: Sequence[Sequence[float]]):
    """Filled contour of the loss on the (α, β) grid, the parameters at the centre."""
    fig, ax = _figure(5.2, 4.4)
    a = np.asarray(alphas, dtype=np.float64)
    b = np.asarray(betas, dtype=np.float64)
    z = np.asarray([[np.nan if v is None else v for v in row] for row in loss], dtype=np.float64)
    finite = np.isfinite(z)
    if finite.any():
        lo, hi = np.nanmin(z), np.nanpercentile(z, 98)
        levels = np.linspace(lo, hi if hi > lo else lo + 1, 18)
        cs = ax.contourf(a, b, np.clip(z, lo, hi).T, levels=levels, cmap="viridis")
        ax.contour(a, b, np.clip(z, lo, hi).T, levels=levels[::3], colors="white", linewidths=0.5, alpha=0.6)
        cbar = fig.colorbar(cs, ax=ax, shrink=0.9)
        cbar.set_label("loss", fontsize=9)
        cbar.ax.tick_params(labelsize=8)
    ax.plot([0], [0], marker="*", ms=14, color="white", markeredgecolor=PALETTE["ink"])
    ax.set_xlabel("α (direction 1)")
    ax.set_ylabel("β (direction 2)")
    ax.set_title("Loss landscape slice", fontsize=11, loc="left")
    ax.grid(False)
    ax.set_aspect("equal")
    return fig
