"""Figures of a report (matplotlib, Agg backend), from plain numbers — never from a model.

Each ``*_figure`` function returns a ``matplotlib.figure.Figure``; ``svg_data_uri`` turns
one into a ``data:image/svg+xml;base64,...`` URI for a self-contained HTML page.
matplotlib is imported on first use: it is an optional dependency (``fdjax[report]``).

Sizes: the HTML report shows a figure at its natural size or a little smaller (``WIDTH``
fits one column of the page's two-column grid, ``NARROW`` the figure beside the gradient
norms table), so a font of ``FONT["min"]`` points reads as about 11 px or more.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any, cast
from collections.abc import Sequence

import numpy as np

__all__ = [
    "require_matplotlib",
    "svg_data_uri",
    "save",
    "error_vs_step_figure",
    "relative_error_histogram",
    "disagreement_figure",
    "secant_figure",
    "parameter_slice_figure",
    "gradient_norms_figure",
    "landscape_figure",
    "text_sizes",
    "PALETTE",
    "FONT",
    "WIDTH",
    "NARROW",
]

#: Colours shared by the figures and the HTML page.
PALETTE = {
    "ink": "#1f2933",
    "muted": "#7b8794",
    "grid": "#e4e7eb",
    "band": "#f1f4f8",
    "blue": "#2563eb",
    "orange": "#ea580c",
    "green": "#16a34a",
    "red": "#dc2626",
    "purple": "#7c3aed",
    "teal": "#0d9488",
}
_CYCLE = ["#2563eb", "#ea580c", "#16a34a", "#7c3aed", "#0d9488", "#db2777", "#ca8a04", "#475569"]

#: Font sizes in points (1 pt = 4/3 px at the natural size). ``min`` is the smallest used.
FONT = {"title": 12.0, "label": 10.5, "tick": 9.5, "legend": 9.0, "note": 9.0, "min": 9.0}

#: Figure widths in inches (96 px each at the natural size): a column of the HTML page's
#: two-column grid (about 510 px wide at 1280 px), and the figure beside the norms table.
WIDTH = 5.3
NARROW = 4.6


def require_matplotlib():
    """Import matplotlib with the Agg backend, or raise a clear ImportError."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("fdjax reports with plots need matplotlib: pip install 'fdjax[report]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float = WIDTH, height: float = 4.0):
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    _style(ax)
    return fig, ax


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(PALETTE["muted"])
    ax.tick_params(colors=PALETTE["ink"], labelsize=FONT["tick"])
    ax.tick_params(which="minor", labelsize=FONT["tick"])
    ax.xaxis.label.set_fontsize(FONT["label"])
    ax.yaxis.label.set_fontsize(FONT["label"])
    ax.grid(True, color=PALETTE["grid"], linewidth=0.8)
    ax.set_axisbelow(True)
    ax.title.set_color(PALETTE["ink"])


def _title(ax, text: str) -> None:
    ax.set_title(text, fontsize=FONT["title"], loc="left")


def text_sizes(fig) -> list[tuple[float, str]]:
    """(font size in points, text) of every visible, non-empty text of a drawn figure: titles,
    labels, tick labels, legends, annotations. For tests of readability."""
    from matplotlib.text import Text

    fig.canvas.draw()
    out = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None:
            if t.get_window_extent().width > 0:
                out.append((float(t.get_fontsize()), t.get_text()))
    return out


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
    fig, ax = _figure(WIDTH, 4.4)
    for i, c in enumerate(curves):
        color = _CYCLE[i % len(_CYCLE)]
        h = np.asarray(c["steps"], dtype=np.float64)
        e = _positive(c["errors"])
        ax.plot(h, e, "o-", ms=3, lw=1.4, color=color, label=c["name"])
        if c.get("roundoff") is not None:
            r = _positive(c["roundoff"])
            ax.plot(h[: len(r)], r, ":", lw=1.0, color=color, alpha=0.7)
        hs = c.get("chosen_step")
        if hs is not None and np.isfinite(hs) and hs > 0 and h.size:
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
    _title(ax, title)
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    muted = PALETTE["muted"]
    handles += [
        Line2D([], [], ls="--", color=muted, label="truncation ∝ h^p"),
        Line2D([], [], ls=":", color=muted, label="round-off bound"),
        Line2D([], [], ls="", marker="*", ms=10, color=muted, label="chosen h, its error"),
    ]
    fig.legend(handles=handles, fontsize=FONT["legend"], frameon=False, ncols=2, loc="outside lower center")
    return fig


def relative_error_histogram(
    leaves: Sequence[tuple[str, Sequence[float]]], tolerance: float | None = None, nonfinite: int = 0
):
    """Histogram of per-element relative errors (log10), one colour per leaf; ``nonfinite``
    elements (NaN/inf, no relative error) are counted in a note, not binned."""
    fig, ax = _figure(WIDTH, 4.0)
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
    if nonfinite:
        ax.text(
            0.99,
            0.97,
            f"{nonfinite} non-finite element(s) not shown",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=FONT["note"],
            color=PALETTE["purple"],
        )
    ax.set_xlabel("log10 relative error |a − n| / max(|a|, |n|)")
    ax.set_ylabel("elements")
    _title(ax, "Relative error per element")
    if allv.size:
        ax.legend(fontsize=FONT["legend"], frameon=False, loc="upper left")
    return fig


def disagreement_figure(
    x: Sequence[float],
    ratio: Sequence[float],
    status: Sequence[str],
    names: Sequence[str],
    groups: Sequence[tuple[str, float, float]] = (),
    *,
    what: str = "elements",
    max_labels: int = 5,
):
    """|a − n| / tolerance of every measurement on a log scale, the tolerance as a line at 1.

    A measurement fails above the line. Failures are red crosses, the worst ``max_labels``
    numbered and named in the legend; non-finite measurements (``ratio`` nan, or status
    "nonfinite") are purple triangles in a band at the top; kinks orange diamonds and other
    inconclusive measurements (a tolerance as large as the values compared) grey hollow
    squares: neither passes nor fails; exact agreement (ratio 0) is a hollow circle on the
    bottom edge.

    Args:
        x: positions (element slots grouped by leaf, or direction numbers).
        ratio: |a − n| / tolerance per measurement.
        status: "pass", "fail", "kink", "nonfinite" or "inconclusive" per measurement.
        names: what each measurement is (the element's or direction's name).
        groups: (name, x0, x1) bands (one per leaf), shaded alternately and named on the x axis.
        what: "elements" or "directions" (the axis label).
        max_labels: how many of the worst failures to number and name.
    """
    from matplotlib.lines import Line2D

    fig, ax = _figure(WIDTH, 4.6)
    xs = np.asarray(x, dtype=np.float64)
    r = np.asarray(ratio, dtype=np.float64)
    st = np.asarray(list(status), dtype=object)
    nonfinite = (st == "nonfinite") | np.isnan(r)
    kink = (st == "kink") & ~nonfinite
    fail = (st == "fail") & ~nonfinite
    unsure = (st == "inconclusive") & ~nonfinite
    ok = ~(nonfinite | kink | fail | unsure)
    exact = ok & (r == 0)
    ok &= ~exact
    pos = r[np.isfinite(r) & (r > 0)]
    lo = 10.0 ** math.floor(math.log10(min(pos.min(), 0.1))) if pos.size else 1e-3
    hi = 10.0 ** math.ceil(math.log10(max(pos.max(), 10.0))) if pos.size else 10.0
    top = hi * 4  # the band for non-finite and infinite ratios
    y = np.where(np.isfinite(r), np.maximum(r, lo), top)
    y = np.where(nonfinite, top, y)

    for band, (_, x0, x1) in enumerate(groups):
        if band % 2:
            ax.axvspan(x0, x1, color=PALETTE["band"], zorder=0, lw=0)
    if groups:
        ax.set_xticks([(x0 + x1) / 2 for _, x0, x1 in groups])
        # About 7 px per monospace character in a band of 400 px / len(groups).
        many = max(len(n) for n, _, _ in groups) * len(groups) > 48
        ax.set_xticklabels(
            [n for n, _, _ in groups],
            fontfamily="monospace",
            rotation=30 if many else 0,
            ha="right" if many else "center",
            rotation_mode="anchor",
        )
        ax.set_xlim(groups[0][1], groups[-1][2])
        ax.grid(False, axis="x")
        ax.set_xlabel("element, grouped by leaf (each leaf one band, in flat order)")
    else:
        ax.set_xlabel("direction" if what == "directions" else what)
        if what == "directions":
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    raster = xs.size > 4000
    ax.axhline(1.0, color=PALETTE["red"], ls="--", lw=1.2, zorder=2)
    ax.scatter(
        xs[ok], y[ok], s=12, color=PALETTE["blue"], alpha=0.7, label="passed", rasterized=raster, zorder=3
    )
    markers: tuple[tuple[Any, str, dict[str, Any]], ...] = (  # mask, label, style per outcome
        (exact, "exactly equal (at 0)", dict(s=14, facecolors="none", edgecolors=PALETTE["blue"], zorder=3)),
        (kink, "kink (inconclusive)", dict(s=20, marker="D", color=PALETTE["orange"], zorder=3)),
        (
            unsure,
            "inconclusive",
            dict(s=22, marker="s", facecolors="none", edgecolors=PALETTE["muted"], zorder=3),
        ),
        (fail, "failed", dict(s=30, marker="x", color=PALETTE["red"], zorder=4)),
        (nonfinite, "non-finite", dict(s=34, marker="^", color=PALETTE["purple"], zorder=4)),
    )
    for mask, label, style in markers:
        if mask.any():
            ax.scatter(xs[mask], y[mask], label=label, **style)
    ax.set_yscale("log")
    if (y >= top).any():
        ax.set_ylim(lo / 1.5, top * 3)
        ax.axhline(hi * 1.8, color=PALETTE["muted"], lw=0.8)
        ax.text(
            0.99,
            top * 1.5,
            "non-finite / ∞",
            transform=ax.get_yaxis_transform(),
            fontsize=FONT["note"],
            color=PALETTE["purple"],
            va="bottom",
            ha="right",
        )
    else:
        ax.set_ylim(lo / 1.5, hi * 1.5)
    ax.set_ylabel("|a − n| / tolerance")
    _title(ax, f"Disagreement per {'direction' if what == 'directions' else 'element'}")

    handles, _ = ax.get_legend_handles_labels()
    handles.insert(0, Line2D([], [], ls="--", color=PALETTE["red"], label="tolerance (fails above)"))
    worst = np.flatnonzero(fail | nonfinite)
    key = np.where(nonfinite[worst], -np.inf, -np.nan_to_num(r[worst], nan=np.inf))
    worst = worst[np.argsort(key, kind="stable")][:max_labels]
    for k, i in enumerate(worst, start=1):
        ax.annotate(
            str(k),
            (xs[i], y[i]),
            textcoords="offset points",
            xytext=(4, 3 + 9 * ((k - 1) % 2)),
            fontsize=FONT["note"],
            fontweight="bold",
            color=PALETTE["ink"],
        )
        times = "non-finite" if nonfinite[i] else f"{r[i]:.3g} × tol"
        handles.append(
            Line2D(
                [], [], ls="", marker=f"${k}$", ms=7, color=PALETTE["ink"], label=f"{names[int(i)]}: {times}"
            )
        )
    more = int((fail | nonfinite).sum()) - len(worst)
    if more > 0:
        handles.append(Line2D([], [], ls="", label=f"… {more} more failing"))
    # Artist.get_label() is typed ``object``: the labels of legend handles are str
    wide = max(len(cast(str, h.get_label())) for h in handles) > 30
    fig.legend(
        handles=handles,
        fontsize=FONT["legend"],
        frameon=False,
        ncols=1 if wide else 2,
        loc="outside lower center",
    )
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
    fig, ax = _figure(WIDTH, 4.0)
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
            names[k],
            (x, y),
            textcoords="offset points",
            xytext=(6, -14),
            fontsize=FONT["note"],
            color=PALETTE["ink"],
        )
    ax.axvline(theta, color=PALETTE["muted"], lw=0.8, ls=":")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("J")
    _title(ax, title)
    ax.legend(fontsize=FONT["legend"], frameon=False)
    return fig


def _g(v: float, digits: int = 8) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{digits}g}"


def parameter_slice_figure(view: dict[str, Any]):
    """One parameter by hand, at a scale where a correct gradient looks correct.

    Top: the loss along the parameter, the tangent with the AD slope, and the FD secant at
    the check's step h (at that step a correct gradient's secant and tangent coincide).
    Bottom: how far the slope of the central secant through J(θ ± ε) is from the AD slope as
    the width ε shrinks: a correct gradient's gap falls like ε² (truncation) down to the
    point at h; a wrong one levels off at the size of the error.

    ``view`` is ``_views.slice_view(doc["parameter_slice"])``.
    """
    plt = require_matplotlib()
    from matplotlib.lines import Line2D

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(WIDTH, 6.6), layout="constrained", height_ratios=(3, 2.3))
    _style(ax)
    _style(ax2)
    theta, j0, a, n, h = (view[k] for k in ("theta", "loss", "analytic", "numeric", "step"))
    x, y = np.asarray(view["x"]), np.asarray(view["losses"])
    ax.plot(x, y, color=PALETTE["ink"], lw=1.6, label="J along the parameter", zorder=2)
    t = np.asarray([x.min(), x.max()])
    if math.isfinite(n):
        ax.plot(
            t,
            j0 + n * (t - theta),
            color=PALETTE["blue"],
            lw=3.2,
            alpha=0.55,
            zorder=3,
            label=f"FD secant at h = {h:.2g}: slope {_g(n)}",
        )
    if math.isfinite(a):
        ax.plot(
            t,
            j0 + a * (t - theta),
            "--",
            color=PALETTE["orange"],
            lw=1.4,
            zorder=4,
            label=f"tangent, jax.grad: slope {_g(a)}",
        )
    ax.plot([theta], [j0], "o", ms=6, color=PALETTE["ink"], zorder=5)
    ax.axvline(theta, color=PALETTE["muted"], lw=0.8, ls=":")
    rel = abs(n - a) / abs(a) if a != 0 and math.isfinite(a) and math.isfinite(n) else abs(n - a)
    handles, _ = ax.get_legend_handles_labels()
    what = "|FD − AD| / |AD|" if a != 0 else "|FD − AD|"
    handles.append(
        Line2D([], [], ls="", label=f"{what} = {rel:.2g}" if math.isfinite(rel) else f"{what}: nan")
    )
    ax.legend(handles=handles, fontsize=FONT["legend"], frameon=False, loc="best")
    yf = y[np.isfinite(y)]
    if yf.size:  # the lines may run far outside the curve: keep the curve in view
        pad = 0.08 * (yf.max() - yf.min() or 1.0)
        ax.set_ylim(yf.min() - pad, yf.max() + pad)
    ax.set_xlim(t[0], t[1])
    ax.set_xlabel(view["parameter"])
    ax.set_ylabel("J")
    _title(ax, f"J along {view['parameter']}")

    w = np.asarray(view["widths"], dtype=np.float64)
    s = np.asarray(view["secant_slopes"], dtype=np.float64)
    scale = abs(a) if a != 0 and math.isfinite(a) else 1.0
    gap = np.abs(s - a) / scale
    at_h = abs(n - a) / scale
    tiny = 1e-17
    ax2.plot(
        w, np.maximum(gap, tiny), "o-", ms=3.5, lw=1.3, color=PALETTE["blue"], label="secant through J(θ ± ε)"
    )
    good = np.isfinite(gap) & (gap > 0)
    if good.any():
        i0 = int(np.flatnonzero(good)[0])
        ws = np.geomspace(min(h, w[i0]), w[i0], 20)
        ax2.plot(
            ws, gap[i0] * (ws / w[i0]) ** 2, "--", lw=1.0, color=PALETTE["muted"], label="∝ ε² (truncation)"
        )
    if math.isfinite(at_h):
        ax2.plot(
            [h],
            [max(at_h, tiny)],
            marker="*",
            ms=14,
            ls="",
            color=PALETTE["blue"],
            markeredgecolor="white",
            label=f"at the check's step h = {h:.2g}: {at_h:.2g}",
        )
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("secant half-width ε")
    ax2.set_ylabel("|slope − AD|" + (" / |AD|" if a != 0 else ""))
    ax2.legend(fontsize=FONT["legend"], frameon=False, loc="best")
    return fig


def gradient_norms_figure(names: Sequence[str], norms: Sequence[float], flags: Sequence[str]):
    """Horizontal bars of each leaf's gradient norm (log scale); flagged leaves in colour; a
    non-finite norm is a hatched bar across the whole axis marked "nan"/"inf"."""
    fig, ax = _figure(NARROW, max(2.0, 0.42 * len(names) + 1.2))
    v = np.asarray([np.nan if x is None else x for x in norms], dtype=np.float64)
    colors = [
        PALETTE["red"]
        if f in ("exploding", "nonfinite")
        else PALETTE["orange"]
        if f == "vanishing"
        else PALETTE["blue"]
        for f in flags
    ]
    y = np.arange(len(names))[::-1]
    finite = np.isfinite(v)
    pos = v[finite & (v > 0)]
    floor = pos.min() / 10 if pos.size else 1e-12
    ceil = pos.max() * 30 if pos.size else 1.0
    widths = np.where(finite & (v > 0), v, np.where(finite, floor, ceil))
    bars = ax.barh(y, widths, color=colors, height=0.6, left=0)
    for bar, ok in zip(bars, finite, strict=False):
        if not ok:
            bar.set_hatch("///")
            bar.set_facecolor("white")
            bar.set_edgecolor(PALETTE["red"])
    ax.set_yticks(y, names, fontsize=FONT["tick"], fontfamily="monospace")
    ax.set_xscale("log")
    ax.set_xlim(floor / 2, ceil * 2 if not finite.all() else (pos.max() if pos.size else 1.0) * 8)
    ax.set_xlabel("‖∇‖ per leaf (analytic gradient)")
    _title(ax, "Layer-wise gradient norms")
    for yi, vi, wi, f in zip(y, v, widths, flags, strict=False):
        text = ("nan" if math.isnan(vi) else f"{vi:.3g}") + (f"  {f}" if f != "ok" else "")
        ax.annotate(
            text,
            (floor if not np.isfinite(vi) else wi, yi),
            textcoords="offset points",
            xytext=(4, -3),
            fontsize=FONT["note"],
            color=PALETTE["ink"],
        )
    ax.grid(False, axis="y")
    return fig


def landscape_figure(alphas: Sequence[float], betas: Sequence[float], loss: Sequence[Sequence[float]]):
    """Filled contour of the loss on the (α, β) grid, the parameters at the centre; grid
    points where the loss is not finite are marked with crosses."""
    fig, ax = _figure(5.0, 4.4)
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
        cbar.set_label("loss", fontsize=FONT["label"])
        cbar.ax.tick_params(labelsize=FONT["tick"])
    if not finite.all():
        ia, ib = np.nonzero(~finite)
        ax.plot(a[ia], b[ib], "x", ms=6, color=PALETTE["red"], label="loss not finite")
        ax.legend(fontsize=FONT["legend"], frameon=False, loc="upper right")
    ax.plot([0], [0], marker="*", ms=14, color="white", markeredgecolor=PALETTE["ink"])
    ax.set_xlabel("α (direction 1)")
    ax.set_ylabel("β (direction 2)")
    _title(ax, "Loss landscape slice")
    ax.grid(False)
    ax.set_aspect("equal")
    return fig
