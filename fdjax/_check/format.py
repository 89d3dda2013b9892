"""Formatting of a ``GradCheck`` outside jit: the summary table and the JSON-ready dict."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from .._json import CHECK_SCHEMA, jsonable
from .outcomes import CheckStatus, DirectionKind


_DIGITS = {"float64": 15.7, "float32": 6.9, "float16": 3.3, "bfloat16": 2.1}


def traced(r) -> bool:
    """Whether ``r`` holds traced values (it was formed inside ``jax.jit``)."""
    return any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(r))


def host(r, part=None):
    """``r`` (or ``part`` of it) with NumPy arrays: formatting runs outside jit, and says so
    inside it."""
    tree = r if part is None else part
    if traced(tree):
        raise TypeError(
            f"{r.caller}: the GradCheck holds traced values (inside jax.jit); return it "
            "from the jitted function and format it outside"
        )
    return jax.device_get(tree)


def _g(v, width=10, prec=3):
    """Scientific notation; "—" where nothing was measured or a value is not finite."""
    v = float(v)
    if math.isnan(v):
        return "—".rjust(width)
    return f"{v:>{width}.{prec}e}"


def _fixed(v, width=6, prec=1):
    """Fixed-point notation; "—" where nothing was measured or a value is not finite."""
    v = float(v)
    if math.isnan(v):
        return "—".rjust(width)
    return f"{v:>{width}.{prec}f}"


def _offset_text(off) -> str:
    off = float(off)
    if math.isnan(off):
        return "the analytic value"
    if off == 0:
        return "f(x) itself (offset 0)"
    return f"offset {off:+g}·h"


def verdict_line(r) -> str:
    """One line: PASSED / FAILED and why."""
    r = host(r)
    if not bool(r.deterministic):
        return (
            f"FAILED: f is not deterministic: f(x) evaluated repeatedly differs by "
            f"{float(r.f0_spread):.3g} (rounding allows ~{_det_allow(r):.3g}). Dropout or an RNG "
            "left on? The gradient was not judged."
        )
    if bool(r.nonfinite):
        return "FAILED: " + _nonfinite_text(r)
    failed = int(r.failed)
    checked = int(r.checked)
    kinks = int(r.kinks)
    what = (
        "jax.grad"
        if r.kind == "grad" and r.order == 1
        else {
            "grad": "the AD Hessian-vector product",
            "vjp": "jax.vjp",
            "jvp": "jax.jvp",
        }[r.kind]
    )
    if failed:
        return f"FAILED: {failed} of {checked} checks disagree with {what} beyond the error model"
    extra = f"; {kinks} kink(s) left out" if kinks else ""
    if checked == 0:
        return f"PASSED (vacuously): nothing could be checked{extra}"
    lv = r.leaves
    blind = [name for name, c, k in zip(r.leaf_names, lv.checked, lv.kinks, strict=True) if kinks_only(c, k)]
    if blind:
        hint = "f is not smooth there at the step's scale" if r.mode == "full" else "try mode='full'"
        more = " …" if len(blind) > 3 else ""
        extra += f"; NOT verified: {', '.join(blind[:3])}{more} (every measurement a kink; {hint})"
    return f"PASSED: {checked} checks agree with {what} within the error model{extra}"


def kinks_only(checked, kinks) -> bool:
    """A leaf (or the whole check) of which nothing was verified: every measurement a kink."""
    return not int(checked) and bool(int(kinks))


def _leaf_verdict(passed, checked, kinks) -> str:
    if not passed:
        return "FAIL"
    return "kinks only" if kinks_only(checked, kinks) else "ok"


def _det_allow(r) -> float:
    eps = np.finfo(np.dtype(r.dtype)).eps if r.dtype in _DIGITS else 2.2e-16
    return 16 * eps * abs(float(r.value)) + 4 * float(r.noise)


def _nonfinite_text(r) -> str:
    idx = int(r.nonfinite_index)
    d = int(r.nonfinite_direction)
    off = float(r.nonfinite_offset)
    if not math.isfinite(float(r.value)) or (idx < 0 and d < 0 and off == 0):
        return "f returned a non-finite value at the unperturbed point x"
    if idx >= 0:
        name = r.element_name(idx)
        if math.isnan(off):
            return f"the analytic derivative is non-finite at {name}"
        return f"f returned NaN/inf at a perturbed point: element {name}, {_offset_text(off)}"
    if d >= 0:
        kind = DirectionKind(int(r.directions.kind[d])).label
        return f"f returned NaN/inf along direction {d} ({kind}), {_offset_text(off)}"
    return "a non-finite value was met"


def element_rows(r, max_rows: int | None = None) -> list[int]:
    """Flat indices of the checked elements, worst first (failures, non-finite, kinks, then by
    difference/tolerance)."""
    el = host(r).elements
    status = el.status
    idx = np.flatnonzero(status != CheckStatus.UNCHECKED)
    if idx.size == 0:
        return []
    err = el.abs_error[idx]
    tol = el.tolerance[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tol > 0, err / tol, np.where(err > 0, np.inf, 0.0))
    ratio = np.nan_to_num(ratio, nan=np.inf)
    rank = np.select(
        [
            status[idx] == CheckStatus.FAIL,
            status[idx] == CheckStatus.NONFINITE,
            status[idx] == CheckStatus.KINK,
        ],
        [0, 1, 2],
        default=3,
    )
    order = np.lexsort((-ratio, rank))
    out = idx[order]
    return out.tolist() if max_rows is None else out[:max_rows].tolist()


def _why(r, i) -> str:
    el = r.elements
    s = int(el.status[i])
    a = float(el.analytic[i])
    err = float(el.abs_error[i])
    tol = float(el.tolerance[i])
    parts = (
        f"truncation {float(el.truncation[i]):.2g}, round-off {float(el.roundoff[i]):.2g}, "
        f"AD {float(el.ad_rounding[i]):.2g}"
    )
    if s == CheckStatus.FAIL:
        times = err / tol if tol > 0 else math.inf
        return f"FAIL: |diff| is {times:.3g} × the tolerance {tol:.2g} (margin {r.margin:g} × ({parts}))"
    if s == CheckStatus.PASS:
        return f"ok: |diff| <= tolerance {tol:.2g} ({parts})"
    if s == CheckStatus.KINK:
        dp, dm = float(el.slope_plus[i]), float(el.slope_minus[i])
        sub = "is" if bool(el.subgradient[i]) else "is NOT"
        return f"kink (left out): D+ = {dp:.4g}, D- = {dm:.4g}; analytic {a:.4g} {sub} between them"
    if s == CheckStatus.NONFINITE:
        if i == int(r.nonfinite_index):
            return "non-finite: " + _offset_text(float(r.nonfinite_offset))
        return "non-finite value at one of this element's offsets or its analytic value"
    return CheckStatus(s).label


def _sign(v: float) -> str:
    return "?" if math.isnan(v) else "+" if v > 0 else "-" if v < 0 else "0"


def failing_parts(r, max_elements: int = 3) -> str:
    """Where a failed check failed: "['w'] ([2, 3], [0, 1]); ['b']" (leaves, worst elements)."""
    r = host(r)
    status = r.elements.status
    worst = [i for i in element_rows(r) if status[i] in (CheckStatus.FAIL, CheckStatus.NONFINITE)]
    by_leaf: dict[str, list[str]] = {}
    for i in worst:
        name = r.element_name(i)
        leaf = next((n for n in r.leaf_names if name.startswith(n)), name)
        by_leaf.setdefault(leaf, []).append(name[len(leaf) :] or name)
    for name, ok in zip(r.leaf_names, r.leaves.passed, strict=True):
        if not bool(ok):
            by_leaf.setdefault(name, [])
    parts = []
    for leaf, elements in by_leaf.items():
        shown = ", ".join(elements[:max_elements]) + (" …" if len(elements) > max_elements else "")
        parts.append(f"{leaf} ({shown})" if shown else leaf)
    return "; ".join(parts)


def _digits_of(rel, dtype):
    top = _DIGITS.get(dtype, 15.7)
    if not math.isfinite(rel):
        return math.nan
    return min(top, max(0.0, -math.log10(max(rel, 10.0 ** (-top)))))


def summary(r, max_rows: int = 10) -> str:
    """The table printed by ``str(GradCheck)``."""
    r = host(r)
    lines = []
    what = {"grad": "check_grad", "vjp": "check_vjp", "jvp": "check_jvp"}[r.kind]
    lines.append(f"fdjax.{what}: {verdict_line(r)}")
    lines.append(
        f"  mode={r.mode}  method={r.method}  order={r.order}  dtype={r.dtype}  margin={r.margin:g}  "
        f"evaluations={int(r.evaluations)}"
    )
    lines.append(
        f"  f(x) = {float(r.value):.6g}   noise of f = {float(r.noise):.2g}   "
        f"deterministic: {'yes' if bool(r.deterministic) else 'NO'}"
    )
    # Leaves.
    name_w = max([len("leaf")] + [len(n) for n in r.leaf_names] + [len("overall")])
    name_w = min(name_w, 40)
    head = (
        f"  {'leaf':<{name_w}} {'size':>8} {'checked':>8} {'kinks':>6} {'failed':>6} {'norm ratio':>10} "
        f"{'max rel':>10} {'digits':>6} {'sign':>6}  verdict"
    )
    lines.append("")
    lines.append(head)
    lv = r.leaves
    for j, (name, shape) in enumerate(zip(r.leaf_names, r.leaf_shapes, strict=False)):
        size = math.prod(shape)
        lines.append(
            f"  {name[:name_w]:<{name_w}} {size:>8d} {int(lv.checked[j]):>8d} {int(lv.kinks[j]):>6d} "
            f"{int(lv.failed[j]):>6d} {_g(lv.norm_ratio[j])} {_g(lv.max_rel_error[j])} "
            f"{_fixed(lv.digits[j])} {_fixed(lv.sign_agreement[j], 6, 3)}  "
            f"{_leaf_verdict(lv.passed[j], lv.checked[j], lv.kinks[j])}"
        )
    lines.append(
        f"  {'overall':<{name_w}} {r.size:>8d} {int(r.checked):>8d} {int(r.kinks):>6d} "
        f"{int(r.failed):>6d} {_g(r.norm_ratio)} {_g(r.max_rel_error)} "
        f"{_fixed(r.digits)} {_fixed(r.sign_agreement, 6, 3)}  "
        f"{'ok' if bool(r.passed) else 'FAIL'}"
    )
    # Elements.
    el = r.elements
    rows = element_rows(r, max_rows)
    if rows:
        total = int(np.sum(el.status != CheckStatus.UNCHECKED))
        lines.append("")
        lines.append(f"  worst elements ({len(rows)} of {total} checked, worst first):")
        ew = min(max([len("element")] + [len(r.element_name(i)) for i in rows]), 48)
        lines.append(
            f"  {'element':<{ew}} {'analytic':>11} {'numeric':>11} {'difference':>11} {'rel err':>9} "
            f"{'digits':>6} {'sign':>4}  why"
        )
        for i in rows:
            a, n = float(el.analytic[i]), float(el.numeric[i])
            rel = float(el.rel_error[i])
            sign = _sign(a) + "/" + _sign(n)
            lines.append(
                f"  {r.element_name(i)[:ew]:<{ew}} {_g(a, 11, 4)} {_g(n, 11, 4)} {_g(a - n, 11)} "
                f"{_g(rel, 9, 2)} {_fixed(_digits_of(rel, r.dtype))} {sign:>4}  {_why(r, i)}"
            )
    # Directions.
    dstatus = r.directions.status
    if dstatus.size:
        order = _direction_order(r)[:max_rows]
        lines.append("")
        lines.append(f"  directions ({len(order)} of {dstatus.size}, worst first):")
        lines.append(
            f"  {'direction':<28} {'support':>17} {'analytic':>11} {'numeric':>11} {'difference':>11} "
            f"{'tolerance':>10}  verdict"
        )
        for d in order:
            lines.append("  " + _direction_line(r, d))
    if r.mode == "locate":
        found = sorted({int(i) for i in r.located if i >= 0})
        bad = [i for i in found if el.status[i] == CheckStatus.FAIL]
        lines.append("")
        if not found:
            lines.append("  locate: no failing direction, nothing to bisect")
        else:
            names = ", ".join(r.element_name(i) for i in bad) or "none confirmed"
            lines.append(f"  locate: bisection ended at {len(found)} element(s); confirmed wrong: {names}")
    return "\n".join(lines)


def _direction_order(r):
    dr = r.directions
    st, err, tol = dr.status, dr.abs_error, dr.tolerance
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(np.where(tol > 0, err / tol, np.inf), nan=np.inf)
    rank = np.select(
        [st == CheckStatus.FAIL, st == CheckStatus.NONFINITE, st == CheckStatus.KINK, st == CheckStatus.PASS],
        [0, 1, 2, 3],
        default=4,
    )
    return np.lexsort((-ratio, rank)).tolist()


def _direction_line(r, d) -> str:
    dr = r.directions
    leaf = int(dr.leaf[d])
    lo, hi = int(dr.lo[d]), int(dr.hi[d])
    label = DirectionKind(int(dr.kind[d])).label + (f" {r.leaf_names[leaf]}" if leaf >= 0 else f" #{d}")
    st = int(dr.status[d])
    a, n = float(dr.analytic[d]), float(dr.numeric[d])
    tol = float(dr.tolerance[d])
    if st == CheckStatus.KINK:
        sub = "valid" if bool(dr.subgradient[d]) else "NOT a valid"
        verdict = (
            f"kink (left out): D+ = {float(dr.slope_plus[d]):.4g}, "
            f"D- = {float(dr.slope_minus[d]):.4g}, {sub} subgradient"
        )
    elif st == CheckStatus.FAIL:
        verdict = f"FAIL: |diff| is {abs(a - n) / tol if tol > 0 else math.inf:.3g} × tolerance"
    else:
        verdict = CheckStatus(st).label if st != CheckStatus.PASS else "ok"
    return (
        f"{label[:28]:<28} {f'[{lo}, {hi})':>17} {a:>11.4e} {n:>11.4e} {a - n:>11.3e} {tol:>10.2e}  {verdict}"
    )


#: The overall figures of ``to_dict()``, in its order.
_OVERALL = (
    "passed",
    "checked",
    "failed",
    "kinks",
    "deterministic",
    "f0_spread",
    "value",
    "noise",
    "norm_ratio",
    "max_rel_error",
    "digits",
    "sign_agreement",
    "nonfinite",
    "nonfinite_index",
    "nonfinite_direction",
    "nonfinite_offset",
    "evaluations",
)


def _columns(group, rows) -> dict:
    """The fields of a group at ``rows``; status and kind codes as their labels."""
    out = {}
    for f in dataclasses.fields(group):
        arr = getattr(group, f.name)[rows]
        if f.name == "status":
            out[f.name] = [CheckStatus(int(v)).label for v in arr]
        elif f.name == "kind":
            out[f.name] = [DirectionKind(int(v)).label for v in arr]
        else:
            out[f.name] = arr
    return out


def to_dict(r, max_elements: int | None = None) -> dict:
    """JSON-ready dict of a ``GradCheck`` (``fdjax._json``: non-finite numbers become None)."""
    r = host(r)
    out = {
        "schema": CHECK_SCHEMA,
        "caller": r.caller,
        "kind": r.kind,
        "mode": r.mode,
        "method": r.method,
        "order": r.order,
        "dtype": r.dtype,
        "margin": r.margin,
        "verdict": verdict_line(r),
    }
    out.update({f: getattr(r, f) for f in _OVERALL})
    out["located"] = [int(i) for i in r.located if i >= 0]
    lv = r.leaves
    out["leaves"] = [
        {"name": name, "shape": list(shape), "start": start}
        | {f.name: getattr(lv, f.name)[j] for f in dataclasses.fields(lv)}
        for j, (name, shape, start) in enumerate(
            zip(r.leaf_names, r.leaf_shapes, r.leaf_starts, strict=False)
        )
    ]
    rows = element_rows(r, max_elements)
    out["elements"] = {"index": rows, "name": [r.element_name(i) for i in rows]}
    out["elements"].update(_columns(r.elements, np.asarray(rows, np.int64)))
    out["directions"] = _columns(r.directions, slice(None))
    return jsonable(out)
