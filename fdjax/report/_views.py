"""Read the check and sweep sections of a report document into rows the renderers show.

The sections are ``GradCheck.to_dict()`` and ``StepSweep.to_dict()``, stored verbatim in the
document; this module is the one place that knows their layout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._check_format import kinks_only

__all__ = [
    "verdict",
    "leaf_rows",
    "worst_elements",
    "elements",
    "sweep_rows",
    "sweep_curves",
    "sweep_counts",
    "count_evaluations",
]


def _f(v: Any) -> float:
    """A number from the document (None → nan; "inf"/"-inf" strings → ±inf)."""
    return float("nan") if v is None else float(v)


def leaf_rows(check: dict | None) -> list[dict[str, Any]]:
    """One row per leaf: path, shape, checked, max_rel_error, norm_ratio, digits,
    sign_agreement, kinks, failed, passed, verdict ("ok", "FAILED", or "kinks only" where
    every measurement of the leaf was a kink, so nothing in it was verified)."""
    if not check:
        return []
    rows = [
        {
            "path": leaf["name"],
            "shape": leaf["shape"],
            "start": leaf["start"],
            "checked": leaf.get("checked"),
            "max_rel_error": leaf.get("max_rel_error"),
            "norm_ratio": leaf.get("norm_ratio"),
            "digits": leaf.get("digits"),
            "sign_agreement": leaf.get("sign_agreement"),
            "kinks": leaf.get("kinks"),
            "failed": leaf.get("failed"),
            "passed": leaf.get("passed"),
        }
        for leaf in check.get("leaves", [])
    ]
    for r in rows:
        blind = kinks_only(r["checked"] or 0, r["kinks"] or 0)
        r["verdict"] = "FAILED" if r["passed"] is False else "kinks only" if blind else "ok"
    return rows


def _leaf_of(check: dict, flat: int) -> tuple[dict, int]:
    leaves = check["leaves"]
    for leaf in reversed(leaves):
        if flat >= leaf["start"]:
            return leaf, flat - leaf["start"]
    return leaves[0], flat  # pragma: no cover - indices are never negative


def elements(check: dict | None) -> list[dict[str, Any]]:
    """Per leaf, the checked elements' arrays: analytic, numeric, rel_error, failed, kink."""
    if not check or not check.get("elements", {}).get("index"):
        return []
    el = check["elements"]
    groups: dict[str, list[int]] = {}
    for row, flat in enumerate(el["index"]):
        leaf, _ = _leaf_of(check, int(flat))
        groups.setdefault(leaf["name"], []).append(row)
    out = []
    for leaf in check["leaves"]:
        rows = groups.get(leaf["name"])
        if not rows:
            continue

        def col(name, rows=rows):
            return np.asarray([_f(el[name][r]) for r in rows], dtype=np.float64)

        status = [el["status"][r] for r in rows]
        out.append(
            {
                "path": leaf["name"],
                "shape": leaf["shape"],
                "analytic": col("analytic"),
                "numeric": col("numeric"),
                "rel_error": col("rel_error"),
                "failed": np.asarray([s in ("fail", "nonfinite") for s in status]),
                "kink": np.asarray([s == "kink" for s in status]),
            }
        )
    return out


def _reason(el: dict, r: int) -> str:
    status = el["status"][r]
    tol = _f(el["tolerance"][r])
    diff = _f(el["abs_error"][r])
    times = diff / tol if tol > 0 else (math.inf if diff > 0 else 0.0)
    if status == "fail":
        return f"|a − n| = {times:.3g} × tolerance"
    if status == "kink":
        sub = "" if el["subgradient"][r] else "; analytic NOT between them"
        return f"kink: D+ = {_f(el['slope_plus'][r]):.4g}, D− = {_f(el['slope_minus'][r]):.4g}{sub}"
    if status == "nonfinite":
        return "non-finite value"
    return f"{times:.2g} × tolerance"


def worst_elements(check: dict | None, n: int = 10, failed_only: bool = False) -> list[dict[str, Any]]:
    """The worst checked elements (failures first, then by difference/tolerance): leaf,
    index, flat, name, analytic, numeric, abs_error, rel_error, tolerance, step, status, reason."""
    if not check or not check.get("elements", {}).get("index"):
        return []
    el = check["elements"]
    out = []
    for r, flat in enumerate(el["index"]):
        if failed_only and el["status"][r] != "fail":
            continue
        leaf, local = _leaf_of(check, int(flat))
        shape = leaf["shape"]
        index = [int(i) for i in np.unravel_index(local, shape)] if shape else []
        out.append(
            {
                "leaf": leaf["name"],
                "index": index,
                "flat": int(flat),
                "name": el["name"][r],
                "analytic": el["analytic"][r],
                "numeric": el["numeric"][r],
                "abs_error": el["abs_error"][r],
                "rel_error": el["rel_error"][r],
                "tolerance": el["tolerance"][r],
                "step": el["step"][r],
                "status": el["status"][r],
                "reason": _reason(el, r),
            }
        )
        if len(out) >= n:
            break
    return out


def verdict(
    check: dict | None, sweep: dict | None, *, dtype: str, mode: str | None, method: str
) -> dict[str, Any]:
    """Headline numbers: passed/failed, elements checked, kinks, failing leaves."""
    out: dict[str, Any] = {
        "passed": None,
        "status": "not checked",
        "headline": "",
        "elements_checked": None,
        "kinks": None,
        "failing_leaves": [],
        "mode": mode,
        "method": method,
        "dtype": dtype,
        "max_rel_error": None,
        "norm_ratio": None,
        "digits": None,
        "sweep_status": sweep_counts(sweep) if sweep else None,
    }
    if check:
        passed = check.get("passed")
        out["passed"] = None if passed is None else bool(passed)
        out["status"] = "passed" if passed else "failed"
        idx = (check.get("elements") or {}).get("index")
        checked = len(idx) if idx else check.get("checked")
        out["elements_checked"] = None if checked is None else int(checked)
        out["kinks"] = None if check.get("kinks") is None else int(check["kinks"])
        for k in ("max_rel_error", "norm_ratio", "digits"):
            v = check.get(k)
            out[k] = v if isinstance(v, (int, float)) or v is None else None
        out["failing_leaves"] = [r["path"] for r in leaf_rows(check) if r["passed"] is False]
        out["headline"] = "Gradient check " + str(check.get("verdict", "PASSED" if passed else "FAILED"))
        if out["failing_leaves"]:
            out["headline"] += f" (in {', '.join(out['failing_leaves'])})"
    elif sweep:
        out["headline"] = f"Step sweep of {sweep_size(sweep)} parameter(s) ({method}, {dtype})"
    return out


def sweep_size(sweep: dict) -> int:
    return len(sweep.get("parameters", []))


def sweep_rows(sweep: dict | None, n: int | None = None) -> list[dict[str, Any]]:
    """Per parameter: name, step, estimate, error, order, status, reference, true_error."""
    if not sweep:
        return []
    rows = [dict(p) for p in sweep.get("parameters", [])]
    return rows if n is None else rows[:n]


def sweep_counts(sweep: dict | None) -> dict[str, int]:
    """How many parameters got each status flag."""
    counts: dict[str, int] = {}
    for p in sweep_rows(sweep):
        flags = p.get("status", [])
        for s in flags if isinstance(flags, list) else [flags]:
            counts[s] = counts.get(s, 0) + 1
    return counts


def sweep_curves(sweep: dict | None, leaves: list[dict] | None = None, n: int = 4) -> list[dict[str, Any]]:
    """Error-vs-h curves for the plot: per leaf (up to ``n``), the swept parameter with the
    largest derivative (its V is the clearest)."""
    if not sweep:
        return []
    params = [p for p in sweep_rows(sweep) if p.get("steps")]
    starts = []
    if leaves:
        start = 0
        for leaf in leaves:
            starts.append((start, leaf["path"]))
            start += int(leaf["size"])

    def leaf_of(p):
        found = None
        for start, path in starts:
            if p.get("index", 0) >= start:
                found = path
        return found

    best: dict[Any, dict] = {}
    for p in params:
        key = leaf_of(p)
        size = abs(_f(p.get("reference", p.get("estimate"))))
        if math.isfinite(size) and (key not in best or size > best[key][0]):
            best[key] = (size, p)
    chosen = [p for _, p in best.values()][:n]
    curves = []
    for p in chosen:
        err = p.get("true_error")
        label = "|D(h) − jax.grad|"
        if err is None:
            err = [None if d is None else abs(_f(d)) for d in p.get("differences", [])]
            label = "|D(h) − D(h/2)|"
        curves.append(
            {
                "name": p.get("name", "?"),
                "steps": p["steps"][: len(err)],
                "errors": [None if e is None else _f(e) for e in err],
                "roundoff": [None if r is None else _f(r) for r in p.get("roundoff", [])][: len(err)] or None,
                "chosen_step": None if p.get("step") is None else _f(p["step"]),
                "chosen_error": _f(p["true_error_at_step"])
                if p.get("true_error_at_step") is not None
                else (None if p.get("error") is None else _f(p["error"])),
                "order": None if p.get("order") is None else _f(p["order"]),
                "error_label": label,
            }
        )
    return curves


def count_evaluations(check, sweep, landscape, slice_) -> int | None:
    """Function evaluations recorded by the sections (None when none recorded a count)."""
    total, known = 0, False
    for sec in (check, sweep, landscape):
        if sec and sec.get("evaluations") is not None:
            total += int(sec["evaluations"])
            known = True
    if slice_:
        total += len(slice_.get("curve_offsets", [])) + 4
    return total if known else None


def finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]
