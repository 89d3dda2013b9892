"""Terminal summary of a report document: rich tables when rich is installed, plain text otherwise."""

from __future__ import annotations

import io
from typing import Any

from . import _views
from ._format import LEAF_COLUMNS, leaf_figures, num, sci

__all__ = ["render_text"]


def _sections(doc: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, header, rows, row styles) of each table."""
    out = []
    check = doc.get("check")
    rows = _views.leaf_rows(check)
    if rows:
        out.append(
            (
                "Per leaf",
                ["leaf", *LEAF_COLUMNS, "status"],
                [[r["path"], *leaf_figures(r), _leaf_status(r)] for r in rows],
                [_STYLE[_views.tone(r["status"])] for r in rows],
            )
        )
    worst = _views.worst_elements(check, 5)
    if worst:
        out.append(
            (
                "Worst elements",
                ["element", "analytic", "numeric", "rel err", "status", "why"],
                [
                    [
                        w.get("name", ""),
                        num(w.get("analytic"), 6),
                        num(w.get("numeric"), 6),
                        sci(w.get("rel_error")),
                        _views.outcome_text(w["status"], w["reason"]),
                        str(w.get("why", "")),
                    ]
                    for w in worst
                ],
                [_STYLE[_views.tone(w["status"])] for w in worst],
            )
        )
    sweep = doc.get("sweep")
    srows = _views.sweep_rows(sweep, 8)
    if srows:
        out.append(
            (
                f"Step sweep ({_views.sweep_size(sweep)} parameters; first {len(srows)})",
                ["parameter", "chosen h", "estimate", "error est.", "order", "status"],
                [
                    [
                        p.get("name", ""),
                        sci(p.get("step")),
                        num(p.get("estimate"), 8),
                        sci(p.get("error")),
                        num(p.get("order"), 3),
                        _status_text(p.get("status")),
                    ]
                    for p in srows
                ],
                ["" for _ in srows],
            )
        )
    norms = (doc.get("gradient_norms") or {}).get("leaves", [])
    if norms:
        out.append(
            (
                "Gradient norms (analytic)",
                ["leaf", "‖∇‖", "RMS", "‖∇‖/‖θ‖", "flag"],
                [
                    [r["path"], sci(r["grad_norm"]), sci(r["grad_rms"]), sci(r["ratio"]), r["flag"]]
                    for r in norms
                ],
                ["" if r["flag"] == "ok" else "yellow" for r in norms],
            )
        )
    return out


#: Row and headline styles by ``_views.tone``.
_STYLE = {"ok": "", "bad": "bold red", "warn": "yellow", "info": ""}
_HEADLINE_STYLE = {"passed": "bold green", "failed": "bold red", "inconclusive": "bold yellow"}


def _explanations(doc: dict[str, Any]) -> list[str]:
    """Lines under the facts: what an inconclusive verdict means and what would resolve it
    (the check's and each inconclusive leaf's reason), and the check's own notes."""
    v = doc["verdict"]
    lines = []
    if v.get("remedy"):
        lines.append(f"to resolve: {v['remedy']}")
    for why, paths, meaning, fix in _views.open_reasons(_views.leaf_rows(doc.get("check"))):
        if why:
            lines.append(f"inconclusive ({_views.reason_text(why)}) in {', '.join(paths)}: {meaning}")
        if fix and fix != v.get("remedy"):
            lines.append(f"  to resolve: {fix}")
    lines += [f"check note: {n}" for n in v.get("check_notes") or []]
    return lines


def _status_text(s: Any) -> str:
    if isinstance(s, list):
        return ",".join(str(v) for v in s)
    return "" if s is None else str(s)


def _facts(doc: dict[str, Any]) -> list[tuple[str, str]]:
    meta, problem, v = doc["meta"], doc["problem"], doc["verdict"]
    facts = [
        (
            "parameters",
            f"{problem['num_parameters']} in {len(problem['leaves'])} leaves ({problem['dtype']})",
        ),
        ("loss", num(problem["loss"], 8)),
    ]
    if v["elements_checked"] is not None:
        parts = [f"{v['elements_checked']} elements"]
        if v.get("directions_checked"):
            parts.append(f"{v['directions_checked']} directions")
        checked = " and ".join(parts)
        facts.append(("checked", f"{checked}, mode {v['mode']}, method {v['method']}"))
    if v.get("inconclusive"):
        kinks = f", {v['kinks']} of them kinks" if v.get("kinks") else ""
        facts.append(("inconclusive", f"{v['inconclusive']} measurements{kinks}"))
    if v.get("nonfinite"):
        facts.append(("non-finite", f"{v['nonfinite']} measurements met NaN/inf"))
    if v.get("escalated"):
        cost = f"{v['escalation_evaluations']} evaluations"
        facts.append(("re-measured", f"{v['escalated']} at other steps before deciding ({cost})"))
    if v.get("max_rel_error") is not None:
        facts.append(("max rel error", f"{sci(v['max_rel_error'])}   norm ratio {sci(v['norm_ratio'])}"))
    if v.get("sweep_status"):
        facts.append(("sweep", ", ".join(f"{k} {c}" for k, c in sorted(v["sweep_status"].items()))))
    facts.append(("evaluations", num(meta["evaluations"])))
    facts.append(("time", f"{meta['wall_time_s']:.1f} s on {', '.join(meta['devices'])}"))
    facts.append(("versions", f"fdjax {meta['fdjax_version']}, jax {meta['jax_version']}"))
    if meta.get("command"):
        facts.append(("reproduce", meta["command"]))
    return facts


def _plain(doc: dict[str, Any]) -> str:
    v = doc["verdict"]
    lines = [v["headline"] or "fdjax report", ""]
    for k, val in _facts(doc):
        lines.append(f"  {k:<14}{val}")
    lines += ["  " + line for line in _explanations(doc)]
    for title, header, rows, _ in _sections(doc):
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines += ["", title, "  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    for note in doc.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def render_text(doc: dict[str, Any], color: bool = False, width: int = 110) -> str:
    """The summary as text: rich tables (with colour when ``color``) if rich is installed,
    otherwise aligned plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:  # pragma: no cover - rich is in the report extra
        return _plain(doc)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width, highlight=False)
    v = doc["verdict"]
    style = _HEADLINE_STYLE.get(v["status"], "bold")
    console.print(Text(v["headline"] or "fdjax report", style=style))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    for k, val in _facts(doc):
        facts.add_row(k, val)
    console.print(facts)
    for line in _explanations(doc):
        console.print(Text(line, style="yellow" if not line.startswith("check note") else "dim"))
    for title, header, rows, styles in _sections(doc):
        t = Table(
            title=title,
            title_justify="left",
            title_style="bold",
            header_style="bold",
            box=None,
            pad_edge=False,
        )
        for h in header:
            t.add_column(h, overflow="fold")
        for r, s in zip(rows, styles, strict=False):
            t.add_row(*r, style=s or None)
        console.print()
        console.print(t)
    for note in doc.get("notes", []):
        console.print(Text(f"note: {note}", style="dim"))
    return buf.getvalue()


def _leaf_status(row: dict) -> str:
    return row["verdict"].replace("FAILED", "FAIL")
