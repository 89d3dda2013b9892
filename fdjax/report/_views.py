"""Read the check and sweep sections of a report document into rows the renderers show.

The sections are ``GradCheck.to_dict()`` and ``StepSweep.to_dict()``, stored verbatim in the
document; this module is the one place that knows their layout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._check import kinks_only


def _f(v: Any) -> float:
    """A number from the document (None, written for NaN and ±inf, → nan)."""
    return float("nan") if v is None else float(v)


def _ratio(diff: Any, tol: Any, status: str) -> float:
    """|a − n| / tolerance of one measurement: nan where a value was not finite, inf for a
    difference against a zero tolerance."""
    d, t = _f(diff), _f(tol)
    if status == "nonfinite" or not (math.isfinite(d) and math.isfinite(t)):
        return math.nan
    if t > 0:
        return d / t
    return math.inf if d > 0 else 0.0


def _nonfinite_spans(check: dict) -> list[tuple[int, int]]:
    """Flat-index ranges [lo, hi) that met a non-finite value: an element, the support of a
    direction within one leaf, or everything when f(x) itself is not finite. (A non-finite
    direction through every leaf cannot be pinned to one; it blanks only the overall figures.)"""
    total = sum(math.prod(leaf["shape"]) for leaf in check.get("leaves", []))
    if check.get("nonfinite") and check.get("value") is None:
        return [(0, total)]
    spans = []
    el = check.get("elements") or {}
    for flat, st in zip(el.get("index", []), el.get("status", []), strict=False):
        if st == "nonfinite":
            spans.append((int(flat), int(flat) + 1))
    d = check.get("directions") or {}
    for st, leaf, lo, hi in zip(
        d.get("status", []), d.get("leaf", []), d.get("lo", []), d.get("hi", []), strict=False
    ):
        if st == "nonfinite" and leaf is not None and int(leaf) >= 0:  # whole-vector ones: overall only
            spans.append((int(lo), int(hi)))
    return spans


#: Per-leaf and overall figures that summarise finite measurements: meaningless (shown as
#: "—", never as 0 or as agreement) where nothing was judged or a value was not finite.
_SUMMARY = ("max_rel_error", "norm_ratio", "digits", "sign_agreement")


def leaf_rows(check: dict | None) -> list[dict[str, Any]]:
    """One row per leaf: path, shape, checked, max_rel_error, norm_ratio, digits,
    sign_agreement, kinks, failed, passed, nonfinite, verdict ("ok", "FAILED", "non-finite"
    where a value in the leaf was NaN/inf, or "kinks only" where every measurement of the leaf
    was a kink, so nothing in it was verified). The summary figures are None where the leaf
    met a non-finite value or nothing in it was judged."""
    if not check:
        return []
    spans = _nonfinite_spans(check)
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
        lo, hi = r["start"], r["start"] + math.prod(r["shape"])
        r["nonfinite"] = any(a < hi and b > lo for a, b in spans)
        if r["nonfinite"] or not r["checked"]:
            r.update(dict.fromkeys(_SUMMARY))
        blind = kinks_only(r["checked"] or 0, r["kinks"] or 0)
        r["verdict"] = (
            "non-finite"
            if r["nonfinite"]
            else "FAILED"
            if r["passed"] is False
            else "kinks only"
            if blind
            else "ok"
        )
    return rows


def _leaf_of(check: dict, flat: int) -> tuple[dict, int]:
    leaves = check["leaves"]
    for leaf in reversed(leaves):
        if flat >= leaf["start"]:
            return leaf, flat - leaf["start"]
    return leaves[0], flat  # pragma: no cover - indices are never negative


def _rel(el: dict, r: int) -> float:
    """An element's relative error; nan (never the 0 the check stores) where it is non-finite."""
    return math.nan if el["status"][r] == "nonfinite" else _f(el["rel_error"][r])


def elements(check: dict | None) -> list[dict[str, Any]]:
    """Per leaf, the checked elements' arrays: flat, local (index within the leaf), names,
    analytic, numeric, rel_error, ratio (|a − n| / tolerance), failed, kink, nonfinite.
    Non-finite measurements have rel_error and ratio nan."""
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
        flat = np.asarray([int(el["index"][r]) for r in rows], dtype=np.int64)
        out.append(
            {
                "path": leaf["name"],
                "shape": leaf["shape"],
                "start": leaf["start"],
                "size": math.prod(leaf["shape"]),
                "flat": flat,
                "local": flat - leaf["start"],
                "names": [el["name"][r] for r in rows],
                "analytic": col("analytic"),
                "numeric": col("numeric"),
                "rel_error": np.asarray([_rel(el, r) for r in rows], dtype=np.float64),
                "ratio": np.asarray(
                    [_ratio(el["abs_error"][r], el["tolerance"][r], el["status"][r]) for r in rows],
                    dtype=np.float64,
                ),
                "failed": np.asarray([s in ("fail", "nonfinite") for s in status]),
                "kink": np.asarray([s == "kink" for s in status]),
                "nonfinite": np.asarray([s == "nonfinite" for s in status]),
            }
        )
    return out


def _nonfinite_reason(check: dict, analytic: Any, numeric: Any) -> str:
    a, n = _f(analytic), _f(numeric)
    if check.get("value") is None:
        return "f(x) itself is not finite"
    if not math.isfinite(a):
        return f"analytic value is {a:g}"
    if not math.isfinite(n):
        return "f is NaN/inf at a perturbed point"
    return "a non-finite value was met"


def _reason(check: dict, el: dict, r: int) -> str:
    status = el["status"][r]
    times = _ratio(el["abs_error"][r], el["tolerance"][r], status)
    if status == "fail":
        return f"|a − n| = {times:.3g} × tolerance"
    if status == "kink":
        sub = "" if el["subgradient"][r] else "; analytic NOT between them"
        return f"kink: D+ = {_f(el['slope_plus'][r]):.4g}, D− = {_f(el['slope_minus'][r]):.4g}{sub}"
    if status == "nonfinite":
        return "non-finite: " + _nonfinite_reason(check, el["analytic"][r], el["numeric"][r])
    return f"{times:.2g} × tolerance"


def worst_elements(check: dict | None, n: int = 10, failed_only: bool = False) -> list[dict[str, Any]]:
    """The worst checked elements (failures first, then by difference/tolerance): leaf,
    index, flat, name, analytic, numeric, abs_error, rel_error, tolerance, ratio, step,
    status, reason. A non-finite element has rel_error None, never the check's stored 0."""
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
        status = el["status"][r]
        out.append(
            {
                "leaf": leaf["name"],
                "index": index,
                "flat": int(flat),
                "name": el["name"][r],
                "analytic": el["analytic"][r],
                "numeric": el["numeric"][r],
                "abs_error": el["abs_error"][r],
                "rel_error": None if status == "nonfinite" else el["rel_error"][r],
                "tolerance": el["tolerance"][r],
                "ratio": _ratio(el["abs_error"][r], el["tolerance"][r], status),
                "step": el["step"][r],
                "status": status,
                "reason": _reason(check, el, r),
            }
        )
        if len(out) >= n:
            break
    return out


_RANK = {"fail": 0, "nonfinite": 1, "kink": 2, "pass": 3}


def direction_rows(check: dict | None, n: int | None = None) -> list[dict[str, Any]]:
    """The check's random directions, worst first (failures, non-finite, kinks, then by
    |a − n| / tolerance): direction (its number), kind, leaf (key path, or "all"), lo, hi
    (the flat support), analytic (AD directional derivative), numeric (FD), difference
    (a − n), abs_error, tolerance, ratio, step, status, reason. Non-finite values are None
    (difference, ratio: nan)."""
    if not check:
        return []
    d = check.get("directions") or {}
    status = d.get("status") or []
    if not status:
        return []
    names = [leaf["name"] for leaf in check.get("leaves", [])]
    rows = []
    for i, st in enumerate(status):
        a, nu = d["analytic"][i], d["numeric"][i]
        leaf = d["leaf"][i]
        leaf = int(leaf) if leaf is not None else -1
        if st == "kink":
            sub = "a valid" if d["subgradient"][i] else "NOT a valid"
            reason = (
                f"kink: D+ = {_f(d['slope_plus'][i]):.4g}, D− = {_f(d['slope_minus'][i]):.4g}, "
                f"{sub} subgradient"
            )
        elif st == "nonfinite":
            reason = "non-finite: " + _nonfinite_reason(check, a, nu)
        else:
            reason = "not measured" if st == "unchecked" else ""
        ratio = _ratio(d["abs_error"][i], d["tolerance"][i], st)
        if st == "fail":
            reason = f"|a − n| = {ratio:.3g} × tolerance"
        elif st == "pass":
            reason = f"{ratio:.2g} × tolerance"
        diff = _f(a) - _f(nu) if st != "nonfinite" else math.nan
        rows.append(
            {
                "direction": i,
                "kind": d["kind"][i],
                "leaf": names[leaf] if 0 <= leaf < len(names) else "all",
                "lo": d["lo"][i],
                "hi": d["hi"][i],
                "analytic": a,
                "numeric": nu,
                "difference": diff if math.isfinite(diff) else None,
                "abs_error": d["abs_error"][i],
                "tolerance": d["tolerance"][i],
                "ratio": ratio,
                "step": d["step"][i],
                "status": st,
                "reason": reason,
            }
        )
    key = [
        (_RANK.get(r["status"], 4), -(r["ratio"] if not math.isnan(r["ratio"]) else math.inf)) for r in rows
    ]
    rows = [r for _, r in sorted(zip(key, rows, strict=True), key=lambda kr: kr[0])]
    return rows if n is None else rows[:n]


def disagreement(check: dict | None) -> dict[str, Any] | None:
    """What the disagreement plot shows: |a − n| / tolerance per measurement, a failure above 1.

    Elements in full and subset modes (``x``: the leaf's slot plus the element's place in
    the leaf, so that every leaf gets an equal band however small), the directions in
    directional and locate modes (``x``: the direction's number); either when the other is
    empty. Returns x, ratio (nan where non-finite), status, names, groups ((name, x0, x1)
    bands), what ("elements" or "directions"); None when there is nothing to show.
    """
    if not check:
        return None
    el = elements(check)
    dirs = direction_rows(check)
    use_dirs = bool(dirs) and (check.get("mode") in ("directional", "locate") or not el)
    if use_dirs:
        dirs = sorted(dirs, key=lambda r: r["direction"])
        return {
            "what": "directions",
            "x": np.asarray([r["direction"] for r in dirs], dtype=np.float64),
            "ratio": np.asarray([r["ratio"] for r in dirs], dtype=np.float64),
            "status": [r["status"] for r in dirs],
            "names": [
                f"#{r['direction']} {r['kind']}" + ("" if r["leaf"] == "all" else f" {r['leaf']}")
                for r in dirs
            ],
            "groups": [],
        }
    if not el:
        return None
    xs, groups = [], []
    for slot, e in enumerate(el):
        xs.append(slot + (e["local"] + 0.5) / max(e["size"], 1))
        groups.append((e["path"], float(slot), float(slot + 1)))
    return {
        "what": "elements",
        "x": np.concatenate(xs),
        "ratio": np.concatenate([e["ratio"] for e in el]),
        "status": [s for e in el for s in _statuses(e)],
        "names": [name for e in el for name in e["names"]],
        "groups": groups,
    }


def _statuses(e: dict) -> list[str]:
    return [
        "nonfinite" if nf else "kink" if k else "fail" if f else "pass"
        for nf, k, f in zip(e["nonfinite"], e["kink"], e["failed"], strict=True)
    ]


def slice_view(ps: dict | None) -> dict[str, Any] | None:
    """The one-parameter slice for its chart: the loss curve, the AD tangent, the FD secant
    at the check's step h, and the central secant slope at every width ε of the curve
    (``widths``, ``secant_slopes``): it tends to the derivative as ε → 0, so a wide secant
    differs from a correct tangent by truncation, not by an error of the gradient."""
    if not ps:
        return None
    theta, j0 = _f(ps["theta"]), _f(ps["loss"])
    offsets = np.asarray([_f(t) for t in ps["curve_offsets"]], dtype=np.float64)
    losses = np.asarray([_f(v) for v in ps["curve_losses"]], dtype=np.float64)
    widths, slopes = [], []
    for i, t in enumerate(offsets):
        if t <= 0:
            continue
        mirror = np.flatnonzero(np.isclose(offsets, -t, rtol=1e-9, atol=0.0))
        if mirror.size:
            widths.append(float(t))
            slopes.append(float((losses[i] - losses[mirror[0]]) / (2 * t)))
    order = np.argsort(widths)
    return {
        "parameter": ps["parameter"],
        "theta": theta,
        "loss": j0,
        "x": theta + offsets,
        "losses": losses,
        "analytic": _f(ps["analytic"]),
        "numeric": _f(ps["numeric"]),
        "step": _f(ps["step"]),
        "widths": np.asarray(widths, dtype=np.float64)[order],
        "secant_slopes": np.asarray(slopes, dtype=np.float64)[order],
    }


def reference_trusted(check: dict | None) -> bool:
    """Whether jax.grad, the sweep's reference, passed the check: only then is the sweep's
    "true error" (measured against it) the error of the FD estimate."""
    return bool(check and check.get("passed") is True)


def verdict(
    check: dict | None, sweep: dict | None, *, dtype: str, mode: str | None, method: str
) -> dict[str, Any]:
    """Headline numbers: passed/failed, elements and directions judged, kinks, non-finite
    measurements, failing leaves. The overall figures are None where the check met a
    non-finite value or judged nothing."""
    out: dict[str, Any] = {
        "passed": None,
        "status": "not checked",
        "headline": "",
        "elements_checked": None,
        "directions_checked": None,
        "kinks": None,
        "nonfinite": None,
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
        el_status = (check.get("elements") or {}).get("status") or []
        dir_status = (check.get("directions") or {}).get("status") or []
        out["elements_checked"] = sum(s in ("pass", "fail") for s in el_status)
        out["directions_checked"] = sum(s in ("pass", "fail") for s in dir_status)
        out["nonfinite"] = sum(s == "nonfinite" for s in el_status + dir_status)
        out["kinks"] = None if check.get("kinks") is None else int(check["kinks"])
        if not check.get("nonfinite") and check.get("checked"):
            for k in ("max_rel_error", "norm_ratio", "digits"):
                v = check.get(k)
                out[k] = v if isinstance(v, (int, float)) else None
        out["failing_leaves"] = [r["path"] for r in leaf_rows(check) if r["passed"] is False]
        out["headline"] = "Gradient check " + str(check.get("verdict", "PASSED" if passed else "FAILED"))
        if out["failing_leaves"]:
            out["headline"] += f" (in {', '.join(out['failing_leaves'])})"
    elif sweep:
        out["headline"] = f"Step sweep of {sweep_size(sweep)} parameter(s) ({method}, {dtype})"
    return out


def sweep_size(sweep: dict | None) -> int:
    return len(sweep.get("parameters", [])) if sweep else 0


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


def sweep_curves(
    sweep: dict | None, leaves: list[dict] | None = None, n: int = 4, trusted: bool = True
) -> list[dict[str, Any]]:
    """Error-vs-h curves for the plot: per leaf (up to ``n``), the swept parameter with the
    largest derivative (its V is the clearest).

    With ``trusted`` (jax.grad passed the check) the error is the true error |D(h) − jax.grad|;
    otherwise the sweep's own |D(h) − D(h/2)|, since a distance to a gradient that failed
    the check is not the error of the FD estimate."""
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

    best: dict[Any, tuple[float, dict[str, Any]]] = {}
    for p in params:
        key = leaf_of(p)
        size = abs(_f(p.get("reference", p.get("estimate"))))
        if math.isfinite(size) and (key not in best or size > best[key][0]):
            best[key] = (size, p)
    chosen = [p for _, p in best.values()][:n]
    curves = []
    for p in chosen:
        err = p.get("true_error") if trusted else None
        label = "|D(h) − jax.grad|"
        if err is None:
            err = [None if d is None else abs(_f(d)) for d in p.get("differences", [])]
            steps = [_f(h) for h in p["steps"][:2]]
            ratio = steps[0] / steps[1] if len(steps) == 2 and steps[1] > 0 else 2.0
            label = f"|D(h) − D(h/{ratio:.3g})|"
        curves.append(
            {
                "name": p.get("name", "?"),
                "steps": p["steps"][: len(err)],
                "errors": [None if e is None else _f(e) for e in err],
                "roundoff": [None if r is None else _f(r) for r in p.get("roundoff", [])][: len(err)] or None,
                "chosen_step": None if p.get("step") is None else _f(p["step"]),
                "chosen_error": _f(p["true_error_at_step"])
                if trusted and p.get("true_error_at_step") is not None
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
