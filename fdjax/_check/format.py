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


def host(r):
    """``r`` with NumPy arrays: formatting runs outside jit, and says so inside it."""
    if traced(r):
        raise TypeError(
            f"{r.caller}: the GradCheck holds traced values (inside jax.jit); return it "
            "from the jitted function and format it outside"
        )
    return jax.device_get(r)


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
    if not bool(_h(r, "deterministic")):
        return (
            f"FAILED: f is not deterministic: f(x) evaluated repeatedly differs by "
            f"{float(_h(r, 'f0_spread')):.3g} (rounding allows ~{_det_allow(r):.3g}). Dropout or an RNG "
            "left on? The gradient was not judged."
        )
    if bool(_h(r, "nonfinite")):
        return "FAILED: " + _nonfinite_text(r)
    failed = int(_h(r, "failed"))
    checked = int(_h(r, "checked"))
    kinks = int(_h(r, "kinks"))
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
    ck, kk = _h(r, "leaf_checked"), _h(r, "leaf_kinks")
    blind = [name for name, c, k in zip(r.leaf_names, ck, kk, strict=True) if kinks_only(c, k)]
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
    return 16 * eps * abs(float(_h(r, "value"))) + 4 * float(_h(r, "noise"))


def _nonfinite_text(r) -> str:
    idx = int(_h(r, "nonfinite_index"))
    d = int(_h(r, "nonfinite_direction"))
    off = float(_h(r, "nonfinite_offset"))
    if not math.isfinite(float(_h(r, "value"))) or (idx < 0 and d < 0 and off == 0):
        return "f returned a non-finite value at the unperturbed point x"
    if idx >= 0:
        name = r.element_name(idx)
        if math.isnan(off):
            return f"the analytic derivative is non-finite at {name}"
        return f"f returned NaN/inf at a perturbed point: element {name}, {_offset_text(off)}"
    if d >= 0:
        kinds = _h(r, "dir_kind")
        kind = DirectionKind(int(kinds[d])).label
        return f"f returned NaN/inf along direction {d} ({kind}), {_offset_text(off)}"
    return "a non-finite value was met"


def element_rows(r, max_rows: int | None = None) -> list[int]:
    """Flat indices of the checked elements, worst first (failures, non-finite, kinks, then by
    difference/tolerance)."""
    status = _h(r, "status")
    idx = np.flatnonzero(status != CheckStatus.UNCHECKED)
    if idx.size == 0:
        return []
    err = _h(r, "abs_error")[idx]
    tol = _h(r, "tolerance")[idx]
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
    s = int(_h(r, "status")[i])
    a = float(_h(r, "analytic")[i])
    err = float(_h(r, "abs_error")[i])
    tol = float(_h(r, "tolerance")[i])
    parts = (
        f"truncation {float(_h(r, 'truncation')[i]):.2g}, round-off {float(_h(r, 'roundoff')[i]):.2g}, "
        f"AD {float(_h(r, 'ad_rounding')[i]):.2g}"
    )
    if s == CheckStatus.FAIL:
        times = err / tol if tol > 0 else math.inf
        return f"FAIL: |diff| is {times:.3g} × the tolerance {tol:.2g} (margin {r.margin:g} × ({parts}))"
    if s == CheckStatus.PASS:
        return f"ok: |diff| <= tolerance {tol:.2g} ({parts})"
    if s == CheckStatus.KINK:
        dp, dm = float(_h(r, "slope_plus")[i]), float(_h(r, "slope_minus")[i])
        sub = "is" if bool(_h(r, "subgradient")[i]) else "is NOT"
        return f"kink (left out): D+ = {dp:.4g}, D- = {dm:.4g}; analytic {a:.4g} {sub} between them"
    if s == CheckStatus.NONFINITE:
        if i == int(_h(r, "nonfinite_index")):
            return "non-finite: " + _offset_text(float(_h(r, "nonfinite_offset")))
        return "non-finite value at one of this element's offsets or its analytic value"
    return CheckStatus(s).label


def _sign(v: float) -> str:
    return "?" if math.isnan(v) else "+" if v > 0 else "-" if v < 0 else "0"


def failing_parts(r, max_elements: int = 3) -> str:
    """Where a failed check failed: "['w'] ([2, 3], [0, 1]); ['b']" (leaves, worst elements)."""
    status = _h(r, "status")
    worst = [i for i in element_rows(r) if status[i] in (CheckStatus.FAIL, CheckStatus.NONFINITE)]
    by_leaf: dict[str, list[str]] = {}
    for i in worst:
        name = r.element_name(i)
        leaf = next((n for n in r.leaf_names if name.startswith(n)), name)
        by_leaf.setdefault(leaf, []).append(name[len(leaf) :] or name)
    ps = _h(r, "leaf_passed")
    for name, ok in zip(r.leaf_names, ps, strict=True):
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
    lines = []
    what = {"grad": "check_grad", "vjp": "check_vjp", "jvp": "check_jvp"}[r.kind]
    lines.append(f"fdjax.{what}: {verdict_line(r)}")
    lines.append(
        f"  mode={r.mode}  method={r.method}  order={r.order}  dtype={r.dtype}  margin={r.margin:g}  "
        f"evaluations={int(_h(r, 'evaluations'))}"
    )
    lines.append(
        f"  f(x) = {float(_h(r, 'value')):.6g}   noise of f = {float(_h(r, 'noise')):.2g}   "
        f"deterministic: {'yes' if bool(_h(r, 'deterministic')) else 'NO'}"
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
    nr, mr, dg, sg = (
        _h(r, f) for f in ("leaf_norm_ratio", "leaf_max_rel_error", "leaf_digits", "leaf_sign_agreement")
    )
    ps, ck, fl, kk = (_h(r, f) for f in ("leaf_passed", "leaf_checked", "leaf_failed", "leaf_kinks"))
    for j, (name, shape) in enumerate(zip(r.leaf_names, r.leaf_shapes, strict=False)):
        size = math.prod(shape)
        lines.append(
            f"  {name[:name_w]:<{name_w}} {size:>8d} {int(ck[j]):>8d} {int(kk[j]):>6d} {int(fl[j]):>6d} "
            f"{_g(nr[j])} {_g(mr[j])} {_fixed(dg[j])} {_fixed(sg[j], 6, 3)}  "
            f"{_leaf_verdict(ps[j], ck[j], kk[j])}"
        )
    lines.append(
        f"  {'overall':<{name_w}} {r.size:>8d} {int(_h(r, 'checked')):>8d} {int(_h(r, 'kinks')):>6d} "
        f"{int(_h(r, 'failed')):>6d} {_g(_h(r, 'norm_ratio'))} {_g(_h(r, 'max_rel_error'))} "
        f"{_fixed(_h(r, 'digits'))} {_fixed(_h(r, 'sign_agreement'), 6, 3)}  "
        f"{'ok' if bool(_h(r, 'passed')) else 'FAIL'}"
    )
    # Elements.
    rows = element_rows(r, max_rows)
    if rows:
        total = int(np.sum(_h(r, "status") != CheckStatus.UNCHECKED))
        lines.append("")
        lines.append(f"  worst elements ({len(rows)} of {total} checked, worst first):")
        ew = min(max([len("element")] + [len(r.element_name(i)) for i in rows]), 48)
        lines.append(
            f"  {'element':<{ew}} {'analytic':>11} {'numeric':>11} {'difference':>11} {'rel err':>9} "
            f"{'digits':>6} {'sign':>4}  why"
        )
        an, nu = _h(r, "analytic"), _h(r, "numeric")
        for i in rows:
            a, n = float(an[i]), float(nu[i])
            rel = float(_h(r, "rel_error")[i])
            sign = _sign(a) + "/" + _sign(n)
            lines.append(
                f"  {r.element_name(i)[:ew]:<{ew}} {_g(a, 11, 4)} {_g(n, 11, 4)} {_g(a - n, 11)} "
                f"{_g(rel, 9, 2)} {_fixed(_digits_of(rel, r.dtype))} {sign:>4}  {_why(r, i)}"
            )
    # Directions.
    dstatus = _h(r, "dir_status")
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
    located = _h(r, "located")
    if r.mode == "locate":
        found = sorted({int(i) for i in located if i >= 0})
        status = _h(r, "status")
        bad = [i for i in found if status[i] == CheckStatus.FAIL]
        lines.append("")
        if not found:
            lines.append("  locate: no failing direction, nothing to bisect")
        else:
            names = ", ".join(r.element_name(i) for i in bad) or "none confirmed"
            lines.append(f"  locate: bisection ended at {len(found)} element(s); confirmed wrong: {names}")
    return "\n".join(lines)


def _direction_order(r):
    st = _h(r, "dir_status")
    err, tol = _h(r, "dir_abs_error"), _h(r, "dir_tolerance")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(np.where(tol > 0, err / tol, np.inf), nan=np.inf)
    rank = np.select(
        [st == CheckStatus.FAIL, st == CheckStatus.NONFINITE, st == CheckStatus.KINK, st == CheckStatus.PASS],
        [0, 1, 2, 3],
        default=4,
    )
    return np.lexsort((-ratio, rank)).tolist()


def _direction_line(r, d) -> str:
    kind = int(_h(r, "dir_kind")[d])
    leaf = int(_h(r, "dir_leaf")[d])
    lo, hi = int(_h(r, "dir_lo")[d]), int(_h(r, "dir_hi")[d])
    label = DirectionKind(kind).label + (f" {r.leaf_names[leaf]}" if leaf >= 0 else f" #{d}")
    st = int(_h(r, "dir_status")[d])
    a, n = float(_h(r, "dir_analytic")[d]), float(_h(r, "dir_numeric")[d])
    tol = float(_h(r, "dir_tolerance")[d])
    if st == CheckStatus.KINK:
        sub = "valid" if bool(_h(r, "dir_subgradient")[d]) else "NOT a valid"
        verdict = (
            f"kink (left out): D+ = {float(_h(r, 'dir_slope_plus')[d]):.4g}, "
            f"D- = {float(_h(r, 'dir_slope_minus')[d]):.4g}, {sub} subgradient"
        )
    elif st == CheckStatus.FAIL:
        verdict = f"FAIL: |diff| is {abs(a - n) / tol if tol > 0 else math.inf:.3g} × tolerance"
    else:
        verdict = CheckStatus(st).label if st != CheckStatus.PASS else "ok"
    return (
        f"{label[:28]:<28} {f'[{lo}, {hi})':>17} {a:>11.4e} {n:>11.4e} {a - n:>11.3e} {tol:>10.2e}  {verdict}"
    )


def _clean(v):
    if isinstance(v, np.ndarray):
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return v if math.isfinite(v) else None if math.isnan(v) else ("inf" if v > 0 else "-inf")


def to_dict(r, max_elements: int | None = None) -> dict:
    """JSON-ready dict of a ``GradCheck`` (NaN becomes None, ±inf the strings "inf"/"-inf")."""
    out = {
        "caller": r.caller,
        "kind": r.kind,
        "mode": r.mode,
        "method": r.method,
        "order": r.order,
        "dtype": r.dtype,
        "margin": r.margin,
        "verdict": verdict_line(r),
    }
    for f in (
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
    ):
        out[f] = _clean(_h(r, f))
    out["located"] = [int(i) for i in _h(r, "located") if i >= 0]
    leaves = []
    for j, (name, shape, start) in enumerate(zip(r.leaf_names, r.leaf_shapes, r.leaf_starts, strict=False)):
        rec = {"name": name, "shape": list(shape), "start": start}
        for f in LEAF_FIELDS:
            rec[f[len("leaf_") :]] = _clean(_h(r, f)[j])
        leaves.append(rec)
    out["leaves"] = leaves
    rows = element_rows(r, max_elements)
    els = {"index": rows, "name": [r.element_name(i) for i in rows]}
    for f in ELEMENT_FIELDS:
        arr = _h(r, f)
        if f == "status":
            els[f] = [CheckStatus(int(arr[i])).label for i in rows]
        else:
            els[f] = [_clean(arr[i]) for i in rows]
    out["elements"] = els
    dirs = {}
    for f in DIRECTION_FIELDS:
        arr = _h(r, f)
        key = f[len("dir_") :]
        if f == "dir_status":
            dirs[key] = [CheckStatus(int(v)).label for v in arr]
        elif f == "dir_kind":
            dirs[key] = [DirectionKind(int(v)).label for v in arr]
        else:
            dirs[key] = [_clean(v) for v in arr]
    out["directions"] = dirs
    return out
