"""Read the check and sweep sections of a report document into rows the renderers show.

The sections are ``GradCheck.to_dict()`` and ``StepSweep.to_dict()``, stored verbatim in the
document; this module is the one place that knows their layout.

Every measurement (an element, a direction), every leaf and the check itself has a
``status`` label (``"pass"``, ``"fail"``, ``"inconclusive"``, ``"unchecked"``) and, when
inconclusive, a ``reason`` label (``"kink"``, ``"nonfinite"``, ``"unresolved"``, ...). Rows
here carry both, plus ``outcome``: the status, or for an inconclusive measurement its
reason, which is what the tables colour and the plots mark.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._check import Reason
from .._check.format import kink_text


def _f(v: Any) -> float:
    """A number from the document (None, written for NaN and ±inf, → nan)."""
    return float("nan") if v is None else float(v)


# ---------------------------------------------------------------------------------- outcomes


def _reason(label: Any) -> Reason | None:
    """The ``Reason`` of a label; None for ``"none"``, a missing or an unknown label."""
    if not isinstance(label, str) or label == "none":
        return None
    return Reason.__members__.get(label.upper())


def reason_text(label: Any) -> str:
    """A reason label as the report writes it: ``"non-finite"``, ``"not measured"``, ``"kink"``."""
    return {"nonfinite": "non-finite", "not_measured": "not measured"}.get(str(label), str(label))


def describe(label: Any) -> str:
    """One sentence: what an inconclusive reason means ("" for none)."""
    r = _reason(label)
    return r.describe() if r is not None else ""


def remedy(label: Any) -> str:
    """One sentence: what would resolve an inconclusive reason ("" for none)."""
    r = _reason(label)
    return r.remedy() if r is not None else ""


def outcome(status: Any, reason: Any = None) -> str:
    """What a measurement came to: ``"pass"``, ``"fail"``, ``"unchecked"``, or for an
    inconclusive one its reason (``"kink"``, ``"nonfinite"``, ``"unresolved"``, ...)."""
    if status == "inconclusive":
        return reason if isinstance(reason, str) and reason != "none" else "inconclusive"
    return str(status)


def tone(status: Any) -> str:
    """The colour class of a status label: ``"ok"``, ``"bad"``, ``"warn"`` or ``"info"``."""
    return {"pass": "ok", "fail": "bad", "inconclusive": "warn"}.get(str(status), "info")


def outcome_text(status: Any, reason: Any = None) -> str:
    """A measurement's status in a table cell: ``"ok"``, ``"failed"``, ``"kink"``,
    ``"non-finite"``, ``"unresolved"``, ``"not measured"``, ``"unchecked"``."""
    out = outcome(status, reason)
    return {"pass": "ok", "fail": "failed"}.get(out, reason_text(out))


def _check_status(check: dict) -> str:
    """The check's status label (a document from before ``fdjax.check/3`` has only ``passed``)."""
    status = check.get("status")
    if status in ("pass", "fail", "inconclusive"):
        return status
    return "pass" if check.get("passed") else "fail"


def _ratio(diff: Any, tol: Any, nonfinite: bool) -> float:
    """|a − n| / tolerance of one measurement: nan where a value was not finite, inf for a
    difference against a zero tolerance."""
    d, t = _f(diff), _f(tol)
    if nonfinite or not (math.isfinite(d) and math.isfinite(t)):
        return math.nan
    if t > 0:
        return d / t
    return math.inf if d > 0 else 0.0


def _nonfinite(out: str, analytic: Any, numeric: Any) -> bool:
    """A measurement that met a NaN/inf: inconclusive for that reason, or judged (a FAIL:
    the analytic value is not finite where f is) with a value the document writes as null."""
    return out == "nonfinite" or (out in ("pass", "fail") and (analytic is None or numeric is None))


def _measure(group: dict, i: int) -> tuple[str, bool]:
    """(outcome, nonfinite) of row ``i`` of the elements or directions of a check."""
    reasons = group.get("reason") or []
    out = outcome(group["status"][i], reasons[i] if i < len(reasons) else None)
    return out, _nonfinite(out, group["analytic"][i], group["numeric"][i])


def _nonfinite_spans(check: dict) -> list[tuple[int, int]]:
    """Flat-index ranges [lo, hi) that met a non-finite value: an element, the support of a
    direction within one leaf, or everything when f(x) itself is not finite. (A non-finite
    direction through every leaf cannot be pinned to one; it blanks only the overall figures.)"""
    total = sum(math.prod(leaf["shape"]) for leaf in check.get("leaves", []))
    if check.get("nonfinite") and check.get("value") is None:
        return [(0, total)]
    spans = []
    el = check.get("elements") or {}
    for r, flat in enumerate(el.get("index", [])):
        if _measure(el, r)[1]:
            spans.append((int(flat), int(flat) + 1))
    d = check.get("directions") or {}
    for i, (leaf, lo, hi) in enumerate(
        zip(d.get("leaf", []), d.get("lo", []), d.get("hi", []), strict=False)
    ):
        if leaf is not None and int(leaf) >= 0 and _measure(d, i)[1]:  # whole-vector ones: overall only
            spans.append((int(lo), int(hi)))
    return spans


#: Per-leaf and overall figures that summarise finite measurements: meaningless (shown as
#: "—", never as 0 or as agreement) where nothing was judged or a value was not finite.
_SUMMARY = ("max_rel_error", "norm_ratio", "digits", "sign_agreement")


def leaf_rows(check: dict | None) -> list[dict[str, Any]]:
    """One row per leaf: path, shape, start, checked (measurements decided), inconclusive,
    max_rel_error, norm_ratio, digits, sign_agreement, kinks, failed, status (``"pass"``,
    ``"fail"``, ``"inconclusive"``, ``"unchecked"``), reason (the label when inconclusive,
    else None), passed (status is pass), nonfinite (a value in the leaf was NaN/inf),
    verdict (``"ok"``, ``"FAILED"``, ``"FAILED (non-finite)"``, ``"inconclusive (kink)"``,
    ``"inconclusive (non-finite)"``, ... — nothing in an inconclusive leaf was verified),
    remedy (what would resolve an inconclusive leaf). The summary figures are None where
    the leaf met a non-finite value or nothing in it was judged."""
    if not check:
        return []
    spans = _nonfinite_spans(check)
    rows = []
    for leaf in check.get("leaves", []):
        status = leaf.get("status") or ("pass" if leaf.get("passed") else "fail")
        reason = leaf.get("reason") if status == "inconclusive" and _reason(leaf.get("reason")) else None
        rows.append(
            {
                "path": leaf["name"],
                "shape": leaf["shape"],
                "start": leaf["start"],
                "checked": leaf.get("checked"),
                "inconclusive": leaf.get("inconclusive"),
                "max_rel_error": leaf.get("max_rel_error"),
                "norm_ratio": leaf.get("norm_ratio"),
                "digits": leaf.get("digits"),
                "sign_agreement": leaf.get("sign_agreement"),
                "kinks": leaf.get("kinks"),
                "failed": leaf.get("failed"),
                "status": status,
                "reason": reason,
                "passed": status == "pass",
                "remedy": remedy(reason) or None,
            }
        )
    for r in rows:
        lo, hi = r["start"], r["start"] + math.prod(r["shape"])
        r["nonfinite"] = any(a < hi and b > lo for a, b in spans)
        if r["nonfinite"] or not r["checked"]:
            r.update(dict.fromkeys(_SUMMARY))
        if r["status"] == "fail":
            r["verdict"] = "FAILED (non-finite)" if r["nonfinite"] else "FAILED"
        elif r["status"] == "inconclusive":
            r["verdict"] = f"inconclusive ({reason_text(r['reason'])})" if r["reason"] else "inconclusive"
        elif r["status"] == "pass":
            r["verdict"] = "ok"
        else:
            r["verdict"] = "not checked"
    return rows


def open_reasons(rows: list[dict[str, Any]]) -> list[tuple[str, list[str], str, str]]:
    """The reasons of the inconclusive leaves of ``leaf_rows``, each once: (reason label,
    the leaves' paths, what it means, what would resolve it)."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] == "inconclusive":
            out.setdefault(r["reason"] or "", []).append(r["path"])
    return [(why, paths, describe(why), remedy(why)) for why, paths in out.items()]


def _leaf_of(check: dict, flat: int) -> tuple[dict, int]:
    leaves = check["leaves"]
    for leaf in reversed(leaves):
        if flat >= leaf["start"]:
            return leaf, flat - leaf["start"]
    return leaves[0], flat  # pragma: no cover - indices are never negative


def elements(check: dict | None) -> list[dict[str, Any]]:
    """Per leaf, the checked elements' arrays: flat, local (index within the leaf), names,
    analytic, numeric, rel_error, ratio (|a − n| / tolerance), outcome (see ``outcome``),
    failed, kink, nonfinite, inconclusive (any reason). Non-finite measurements have
    rel_error and ratio nan."""
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

        measured = [_measure(el, r) for r in rows]
        outcomes = [o for o, _ in measured]
        nonfinite = np.asarray([nf for _, nf in measured], dtype=bool)
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
                "rel_error": np.where(nonfinite, np.nan, col("rel_error")),
                "ratio": np.asarray(
                    [
                        _ratio(el["abs_error"][r], el["tolerance"][r], nf)
                        for r, nf in zip(rows, nonfinite, strict=True)
                    ],
                    dtype=np.float64,
                ),
                "outcome": outcomes,
                "failed": np.asarray([o == "fail" for o in outcomes]),
                "kink": np.asarray([o == "kink" for o in outcomes]),
                "nonfinite": nonfinite,
                "inconclusive": np.asarray([o not in ("pass", "fail", "unchecked") for o in outcomes]),
            }
        )
    return out


def _nonfinite_why(check: dict, analytic: Any, numeric: Any) -> str:
    a, n = _f(analytic), _f(numeric)
    if check.get("value") is None:
        return "f(x) itself is not finite"
    if not math.isfinite(a):
        return f"analytic value is {a:g}"
    if not math.isfinite(n):
        return "f is NaN/inf at a perturbed point, at every step tried"
    return "a non-finite value was met"


def _why(check: dict, group: dict, i: int, out: str, nonfinite: bool, ratio: float) -> str:
    """Why one measurement came out as it did, in a few words."""
    if nonfinite:
        return "non-finite: " + _nonfinite_why(check, group["analytic"][i], group["numeric"][i])
    if out == "fail":
        return f"|a − n| = {ratio:.3g} × tolerance"
    if out == "pass":
        return f"{ratio:.2g} × tolerance"
    if out == "kink":
        dp, dm, tol = _f(group["slope_plus"][i]), _f(group["slope_minus"][i]), _f(group["tolerance"][i])
        return kink_text(dp, dm, tol, bool(group["subgradient"][i]))
    if out == "unresolved":
        return f"unresolved: tolerance {_f(group['tolerance'][i]):.2g} not below the values compared"
    if out == "nondeterministic":
        return "not judged: f is not deterministic"
    if out == "unchecked":
        return "not measured"
    return reason_text(out)


def worst_elements(check: dict | None, n: int = 10, failed_only: bool = False) -> list[dict[str, Any]]:
    """The worst checked elements, in the check's order (failures, non-finite, unresolved,
    kinks, then by difference/tolerance): leaf, index, flat, name, analytic, numeric,
    abs_error, rel_error, tolerance, ratio, step, status, reason (the label when
    inconclusive, else None), outcome, why (a few words). A non-finite element has
    rel_error None, never a stored 0."""
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
        result, nonfinite = _measure(el, r)
        ratio = _ratio(el["abs_error"][r], el["tolerance"][r], nonfinite)
        out.append(
            {
                "leaf": leaf["name"],
                "index": index,
                "flat": int(flat),
                "name": el["name"][r],
                "analytic": el["analytic"][r],
                "numeric": el["numeric"][r],
                "abs_error": el["abs_error"][r],
                "rel_error": None if nonfinite else el["rel_error"][r],
                "tolerance": el["tolerance"][r],
                "ratio": ratio,
                "step": el["step"][r],
                "status": status,
                "reason": result if status == "inconclusive" else None,
                "outcome": result,
                "why": _why(check, el, r, result, nonfinite, ratio),
            }
        )
        if len(out) >= n:
            break
    return out


#: Worst first: failures, non-finite, unresolved, kinks, other inconclusive, passes.
_RANK = {"fail": 0, "nonfinite": 1, "unresolved": 2, "kink": 3, "pass": 5, "unchecked": 6}


def direction_rows(check: dict | None, n: int | None = None) -> list[dict[str, Any]]:
    """The check's directions, worst first (failures, non-finite, unresolved, kinks, other
    inconclusive, then by |a − n| / tolerance): direction (its number), kind, leaf (key
    path, or "all"), lo, hi (the flat support), analytic (AD directional derivative),
    numeric (FD), difference (a − n), abs_error, tolerance, ratio, step, status, reason
    (the label when inconclusive), outcome, nonfinite, why. Non-finite values are None (difference,
    ratio: nan)."""
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
        result, nonfinite = _measure(d, i)
        ratio = _ratio(d["abs_error"][i], d["tolerance"][i], nonfinite)
        diff = _f(a) - _f(nu) if not nonfinite else math.nan
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
                "reason": result if st == "inconclusive" else None,
                "outcome": result,
                "nonfinite": nonfinite,
                "why": _why(check, d, i, result, nonfinite, ratio),
            }
        )
    key = [
        (_RANK.get(r["outcome"], 4), -(r["ratio"] if not math.isnan(r["ratio"]) else math.inf)) for r in rows
    ]
    rows = [r for _, r in sorted(zip(key, rows, strict=True), key=lambda kr: kr[0])]
    return rows if n is None else rows[:n]


def _plot_status(out: str, nonfinite: bool) -> str:
    """The marker of a measurement in the disagreement plot: pass, fail, kink, nonfinite,
    inconclusive (any other reason)."""
    if nonfinite:
        return "nonfinite"
    return out if out in ("pass", "fail", "kink") else "inconclusive"


def disagreement(check: dict | None) -> dict[str, Any] | None:
    """What the disagreement plot shows: |a − n| / tolerance per measurement, a failure above 1.

    Elements in full and subset modes (``x``: the leaf's slot plus the element's place in
    the leaf, so that every leaf gets an equal band however small), the directions in
    directional and locate modes (``x``: the direction's number); either when the other is
    empty. Unmeasured directions are left out. Returns x, ratio (nan where non-finite),
    status (``"pass"``, ``"fail"``, ``"kink"``, ``"nonfinite"``, ``"inconclusive"``), names,
    groups ((name, x0, x1) bands), what ("elements" or "directions"); None when there is
    nothing to show.
    """
    if not check:
        return None
    el = elements(check)
    dirs = [r for r in direction_rows(check) if r["outcome"] != "unchecked"]
    use_dirs = bool(dirs) and (check.get("mode") in ("directional", "locate") or not el)
    if use_dirs:
        dirs = sorted(dirs, key=lambda r: r["direction"])
        return {
            "what": "directions",
            "x": np.asarray([r["direction"] for r in dirs], dtype=np.float64),
            "ratio": np.asarray([r["ratio"] for r in dirs], dtype=np.float64),
            "status": [_plot_status(r["outcome"], r["nonfinite"]) for r in dirs],
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
        "status": [
            _plot_status(o, bool(nf)) for e in el for o, nf in zip(e["outcome"], e["nonfinite"], strict=True)
        ],
        "names": [name for e in el for name in e["names"]],
        "groups": groups,
    }


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
    """Whether jax.grad, the sweep's reference, PASSED the check: only then is the sweep's
    "true error" (measured against it) the error of the FD estimate."""
    return check is not None and bool(check) and _check_status(check) == "pass"


def reference_doubt(check: dict | None) -> str:
    """Why jax.grad is not a trusted reference, as "jax.grad {this}": "FAILED the check",
    "was not verified (the check was INCONCLUSIVE)", "was not checked"; "" when trusted."""
    if not check:
        return "was not checked"
    return {
        "pass": "",
        "fail": "FAILED the check",
        "inconclusive": "was not verified (the check was INCONCLUSIVE)",
    }[_check_status(check)]


_HEADLINE_STATUS = {"pass": "passed", "fail": "failed", "inconclusive": "inconclusive"}
_REMEDY_MARK = " To resolve: "


def verdict(
    check: dict | None, sweep: dict | None, *, dtype: str, mode: str | None, method: str
) -> dict[str, Any]:
    """Headline numbers: the check's status (passed, failed, inconclusive) and, when
    inconclusive, its reason and remedy; elements and directions judged, inconclusive
    measurements, kinks, non-finite measurements, failing and inconclusive leaves,
    escalation, the check's notes. ``mode`` is the mode that ran (the check's own when it
    ran). The overall figures are None where the check met a non-finite value or judged
    nothing."""
    out: dict[str, Any] = {
        "passed": None,
        "status": "not checked",
        "reason": None,
        "remedy": None,
        "headline": "",
        "elements_checked": None,
        "directions_checked": None,
        "inconclusive": None,
        "kinks": None,
        "nonfinite": None,
        "failing_leaves": [],
        "inconclusive_leaves": [],
        "escalated": None,
        "escalation_evaluations": None,
        "check_notes": [],
        "mode": mode,
        "method": method,
        "dtype": dtype,
        "max_rel_error": None,
        "norm_ratio": None,
        "digits": None,
        "sweep_status": sweep_counts(sweep) if sweep else None,
    }
    if check:
        status = _check_status(check)
        out["passed"] = status == "pass"
        out["status"] = _HEADLINE_STATUS[status]
        if status == "inconclusive":
            out["reason"] = check.get("reason") if _reason(check.get("reason")) else None
            out["remedy"] = remedy(out["reason"]) or None
        out["mode"] = check.get("mode", mode)
        el = check.get("elements") or {}
        dirs = check.get("directions") or {}
        out["elements_checked"] = sum(s in ("pass", "fail") for s in el.get("status") or [])
        out["directions_checked"] = sum(s in ("pass", "fail") for s in dirs.get("status") or [])
        out["nonfinite"] = sum(
            _measure(group, i)[1] for group in (el, dirs) for i in range(len(group.get("status") or []))
        )
        for k in ("inconclusive", "kinks", "escalated", "escalation_evaluations"):
            out[k] = None if check.get(k) is None else int(check[k])
        out["check_notes"] = [str(n) for n in check.get("notes") or []]
        if not check.get("nonfinite") and check.get("checked"):
            for k in ("max_rel_error", "norm_ratio", "digits"):
                v = check.get(k)
                out[k] = v if isinstance(v, (int, float)) else None
        rows = leaf_rows(check)
        out["failing_leaves"] = [r["path"] for r in rows if r["status"] == "fail"]
        out["inconclusive_leaves"] = [
            {"path": r["path"], "reason": r["reason"]} for r in rows if r["status"] == "inconclusive"
        ]
        line = str(check.get("verdict") or status.upper())
        line = line.split(_REMEDY_MARK)[0]  # the remedy has its own field
        out["headline"] = "Gradient check " + line
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
