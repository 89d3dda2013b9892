"""Formatting of a ``GradCheck`` outside jit: the summary table and the JSON-ready dict."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.core
import numpy as np

from .._json import CHECK_SCHEMA, jsonable
from .outcomes import CheckStatus, DirectionKind, Reason


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


def _what(r) -> str:
    if r.kind == "grad" and r.order == 1:
        return "jax.grad"
    return {"grad": "the AD Hessian-vector product", "vjp": "jax.vjp", "jvp": "jax.jvp"}[r.kind]


def verdict_line(r) -> str:
    """One line: PASSED / FAILED / INCONCLUSIVE and why."""
    r = host(r)
    status, reason = CheckStatus(int(r.status)), Reason(int(r.reason))
    checked, failed = int(r.checked), int(r.failed)
    if status == CheckStatus.FAIL:
        if bool(r.nonfinite) and int(r.nonfinite_index) >= 0 and math.isnan(float(r.nonfinite_offset)):
            return "FAILED: " + _nonfinite_text(r)
        return f"FAILED: {failed} of {checked} checks disagree with {_what(r)} beyond the error model"
    if reason == Reason.NONDETERMINISTIC:
        return (
            "INCONCLUSIVE: f is not deterministic (the same input gave different values); the gradient "
            f"was not judged. To resolve: {reason.remedy()}"
        )
    if status == CheckStatus.INCONCLUSIVE and not math.isfinite(float(r.value)):
        return "INCONCLUSIVE: f returned a non-finite value at the unperturbed point x"
    open_ = open_leaves(r)
    if status == CheckStatus.INCONCLUSIVE:
        agree = f"{checked} checks agree with {_what(r)}, none fails, but " if checked else ""
        return (
            f"INCONCLUSIVE: {agree}{len(open_)} of {len(r.leaf_names)} leaves not verified: "
            f"{_leaf_list(open_)}. To resolve: {_remedy(r, reason)}"
        )
    extra = ""
    if int(r.inconclusive):
        extra = f"; {int(r.inconclusive)} measurement(s) inconclusive ({_reason_counts(r)})"
    return f"PASSED: {checked} checks agree with {_what(r)} within the error model{extra}"


def _remedy(r, reason: Reason) -> str:
    """What would resolve it; below resolution because f rounds in a narrow dtype inside,
    a higher-precision x does not help: f itself must compute finer."""
    narrow = [n for n in r.notes if n.startswith("f computes in ")]
    if reason == Reason.UNRESOLVED and narrow:
        dtype = narrow[0].split()[3]
        return (
            f"f rounds in {dtype} inside, whatever the precision of x: check a version of f that "
            f"computes in float32 (without the {dtype} casts), or rescale the parameters or the loss"
        )
    return reason.remedy()


def open_leaves(r) -> list[tuple[str, Reason]]:
    """The leaves that were not verified (inconclusive), with their reasons."""
    lv = r.leaves
    return [
        (name, Reason(int(why)))
        for name, st, why in zip(r.leaf_names, lv.status, lv.reason, strict=True)
        if int(st) == CheckStatus.INCONCLUSIVE
    ]


def _leaf_list(leaves: list[tuple[str, Reason]], shown: int = 3) -> str:
    text = ", ".join(f"{name} ({why.label})" for name, why in leaves[:shown])
    return text + (f" and {len(leaves) - shown} more" if len(leaves) > shown else "")


def _reason_counts(r) -> str:
    """ "12 kink, 3 unresolved": the reasons of the inconclusive measurements."""
    codes = np.concatenate(
        [
            r.elements.reason[r.elements.status == CheckStatus.INCONCLUSIVE],
            r.directions.reason[r.directions.status == CheckStatus.INCONCLUSIVE],
        ]
    )
    values, counts = np.unique(codes, return_counts=True)
    return ", ".join(f"{c} {Reason(int(v)).label}" for v, c in zip(values, counts, strict=True))


def _leaf_verdict(status, reason) -> str:
    st = CheckStatus(int(status))
    if st == CheckStatus.PASS:
        return "ok"
    if st == CheckStatus.FAIL:
        return "FAIL"
    return f"inconclusive ({Reason(int(reason)).label})"


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


def _rank(status, reason):
    """Sort key of measurements, worst first: failures, non-finite, unresolved, kinks, passes."""
    inc = status == CheckStatus.INCONCLUSIVE
    return np.select(
        [
            status == CheckStatus.FAIL,
            inc & (reason == Reason.NONFINITE),
            inc & (reason == Reason.UNRESOLVED),
            inc & (reason == Reason.KINK),
            inc,
            status == CheckStatus.PASS,
        ],
        [0, 1, 2, 3, 4, 5],
        default=6,
    )


def element_rows(r, max_rows: int | None = None) -> list[int]:
    """Positions in ``r.elements`` of the checked elements, worst first (failures,
    non-finite, unresolved, kinks, then by difference/tolerance); ``r.elements.index``
    maps a position to its flat element."""
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
    order = np.lexsort((-ratio, _rank(status[idx], el.reason[idx])))
    out = idx[order]
    return out.tolist() if max_rows is None else out[:max_rows].tolist()


def kink_text(dp: float, dm: float, tol: float, sub: bool) -> str:
    """Why a measurement is a kink: the one-sided slopes D± differ, or (where they agree)
    f's slope varies inside the step (dense kinks, the segment test)."""
    if abs(dp - dm) <= tol:
        return f"not smooth within the step: D+ = {dp:.4g} ≈ D− = {dm:.4g}, but f's slope varies inside it"
    return f"kink: D+ = {dp:.4g}, D− = {dm:.4g}; analytic {'is' if sub else 'is NOT'} between them"


def _inconclusive_text(reason: Reason, tol: float, dp: float, dm: float, sub: bool, err: float) -> str:
    if reason == Reason.KINK:
        return kink_text(dp, dm, tol, sub)
    if reason == Reason.UNRESOLVED and err > tol > 0:
        return (
            f"unresolved: |diff| is {err / tol:.3g} × the tolerance {tol:.2g} but not confirmed (by another "
            "step, or beyond what chance allows among many measurements)"
        )
    if reason == Reason.UNRESOLVED:
        return f"unresolved: tolerance {tol:.2g} is not below half the values compared"
    if reason == Reason.NONDETERMINISTIC:
        return "not judged: f is not deterministic"
    return f"inconclusive: {reason.label}"


def _why(r, i) -> str:
    el = r.elements
    s, why = int(el.status[i]), Reason(int(el.reason[i]))
    err = float(el.abs_error[i])
    tol = float(el.tolerance[i])
    parts = (
        f"truncation {float(el.truncation[i]):.2g}, round-off {float(el.roundoff[i]):.2g}, "
        f"AD {float(el.ad_rounding[i]):.2g}"
    )
    if s == CheckStatus.FAIL:
        if not math.isfinite(float(el.analytic[i])):
            return "FAIL: the analytic value is not finite where f is"
        times = err / tol if tol > 0 else math.inf
        return f"FAIL: |diff| is {times:.3g} × the tolerance {tol:.2g} (margin {r.margin:g} × ({parts}))"
    if s == CheckStatus.PASS:
        return f"ok: |diff| <= tolerance {tol:.2g} ({parts})"
    if s == CheckStatus.INCONCLUSIVE and why == Reason.NONFINITE:
        if int(el.index[i]) == int(r.nonfinite_index):
            return "non-finite: " + _offset_text(float(r.nonfinite_offset))
        return "non-finite value at one of this element's offsets, at every step tried"
    if s == CheckStatus.INCONCLUSIVE:
        return _inconclusive_text(
            why, tol, float(el.slope_plus[i]), float(el.slope_minus[i]), bool(el.subgradient[i]), err
        )
    return CheckStatus(s).label


def _sign(v: float) -> str:
    return "?" if math.isnan(v) else "+" if v > 0 else "-" if v < 0 else "0"


def failing_parts(r, max_elements: int = 3) -> str:
    """Where a failed check failed: "['w'] ([2, 3], [0, 1]); ['b']" (leaves, worst elements)."""
    r = host(r)
    status = r.elements.status
    worst = [i for i in element_rows(r) if status[i] == CheckStatus.FAIL]
    by_leaf: dict[str, list[str]] = {}
    for i in worst:
        name = r.element_name(int(r.elements.index[i]))
        leaf = next((n for n in r.leaf_names if name.startswith(n)), name)
        by_leaf.setdefault(leaf, []).append(name[len(leaf) :] or name)
    for name, st in zip(r.leaf_names, r.leaves.status, strict=True):
        if int(st) == CheckStatus.FAIL:
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


def batch_summary(r) -> str:
    """One line per check of a batched result (from ``jax.vmap``): its index and verdict."""
    statuses = np.asarray(host(r, r.status))
    counts = {
        s: int(np.sum(statuses == s)) for s in (CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.INCONCLUSIVE)
    }
    tally = ", ".join(f"{n} {s.name}" for s, n in counts.items() if n)
    lines = [f"{r.caller}: a batch of {statuses.size} checks of shape {statuses.shape} ({tally})"]
    for index in np.ndindex(statuses.shape):
        one = r[index]
        lines.append(f"  [{', '.join(map(str, index))}] {verdict_line(one)}")
    lines.append("Pick one with result[i], or result.summary(index=i) for its table.")
    return "\n".join(lines)


def summary(r, max_rows: int = 10) -> str:
    """The table printed by ``str(GradCheck)``."""
    r = host(r)
    lines = []
    what = {"grad": "check_grad", "vjp": "check_vjp", "jvp": "check_jvp"}[r.kind]
    lines.append(f"fdjax.{what}: {verdict_line(r)}")
    lines.append(
        f"  mode={r.mode}  method={r.method}  order={r.order}  dtype={r.dtype}  margin={r.margin:g}  "
        f"evaluations={int(r.evaluations)}"
        + (
            f" ({int(r.escalation_evaluations)} to re-measure {int(r.escalated)} at other steps)"
            if int(r.escalated)
            else ""
        )
    )
    lines.append(
        f"  f(x) = {float(r.value):.6g}   noise of f = {float(r.noise):.2g}   "
        f"deterministic: {'yes' if bool(r.deterministic) else 'NO'}"
    )
    for note in r.notes:
        lines.append(f"  note: {note}")
    # Leaves.
    name_w = max([len("leaf")] + [len(n) for n in r.leaf_names] + [len("overall")])
    name_w = min(name_w, 40)
    head = (
        f"  {'leaf':<{name_w}} {'size':>8} {'checked':>8} {'incon.':>6} {'failed':>6} {'norm ratio':>10} "
        f"{'max rel':>10} {'digits':>6} {'sign':>6}  verdict"
    )
    lines.append("")
    lines.append(head)
    lv = r.leaves
    for j, (name, shape) in enumerate(zip(r.leaf_names, r.leaf_shapes, strict=False)):
        size = math.prod(shape)
        lines.append(
            f"  {name[:name_w]:<{name_w}} {size:>8d} {int(lv.checked[j]):>8d} {int(lv.inconclusive[j]):>6d} "
            f"{int(lv.failed[j]):>6d} {_g(lv.norm_ratio[j])} {_g(lv.max_rel_error[j])} "
            f"{_fixed(lv.digits[j])} {_fixed(lv.sign_agreement[j], 6, 3)}  "
            f"{_leaf_verdict(lv.status[j], lv.reason[j])}"
        )
    lines.append(
        f"  {'overall':<{name_w}} {r.size:>8d} {int(r.checked):>8d} {int(r.inconclusive):>6d} "
        f"{int(r.failed):>6d} {_g(r.norm_ratio)} {_g(r.max_rel_error)} "
        f"{_fixed(r.digits)} {_fixed(r.sign_agreement, 6, 3)}  "
        f"{_leaf_verdict(r.status, r.reason)}"
    )
    # Elements.
    el = r.elements
    rows = element_rows(r, max_rows)
    if rows:
        total = int(np.sum(el.status != CheckStatus.UNCHECKED))
        lines.append("")
        lines.append(f"  worst elements ({len(rows)} of {total} checked, worst first):")
        names = {i: r.element_name(int(el.index[i])) for i in rows}
        ew = min(max([len("element")] + [len(name) for name in names.values()]), 48)
        lines.append(
            f"  {'element':<{ew}} {'analytic':>11} {'numeric':>11} {'difference':>11} {'rel err':>9} "
            f"{'digits':>6} {'sign':>4}  why"
        )
        for i in rows:
            a, n = float(el.analytic[i]), float(el.numeric[i])
            rel = float(el.rel_error[i])
            sign = _sign(a) + "/" + _sign(n)
            lines.append(
                f"  {names[i][:ew]:<{ew}} {_g(a, 11, 4)} {_g(n, 11, 4)} {_g(a - n, 11)} "
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
        failed_at = {int(i) for i, st in zip(el.index, el.status, strict=True) if st == CheckStatus.FAIL}
        bad = [i for i in found if i in failed_at]
        lines.append("")
        if not found:
            lines.append("  locate: no failing direction, nothing to bisect")
        else:
            confirmed = ", ".join(r.element_name(i) for i in bad) or "none confirmed"
            lines.append(
                f"  locate: bisection ended at {len(found)} element(s); confirmed wrong: {confirmed}"
            )
    return "\n".join(lines)


def _direction_order(r):
    dr = r.directions
    st, err, tol = dr.status, dr.abs_error, dr.tolerance
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(np.where(tol > 0, err / tol, np.inf), nan=np.inf)
    return np.lexsort((-ratio, _rank(st, dr.reason))).tolist()


def _direction_line(r, d) -> str:
    dr = r.directions
    leaf = int(dr.leaf[d])
    lo, hi = int(dr.lo[d]), int(dr.hi[d])
    label = DirectionKind(int(dr.kind[d])).label + (f" {r.leaf_names[leaf]}" if leaf >= 0 else f" #{d}")
    st = int(dr.status[d])
    a, n = float(dr.analytic[d]), float(dr.numeric[d])
    tol = float(dr.tolerance[d])
    if st == CheckStatus.INCONCLUSIVE:
        verdict = _inconclusive_text(
            Reason(int(dr.reason[d])),
            tol,
            float(dr.slope_plus[d]),
            float(dr.slope_minus[d]),
            bool(dr.subgradient[d]),
            abs(a - n),
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
    "status",
    "reason",
    "passed",
    "checked",
    "failed",
    "inconclusive",
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
    "escalated",
    "escalation_evaluations",
)
_LABELS: dict[str, Any] = {"status": CheckStatus, "reason": Reason, "kind": DirectionKind}


def _columns(group, rows) -> dict:
    """The fields of a group at ``rows``; status and kind codes as their labels."""
    out = {}
    for f in dataclasses.fields(group):
        arr = getattr(group, f.name)[rows]
        if f.name in _LABELS:
            out[f.name] = [_LABELS[f.name](int(v)).label for v in arr]
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
    out["status"], out["reason"] = CheckStatus(int(r.status)).label, Reason(int(r.reason)).label
    out["notes"] = list(r.notes)
    out["located"] = [int(i) for i in r.located if i >= 0]
    lv = r.leaves
    out["leaves"] = [
        {"name": name, "shape": list(shape), "start": start}
        | {
            f.name: _LABELS[f.name](int(getattr(lv, f.name)[j])).label
            if f.name in _LABELS
            else getattr(lv, f.name)[j]
            for f in dataclasses.fields(lv)
        }
        for j, (name, shape, start) in enumerate(
            zip(r.leaf_names, r.leaf_shapes, r.leaf_starts, strict=False)
        )
    ]
    rows = element_rows(r, max_elements)
    flat = [int(r.elements.index[i]) for i in rows]
    out["elements"] = {"name": [r.element_name(i) for i in flat]}
    out["elements"].update(_columns(r.elements, np.asarray(rows, np.int64)))
    out["elements"]["index"] = flat
    out["directions"] = _columns(r.directions, slice(None))
    return jsonable(out)
