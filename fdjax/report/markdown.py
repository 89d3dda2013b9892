"""Markdown rendering of a report document: the verdict and every table (no plots)."""

from __future__ import annotations

from typing import Any

from . import _views
from ._format import duration, num, pct, sci, shape

__all__ = ["render_markdown"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def render_markdown(doc: dict[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown."""
    meta, problem, v = doc["meta"], doc["problem"], doc["verdict"]
    mark = {True: "✅", False: "❌"}.get(v["passed"], "ℹ️")
    lines = [
        f"# fdjax report: {meta.get('target') or 'custom function'}",
        "",
        f"**{mark} {v['headline'] or 'Report'}**",
        "",
    ]
    facts = [
        ("parameters", f"{problem['num_parameters']} in {len(problem['leaves'])} leaves"),
        ("dtype", problem["dtype"]),
        ("loss", num(problem["loss"], 8)),
        ("mode", v["mode"] or "—"),
        ("method", v["method"]),
        ("step", str(doc["options"].get("step") or "default")),
        ("elements checked", num(v["elements_checked"])),
        ("kinks", num(v["kinks"])),
        ("evaluations", num(meta["evaluations"])),
        ("time", duration(meta["wall_time_s"])),
        ("devices", ", ".join(meta["devices"])),
        (
            "versions",
            f"fdjax {meta['fdjax_version']}, jax {meta['jax_version']}, jaxlib {meta['jaxlib_version']}",
        ),
        ("created", meta["created"]),
    ]
    lines += _table(["", ""], [[f"**{k}**", val] for k, val in facts])
    if meta.get("command"):
        lines += ["", "Reproduce:", "", "```sh", meta["command"], "```"]

    check = doc.get("check")
    rows = _views.leaf_rows(check)
    if rows:
        lines += ["", "## Per-leaf results", ""]
        lines += _table(
            ["leaf", "shape", "max rel error", "norm ratio", "digits", "sign agreement", "kinks", "status"],
            [
                [
                    f"`{r['path']}`",
                    shape(r["shape"]),
                    sci(r["max_rel_error"]),
                    sci(r["norm_ratio"]),
                    num(r["digits"], 3),
                    pct(r["sign_agreement"]),
                    num(r["kinks"]),
                    "**FAILED**" if r["verdict"] == "FAILED" else r["verdict"],
                ]
                for r in rows
            ],
        )
    worst = _views.worst_elements(check, 10)
    if worst:
        lines += ["", "## Worst elements", ""]
        lines += _table(
            ["element", "analytic", "numeric", "abs error", "rel error", "tolerance", "status", "why"],
            [
                [
                    f"`{w.get('name', '')}`",
                    num(w.get("analytic"), 8),
                    num(w.get("numeric"), 8),
                    sci(w.get("abs_error")),
                    sci(w.get("rel_error")),
                    sci(w.get("tolerance")),
                    str(w.get("status", "")),
                    str(w.get("reason", "")),
                ]
                for w in worst
            ],
        )
    sweep = doc.get("sweep")
    srows = _views.sweep_rows(sweep, 20)
    if srows:
        lines += [
            "",
            "## Step sweep",
            "",
            f"{_views.sweep_size(sweep)} parameters; status counts: "
            + ", ".join(f"{k} {c}" for k, c in sorted(_views.sweep_counts(sweep).items())),
            "",
        ]
        lines += _table(
            ["parameter", "chosen h", "estimate", "error estimate", "true error", "observed order", "status"],
            [
                [
                    f"`{p.get('name', '')}`",
                    sci(p.get("step")),
                    num(p.get("estimate"), 10),
                    sci(p.get("error")),
                    sci(p.get("true_error_at_step")),
                    num(p.get("order"), 3),
                    ",".join(p["status"]) if isinstance(p.get("status"), list) else str(p.get("status", "")),
                ]
                for p in srows
            ],
        )
    norms = (doc.get("gradient_norms") or {}).get("leaves", [])
    if norms:
        lines += ["", "## Layer-wise gradient norms", ""]
        lines += _table(
            ["leaf", "shape", "‖θ‖", "‖∇‖", "RMS", "‖∇‖/‖θ‖", "flag"],
            [
                [
                    f"`{r['path']}`",
                    shape(r["shape"]),
                    sci(r["param_norm"]),
                    sci(r["grad_norm"]),
                    sci(r["grad_rms"]),
                    sci(r["ratio"]),
                    r["flag"],
                ]
                for r in norms
            ],
        )
    ps = doc.get("parameter_slice")
    if ps:
        lines += [
            "",
            "## One parameter by hand",
            "",
            f"`{ps['parameter']}` = {num(ps['theta'], 8)}, J = {num(ps['loss'], 10)}; "
            f"central difference with h = {sci(ps['step'])}: {num(ps['numeric'], 10)}; "
            f"jax.grad: {num(ps['analytic'], 10)}.",
        ]
    ls = doc.get("landscape")
    if ls:
        vals = [x for row in ls["loss"] for x in row if x is not None]
        lines += [
            "",
            "## Loss landscape",
            "",
            f"{ls['resolution']}×{ls['resolution']} grid over [−{ls['span']}, {ls['span']}]² along two "
            f"filter-normalised random directions: loss {num(min(vals), 6)} … {num(max(vals), 6)} "
            f"(at the parameters: {num(ls['loss0'], 6)})."
            if vals
            else "no finite values",
        ]
    for note in doc.get("notes", []):
        lines += ["", f"> note: {note}"]
    return "\n".join(lines) + "\n"
