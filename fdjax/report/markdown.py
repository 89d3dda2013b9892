"""Markdown rendering of a report document: the verdict and every table (no plots)."""

from __future__ import annotations

from typing import Any

from . import _views
from ._format import LEAF_COLUMNS, duration, leaf_figures, num, sci, shape

__all__ = ["render_markdown"]


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(s: Any) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def _status(status: str, reason: str | None = None) -> str:
    """A measurement's status cell: failures in bold, inconclusive ones in italics."""
    text = _views.outcome_text(status, reason)
    return {"bad": f"**{text}**", "warn": f"_{text}_"}.get(_views.tone(status), text)


#: The headline's mark by verdict status.
_MARK = {"passed": "✅", "failed": "❌", "inconclusive": "⚠️"}


def render_markdown(doc: dict[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown."""
    meta, problem, v = doc["meta"], doc["problem"], doc["verdict"]
    mark = _MARK.get(v["status"], "ℹ️")
    lines = [
        f"# fdjax report: {meta.get('target') or 'custom function'}",
        "",
        f"**{mark} {v['headline'] or 'Report'}**",
        "",
    ]
    if v.get("remedy"):
        lines += [f"To resolve: {v['remedy']}", ""]
    facts = [
        ("parameters", f"{problem['num_parameters']} in {len(problem['leaves'])} leaves"),
        ("dtype", problem["dtype"]),
        ("loss", num(problem["loss"], 8) if problem["loss"] is not None else "not finite"),
        ("mode", v["mode"] or "—"),
        ("method", v["method"]),
        ("step", str(doc["options"].get("step") or "default")),
        ("elements checked", num(v["elements_checked"])),
        ("directions checked", num(v.get("directions_checked"))),
        ("max rel error", sci(v.get("max_rel_error"))),
        ("norm ratio", sci(v.get("norm_ratio"))),
        ("inconclusive measurements", num(v.get("inconclusive"))),
        ("kinks", num(v["kinks"])),
        ("non-finite measurements", num(v.get("nonfinite"))),
        ("re-measured at other steps", num(v.get("escalated"))),
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
    for note in v.get("check_notes") or []:
        lines += ["", f"> check note: {note}"]
    if meta.get("command"):
        lines += ["", "Reproduce:", "", "```sh", meta["command"], "```"]

    check = doc.get("check")
    rows = _views.leaf_rows(check)
    if rows:
        lines += ["", "## Per-leaf results", ""]
        lines += _table(
            ["status", "leaf", *LEAF_COLUMNS],
            [
                [
                    {"bad": f"**{r['verdict']}**", "warn": f"_{r['verdict']}_"}.get(
                        _views.tone(r["status"]), r["verdict"]
                    ),
                    f"`{r['path']}`",
                    *leaf_figures(r),
                ]
                for r in rows
            ],
        )
        for why, paths, meaning, fix in _views.open_reasons(rows):
            if not why:
                continue
            where = ", ".join(f"`{p}`" for p in paths)
            lines += [
                "",
                f"- **inconclusive ({_views.reason_text(why)})** in {where}: {meaning}. To resolve: {fix}.",
            ]
        if any(r["nonfinite"] for r in rows):
            lines += ["", "A leaf that met a NaN or inf has no max rel error, norm ratio or digits (—)."]
    worst = _views.worst_elements(check, 10)
    if worst:
        lines += ["", "## Worst elements", ""]
        lines += _table(
            [
                "status",
                "element",
                "why",
                "analytic (AD)",
                "numeric (FD)",
                "\\|a − n\\|",
                "rel error",
                "tolerance",
            ],
            [
                [
                    _status(w["status"], w["reason"]),
                    f"`{w.get('name', '')}`",
                    str(w.get("why", "")),
                    num(w.get("analytic"), 8),
                    num(w.get("numeric"), 8),
                    sci(w.get("abs_error")),
                    sci(w.get("rel_error")),
                    sci(w.get("tolerance")),
                ]
                for w in worst
            ],
        )
    dirs = _views.direction_rows(check)
    if check and dirs:
        primary = check.get("mode") in ("directional", "locate")
        bad = sum(r["status"] != "pass" for r in dirs)
        n = len(dirs) if primary else max(5, min(bad, 16))
        lines += [
            "",
            "## Directions",
            "",
            "Along each random direction v: the AD directional derivative ∇f·v against the central "
            f"difference (f(x + hv) − f(x − hv)) / 2h. Worst first; {min(n, len(dirs))} of {len(dirs)} "
            "shown.",
            "",
        ]
        lines += _table(
            ["status", "direction", "support", "why", "AD ∇f·v", "FD", "AD − FD", "tolerance", "step h"],
            [
                [
                    _status(r["status"], r["reason"]),
                    f"#{r['direction']} {r['kind']}",
                    f"`{r['leaf']}`" if r["leaf"] != "all" else f"all [{r['lo']}, {r['hi']})",
                    r["why"],
                    num(r["analytic"], 8),
                    num(r["numeric"], 8),
                    sci(r["difference"]),
                    sci(r["tolerance"]),
                    sci(r["step"]),
                ]
                for r in dirs[:n]
            ],
        )
    sweep = doc.get("sweep")
    srows = _views.sweep_rows(sweep, 20)
    if srows:
        trusted = _views.reference_trusted(check)
        column = "\\|FD − jax.grad\\|" if trusted or not check else "\\|FD − AD\\| ⚠"
        if trusted:
            note = "jax.grad passed the check, so \\|FD − jax.grad\\| is the true error of the FD estimate."
        else:
            why = _views.reference_doubt(check)
            note = (
                f"⚠ {column} is measured against jax.grad, which {why}: meaningless as an error of the FD "
                "estimate where jax.grad is wrong (it is the distance to the wrong gradient) and unverified "
                "where the check was inconclusive. The error estimate column is the sweep's own."
            )
        lines += [
            "",
            "## Step sweep",
            "",
            f"{_views.sweep_size(sweep)} parameters; status counts: "
            + ", ".join(f"{k} {c}" for k, c in sorted(_views.sweep_counts(sweep).items())),
            "",
        ]
        lines += _table(
            ["status", "parameter", "chosen h", "estimate", "error estimate", column, "observed order"],
            [
                [
                    ",".join(p["status"]) if isinstance(p.get("status"), list) else str(p.get("status", "")),
                    f"`{p.get('name', '')}`",
                    sci(p.get("step")),
                    num(p.get("estimate"), 10),
                    sci(p.get("error")),
                    sci(p.get("true_error_at_step")),
                    num(p.get("order"), 3),
                ]
                for p in srows
            ],
        )
        lines += ["", note]
    norms = (doc.get("gradient_norms") or {}).get("leaves", [])
    if norms:
        lines += ["", "## Layer-wise gradient norms", ""]
        lines += _table(
            ["flag", "leaf", "shape", "‖θ‖", "‖∇‖", "RMS", "‖∇‖/‖θ‖"],
            [
                [
                    r["flag"] if r["flag"] == "ok" else f"**{r['flag']}**",
                    f"`{r['path']}`",
                    shape(r["shape"]),
                    sci(r["param_norm"]),
                    sci(r["grad_norm"]),
                    sci(r["grad_rms"]),
                    sci(r["ratio"]),
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
