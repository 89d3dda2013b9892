"""Self-contained HTML rendering of a report document.

One file: inline CSS, plots as SVG data URIs, the document itself embedded as JSON
(``<script type="application/json" id="fdjax-report">``). Nothing is fetched over the
network; no JavaScript is needed to read it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Set
from typing import Any

from . import _views, plots
from ._format import LEAF_COLUMNS, duration, leaf_figures, num, sci, shape

__all__ = ["render_html", "figures"]

_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff;
  --green:#15803d; --green-bg:#dcfce7; --red:#b91c1c; --red-bg:#fee2e2; --amber:#b45309; --amber-bg:#fef3c7;
  --blue:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1180px; margin:0 auto; padding:24px 28px 48px; }
header.top { display:flex; align-items:baseline; justify-content:space-between; gap:16px;
  margin-bottom:14px; }
header.top h1 { font-size:20px; margin:0; letter-spacing:-0.01em; }
header.top h1 span { color:var(--muted); font-weight:400; }
header.top .when { color:var(--muted); font-size:12px; }
h2 { font-size:16px; margin:0 0 10px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:18px 20px;
  margin:16px 0;
  box-shadow:0 1px 2px rgba(16,24,40,.04); }
.verdict { border-left:6px solid var(--muted); }
.verdict.pass { border-left-color:var(--green); }
.verdict.fail { border-left-color:var(--red); }
.verdict.inconclusive { border-left-color:var(--amber); }
.badge { display:inline-block; font-weight:700; font-size:13px; letter-spacing:.04em; padding:3px 10px;
  border-radius:999px; margin-right:10px; vertical-align:2px; }
.pass .badge { background:var(--green-bg); color:var(--green); }
.fail .badge { background:var(--red-bg); color:var(--red); }
.inconclusive .badge { background:var(--amber-bg); color:var(--amber); }
p.remedy { margin:10px 0 0; }
ul.check-notes { margin:10px 0 0; padding-left:18px; color:var(--muted); font-size:12.5px; }
ul.reasons { margin:10px 0 0; padding-left:18px; font-size:12.5px; }
.info .badge { background:#e0e7ff; color:#3730a3; }
.headline { font-size:17px; font-weight:600; }
.facts { display:grid; grid-template-columns:repeat(auto-fill, minmax(210px, 1fr)); gap:10px 22px;
  margin-top:14px; }
.facts div { min-width:0; }
.facts dt { color:var(--muted); font-size:11px; text-transform:uppercase; letter-spacing:.06em; }
.facts dd { margin:0; font-weight:600; overflow-wrap:anywhere; }
pre.cmd { background:#0f172a; color:#e2e8f0; padding:9px 12px; border-radius:7px; margin:14px 0 0;
  font:12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:13px; }
.table { overflow-x:auto; }
p.note { color:var(--muted); font-size:12.5px; margin:8px 0 0; }
th { text-align:left; color:var(--muted); font-weight:600; font-size:11.5px; text-transform:uppercase;
  letter-spacing:.04em; border-bottom:1px solid var(--line); padding:6px 8px; white-space:nowrap; }
td { border-bottom:1px solid var(--line); padding:6px 8px; font-variant-numeric:tabular-nums;
  white-space:nowrap; }
td.wrap { white-space:normal; min-width:14em; }
th.status, td.status { width:1%; }
td.num { text-align:right; white-space:nowrap;
  font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
td code, td .path { white-space:nowrap;
  font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
tr.bad td { background:var(--red-bg); }
tr.warn td { background:var(--amber-bg); }
.pill { display:inline-block; white-space:nowrap; margin:1px 0; padding:1px 8px; border-radius:999px;
  font-size:11.5px; font-weight:600; }
.pill.ok { background:var(--green-bg); color:var(--green); }
.pill.bad { background:var(--red-bg); color:var(--red); }
.pill.warn { background:var(--amber-bg); color:var(--amber); }
.pill.info { background:var(--bg); color:var(--muted); }
.grid { display:grid; grid-template-columns:repeat(2, minmax(0, 1fr)); gap:16px; }
.grid .card { margin:0; }
figure { margin:0; }
figure img { max-width:100%; width:auto; height:auto; display:block; margin:0 auto; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:6px; }
.muted { color:var(--muted); }
.notes li { color:var(--muted); }
footer { color:var(--muted); font-size:12px; margin-top:26px; text-align:center; }
.grid.norms { grid-template-columns:minmax(0, 5fr) minmax(0, 7fr); align-items:start; }
.scroll { overflow-x:auto; }
@media (max-width: 1100px) { .grid, .grid.norms { grid-template-columns:1fr; } }
@media (max-width: 800px) { main { padding:16px 12px 40px; } .card { padding:14px 12px; } }
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _pill(text: str, kind: str) -> str:
    return f'<span class="pill {kind}">{_e(text)}</span>'


def _table(
    header: list[str],
    rows: list[tuple[list[str], str]],
    numeric: Set[int] = frozenset(),
    wrap: Set[int] = frozenset(),
    verdict: int = 0,
) -> str:
    """rows: (cells already HTML, row class). Column ``verdict`` (the status, first) is
    marked ``class="status"``; the table scrolls inside its card, never the page."""

    def cls(i: int) -> str:
        names = ["num"] * (i in numeric) + ["wrap"] * (i in wrap) + ["status"] * (i == verdict)
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(
        ('<th class="status">' if i == verdict else "<th>") + f"{_e(h)}</th>" for i, h in enumerate(header)
    )
    body = []
    for cells, row_cls in rows:
        tds = "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(cells))
        body.append(f'<tr class="{row_cls}">{tds}</tr>' if row_cls else f"<tr>{tds}</tr>")
    rows_html = "".join(body)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table></div>'


def _status_pill(status: str, reason: str | None = None, text: str | None = None) -> str:
    """A status label as a pill: green pass, red fail, amber inconclusive (its reason as the
    text), grey unchecked."""
    return _pill(text or _views.outcome_text(status, reason) or "—", _views.tone(status))


#: Row classes by ``_views.tone``.
_ROW = {"bad": "bad", "warn": "warn"}


def _make_figures(doc: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """Every figure the document supports: name → (matplotlib Figure, caption)."""
    out: dict[str, tuple[Any, str]] = {}
    check = doc.get("check")
    trusted = _views.reference_trusted(check)
    curves = _views.sweep_curves(doc.get("sweep"), doc["problem"]["leaves"], 4, trusted=trusted)
    if curves:
        if trusted:
            how = (
                "The error is the distance to jax.grad, which passed the check. The star is the step "
                "the sweep chose and the error of its estimate (Richardson-extrapolated when that was "
                "better)."
            )
        else:
            how = (
                f"jax.grad {_views.reference_doubt(check)}, so the curves show the sweep's own "
                f"{curves[0]['error_label']} (a distance to jax.grad would measure the distance to an "
                "unverified gradient, not the FD error). The star is the step the sweep chose and its "
                "error estimate."
            )
        out["error_vs_step"] = (
            plots.error_vs_step_figure(curves),
            "Error of the FD estimate against the step h (log-log), one parameter per leaf: truncation "
            "(dashed, ∝ h^p) dominates to the right, round-off (dotted bound, ∝ 1/h) to the left. " + how,
        )
    ps = _views.slice_view(doc.get("parameter_slice"))
    if ps:
        out["secant"] = (
            plots.parameter_slice_figure(ps),
            f"One parameter by hand: the loss along {ps['parameter']} with the tangent of slope jax.grad "
            f"({num(ps['analytic'], 8)}) and the central-difference secant at the check's step "
            f"h = {sci(ps['step'])} ({num(ps['numeric'], 8)}); where the gradient is right they coincide. "
            "Below: the slope of the secant through J(θ ± ε) minus the jax.grad slope, against ε. A wide "
            "secant differs from a correct tangent by truncation (∝ ε², falling to the star at h); a wrong "
            "gradient levels off at the size of its error.",
        )
    el = _views.elements(check)
    if el:
        nonfinite = int(sum(int(e["nonfinite"].sum()) for e in el))
        out["histogram"] = (
            plots.relative_error_histogram([(e["path"], e["rel_error"]) for e in el], nonfinite=nonfinite),
            "Relative error |a − n| / max(|a|, |n|) of every checked element, stacked by leaf"
            + (f"; {nonfinite} non-finite element(s) have none and are not binned." if nonfinite else "."),
        )
    dis = _views.disagreement(check)
    if dis:
        what = dis["what"]
        failed = sum(s == "fail" for s in dis["status"])
        nonfinite = sum(s == "nonfinite" for s in dis["status"])
        open_ = sum(s in ("kink", "inconclusive") for s in dis["status"])
        caption = (
            f"Disagreement per {what[:-1]}: |a − n| (analytic vs finite difference) divided by the check's "
            "tolerance (its error model: truncation + round-off + AD rounding, times the margin), log scale. "
            "Above the dashed line at 1 a measurement fails"
        )
        caption += f"; {failed} do, the worst numbered and named below." if failed else "; none does."
        if nonfinite:
            caption += f" {nonfinite} non-finite value(s) sit in the top band."
        if open_:
            caption += (
                f" {open_} inconclusive measurement(s) (kinks, or a tolerance as large as the values "
                "compared) are marked apart: they neither pass nor fail."
            )
        out["disagreement"] = (
            plots.disagreement_figure(
                dis["x"], dis["ratio"], dis["status"], dis["names"], dis["groups"], what=what
            ),
            caption,
        )
    norms = (doc.get("gradient_norms") or {}).get("leaves", [])
    if norms:
        out["gradient_norms"] = (
            plots.gradient_norms_figure(
                [r["path"] for r in norms],
                [r["grad_norm"] if r["grad_norm"] is not None else float("nan") for r in norms],
                [r["flag"] for r in norms],
            ),
            "Norm of the analytic gradient (jax.grad) per leaf; orange: vanishing, red: exploding (relative "
            "to the median RMS over leaves), hatched: not finite."
            + (
                " jax.grad failed the check: these are norms of the wrong gradient."
                if check and _views.reference_doubt(check) == "FAILED the check"
                else " The check did not verify jax.grad (INCONCLUSIVE)."
                if check and not trusted
                else ""
            ),
        )
    ls = doc.get("landscape")
    if ls:
        out["landscape"] = (
            plots.landscape_figure(ls["alphas"], ls["betas"], ls["loss"]),
            f"Loss on a {ls['resolution']}×{ls['resolution']} grid along two filter-normalised random "
            f"directions (one batched evaluation of {ls['evaluations']} points); the star marks the "
            "parameters.",
        )
    return out


def figures(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every figure the document supports: name → (SVG data URI, caption)."""
    return {k: (plots.svg_data_uri(fig), cap) for k, (fig, cap) in _make_figures(doc).items()}


def _figure(fig: tuple[str, str] | None, alt: str, card: bool = True) -> str:
    if fig is None:
        return ""
    uri, caption = fig
    inner = f'<figure><img alt="{_e(alt)}" src="{uri}"><figcaption>{_e(caption)}</figcaption></figure>'
    return f'<div class="card">{inner}</div>' if card else inner


def _verdict(doc: dict[str, Any]) -> str:
    meta, problem, v, opts = doc["meta"], doc["problem"], doc["verdict"], doc["options"]
    cls = {"passed": "pass", "failed": "fail", "inconclusive": "inconclusive"}.get(v["status"], "info")
    badge = {"passed": "PASSED", "failed": "FAILED", "inconclusive": "INCONCLUSIVE"}.get(
        v["status"], "REPORT"
    )
    steps = opts.get("step") or "default (cbrt eps)"
    facts = [
        ("elements checked", num(v["elements_checked"])),
        ("directions checked", num(v.get("directions_checked"))),
        ("parameters", f"{problem['num_parameters']} in {len(problem['leaves'])} leaves"),
        ("mode", v["mode"] or "—"),
        ("method", v["method"]),
        ("dtype", problem["dtype"]),
        ("step", steps),
        ("max rel error", sci(v.get("max_rel_error"))),
        ("norm ratio", sci(v.get("norm_ratio"))),
        ("inconclusive", num(v.get("inconclusive"))),
        ("kinks", num(v["kinks"])),
    ]
    if v.get("nonfinite"):
        facts.append(("non-finite", f"{v['nonfinite']} measurement(s)"))
    if v.get("escalated"):
        facts.append(
            ("re-measured", f"{v['escalated']} ({num(v.get('escalation_evaluations'))} evaluations)")
        )
    facts += [
        ("evaluations", num(meta["evaluations"])),
        ("time", duration(meta["wall_time_s"])),
        ("devices", ", ".join(meta["devices"])),
        ("loss", num(problem["loss"], 8) if problem["loss"] is not None else "not finite"),
        ("versions", f"fdjax {meta['fdjax_version']} · jax {meta['jax_version']}"),
    ]
    if v.get("sweep_status"):
        facts.append(("sweep", ", ".join(f"{k} {c}" for k, c in sorted(v["sweep_status"].items()))))
    dl = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(val)}</dd></div>" for k, val in facts)
    cmd = f'<pre class="cmd">$ {_e(meta["command"])}</pre>' if meta.get("command") else ""
    remedy = (
        f'<p class="remedy"><strong>To resolve:</strong> {_e(v["remedy"])}</p>' if v.get("remedy") else ""
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in v.get("check_notes") or [])
    notes = f'<ul class="check-notes">{notes}</ul>' if notes else ""
    return (
        f'<section class="card verdict {cls}" id="verdict"><div class="headline"><span class="badge">{badge}'
        f'</span>{_e(v["headline"] or "fdjax report")}</div>{remedy}<dl class="facts">{dl}</dl>{notes}{cmd}'
        "</section>"
    )


def _leaf_table(doc: dict[str, Any]) -> str:
    rows = _views.leaf_rows(doc.get("check"))
    if not rows:
        return ""
    body = [
        (
            [
                _status_pill(r["status"], text=r["verdict"].replace("FAILED", "failed")),
                f'<span class="path">{_e(r["path"])}</span>',
                *(_e(cell) for cell in leaf_figures(r)),
            ],
            _ROW.get(_views.tone(r["status"]), ""),
        )
        for r in rows
    ]
    table = _table(["status", "leaf", *LEAF_COLUMNS], body, numeric=set(range(3, 3 + len(LEAF_COLUMNS))))
    reasons = "".join(
        f"<li><strong>inconclusive ({_e(_views.reason_text(why))})</strong> in "
        + ", ".join(f'<span class="path">{_e(p)}</span>' for p in paths)
        + f": {_e(meaning)}. <em>To resolve:</em> {_e(fix)}.</li>"
        for why, paths, meaning, fix in _views.open_reasons(rows)
        if why
    )
    note = f'<ul class="reasons">{reasons}</ul>' if reasons else ""
    if any(r["nonfinite"] for r in rows):
        note += (
            '<p class="note">A leaf that met a NaN or inf has no max rel error, norm ratio or digits (—).</p>'
        )
    return f'<section class="card" id="leaves"><h2>Per-leaf results</h2>{table}{note}</section>'


def _worst_table(doc: dict[str, Any]) -> str:
    worst = _views.worst_elements(doc.get("check"), 10)
    if not worst:
        return ""
    body = []
    for w in worst:
        st = str(w.get("status", ""))
        body.append(
            (
                [
                    _status_pill(st, w["reason"]),
                    f"<code>{_e(w.get('name', ''))}</code>",
                    _e(w.get("why", "")),
                    _e(num(w.get("analytic"), 8)),
                    _e(num(w.get("numeric"), 8)),
                    _e(sci(w.get("abs_error"))),
                    _e(sci(w.get("rel_error"))),
                    _e(sci(w.get("tolerance"))),
                ],
                _ROW.get(_views.tone(st), ""),
            )
        )
    table = _table(
        ["status", "element", "why", "analytic (AD)", "numeric (FD)", "|a − n|", "rel error", "tolerance"],
        body,
        numeric={3, 4, 5, 6, 7},
        wrap={2},
    )
    return f'<section class="card" id="worst"><h2>Worst elements</h2>{table}</section>'


def _directions_table(doc: dict[str, Any]) -> str:
    check = doc.get("check")
    rows = _views.direction_rows(check)
    if not check or not rows:
        return ""
    # The directions are the check itself in directional and locate modes; beside the
    # elements of a full or subset check, the worst few (and every failure) are enough.
    primary = check.get("mode") in ("directional", "locate")
    bad = sum(r["status"] != "pass" for r in rows)
    n = 32 if primary else max(5, min(bad, 16))
    body = []
    for r in rows[:n]:
        st = r["status"]
        support = r["leaf"] if r["leaf"] != "all" else f"all [{r['lo']}, {r['hi']})"
        body.append(
            (
                [
                    _status_pill(st, r["reason"]),
                    _e(f"#{r['direction']} {r['kind']}"),
                    f'<span class="path">{_e(support)}</span>',
                    _e(r["why"]),
                    _e(num(r["analytic"], 8)),
                    _e(num(r["numeric"], 8)),
                    _e(sci(r["difference"])),
                    _e(sci(r["tolerance"])),
                    _e(sci(r["step"])),
                ],
                _ROW.get(_views.tone(st), ""),
            )
        )
    table = _table(
        ["status", "direction", "support", "why", "AD ∇f·v", "FD", "AD − FD", "tolerance", "step h"],
        body,
        numeric={4, 5, 6, 7, 8},
        wrap={3},
    )
    shown = f"all {len(rows)}" if len(rows) <= n else f"the worst {n} of {len(rows)}"
    located = ""
    if check.get("mode") == "locate":
        names = {i: nm for i, nm in zip(check["elements"]["index"], check["elements"]["name"], strict=False)}
        found = [names.get(i, f"#{i}") for i in check.get("located", [])]
        located = (
            f'<p class="note">Bisection of the failing directions ended at: {_e(", ".join(found))} '
            "(see the worst elements above).</p>"
            if found
            else '<p class="note">No failing direction, nothing to bisect.</p>'
        )
    return (
        '<section class="card" id="directions"><h2>Directions</h2><p class="muted">Along each random '
        "direction v the check compares the directional derivative from AD (∇f·v) with the central "
        "difference (f(x + hv) − f(x − hv)) / 2h, against the same error model as the elements. "
        f"Worst first; {shown} shown.</p>{table}{located}</section>"
    )


def _sweep_table(doc: dict[str, Any]) -> str:
    sweep = doc.get("sweep")
    rows = _views.sweep_rows(sweep, 12)
    if not rows:
        return ""
    check = doc.get("check")
    trusted = _views.reference_trusted(check)
    body = []
    for p in rows:
        status = p.get("status", [])
        flags = status if isinstance(status, list) else [status]
        pills = " ".join(
            _pill(s, "ok" if s in ("CONVERGED", "EXACT") else "warn" if s in ("ROUNDOFF_LIMITED",) else "bad")
            for s in flags
        )
        body.append(
            (
                [
                    pills,
                    f"<code>{_e(p.get('name', ''))}</code>",
                    _e(sci(p.get("step"))),
                    _e(num(p.get("estimate"), 10)),
                    _e(sci(p.get("error"))),
                    _e(sci(p.get("true_error_at_step"))),
                    _e(num(p.get("order"), 3)),
                ],
                "",
            )
        )
    counts = ", ".join(f"{k} {c}" for k, c in sorted(_views.sweep_counts(sweep).items()))
    if trusted:
        column = "|FD − jax.grad|"
        note = (
            "|FD − jax.grad| is measured against jax.grad, which passed the check: it is the true error "
            "of the FD estimate."
        )
    else:
        column = "|FD − AD| ⚠" if check else "|FD − jax.grad|"
        why = _views.reference_doubt(check) if check else "was not checked in this report"
        note = (
            f"{column.rstrip(' ⚠')} is measured against jax.grad, which {why}: it is meaningless as an "
            "error of the FD estimate where jax.grad is wrong (it measures the distance to the wrong "
            "gradient) and unverified where the check was inconclusive. The error estimate column is "
            "the sweep's own."
        )
    table = _table(
        ["status", "parameter", "chosen h", "estimate", "error estimate", column, "observed order"],
        body,
        numeric={2, 3, 4, 5, 6},
    )
    return (
        f'<section class="card" id="sweep"><h2>Step sweep</h2><p class="muted">{_views.sweep_size(sweep)} '
        f"parameters; {_e(counts)}. First {len(rows)} shown; every value is in the JSON report.</p>"
        f'{table}<p class="note">{_e(note)}</p></section>'
    )


def _norms_table(doc: dict[str, Any]) -> str:
    norms = (doc.get("gradient_norms") or {}).get("leaves", [])
    if not norms:
        return ""
    body = []
    for r in norms:
        kind = {"ok": "ok", "vanishing": "warn"}.get(r["flag"], "bad")
        body.append(
            (
                [
                    _pill(r["flag"], kind),
                    f'<span class="path">{_e(r["path"])}</span>',
                    _e(shape(r["shape"])),
                    _e(sci(r["param_norm"])),
                    _e(sci(r["grad_norm"])),
                    _e(sci(r["grad_rms"])),
                    _e(sci(r["ratio"])),
                ],
                "" if r["flag"] == "ok" else "warn",
            )
        )
    return _table(["flag", "leaf", "shape", "‖θ‖", "‖∇‖", "RMS", "‖∇‖/‖θ‖"], body, numeric={3, 4, 5, 6})


def render_html(doc: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    meta = doc["meta"]
    figs = figures(doc)
    title = f"fdjax report — {meta.get('target') or 'custom function'}"
    plots_grid = "".join(
        _figure(figs.get(k), k) for k in ("disagreement", "secant", "error_vs_step", "histogram")
    )
    norms = _norms_table(doc)
    norms_section = ""
    if norms or "gradient_norms" in figs:
        norms_section = (
            f'<section class="card" id="norms"><h2>Layer-wise gradient norms</h2>'
            f'<div class="grid norms"><div>'
            f"{_figure(figs.get('gradient_norms'), 'gradient norms', card=False)}</div>"
            f"<div>{norms}</div></div></section>"
        )
    landscape = ""
    if "landscape" in figs:
        landscape = (
            f'<section class="card" id="landscape"><h2>Loss landscape</h2><div class="grid">'
            f"<div>{_figure(figs['landscape'], 'loss landscape', card=False)}</div>"
            '<div class="muted"><p>Filter-normalised '
            "directions (Li et al., 2018): each filter of a random Gaussian direction is rescaled to the "
            "norm of the same filter of the parameters, so the axes are comparable across layers. A smooth "
            "bowl around the star means the FD steps probe a well-behaved region; sharp ridges mean "
            "kinks.</p></div></div></section>"
        )
    notes = "".join(f"<li>{_e(n)}</li>" for n in doc.get("notes", []))
    notes_section = f'<section class="card notes"><h2>Notes</h2><ul>{notes}</ul></section>' if notes else ""
    payload = json.dumps(doc, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<header class="top"><h1>fdjax report <span>{_e(meta.get("target") or "")}</span></h1>
<div class="when">{_e(meta["created"])}</div></header>
{_verdict(doc)}
{_leaf_table(doc)}
{_worst_table(doc)}
{_directions_table(doc)}
<div class="grid" id="plots">{plots_grid}</div>
{_sweep_table(doc)}
{norms_section}
{landscape}
{notes_section}
<footer>fdjax {_e(meta["fdjax_version"])} · jax {_e(meta["jax_version"])} · schema {_e(doc["schema"])} ·
the full document is embedded below as JSON (id "fdjax-report")</footer>
</main>
<script type="application/json" id="fdjax-report">{payload}</script>
</body>
</html>
"""
