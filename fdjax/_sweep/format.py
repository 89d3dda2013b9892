"""Text and JSON views of a ``StepSweep`` (host side, outside jit)."""

from __future__ import annotations

import math

import jax
import numpy as np

from .._json import SWEEP_SCHEMA, number
from .._fd import Status


def flag_names(code: int) -> list[str]:
    """``Status`` bits of ``code`` as names, in a fixed order."""
    return [s.name for s in Status if s.name is not None and int(code) & int(s)]


def _num(v, digits: int = 3) -> str:
    v = float(v)
    if math.isnan(v):
        return "—"
    return f"{v:.{digits}e}" if v != 0 else "0"


def _val(v) -> str:
    v = float(v)
    return "—" if math.isnan(v) else f"{v:#.15g}"


def summary(sw, max_rows: int = 20) -> str:
    """Per-parameter table: name, chosen step, estimate, error estimate, order, status."""
    names = sw.names
    m = len(names)
    cols = ["parameter", "h*", "estimate", "error est.", "order", "status"]
    has_ref = sw.true_error is not None
    if has_ref:
        cols.insert(4, "true error")
    rows = []
    for i in range(min(m, max_rows)):
        r = [names[i], _num(sw.step[i], 2), _val(sw.estimate[i]), _num(sw.error_estimate[i], 2)]
        if has_ref:
            r.append(_num(sw.true_error[i], 2))
        r += [
            _num(sw.order[i], 2) if not math.isnan(float(sw.order[i])) else "—",
            "|".join(flag_names(sw.status[i])),
        ]
        rows.append(r)
    counts: dict[str, int] = {}
    for code in np.asarray(sw.status):
        for name in flag_names(code):
            counts[name] = counts.get(name, 0) + 1
    head = (
        f"Step sweep ({sw.method}, {len(sw.relative_steps)} steps from {sw.relative_steps[0]:.3g} relative, "
        f"{sw.evaluations} evaluations): {m} {'parameter' if sw.kind == 'coordinates' else 'direction'}(s); "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + ("" if sw.precision == "native" else f"; ran in {sw.precision}")
    )
    out = [head, _table(cols, rows)]
    if m > max_rows:
        out.append(f"... {m - max_rows} more (StepSweep.to_dict() has every row)")
    return "\n".join(out)


def ladder_table(sw, i: int = 0) -> str:
    """The ladder of row i: h, D(h), Δ, observed order, round-off bound, (true error)."""
    m = len(sw)
    if not -m <= i < m:
        raise IndexError(f"StepSweep.table(i=...) must be in [{-m}, {m}), got {i}")
    cols = ["k", "h", "D(h)", "Δ = D(h) − D(h/2)", "order", "round-off ρ"]
    has_ref = sw.true_errors is not None
    if has_ref:
        cols.append("|D(h) − reference|")
    rows = []
    chosen = float(sw.step[i])
    for k in range(np.shape(sw.steps)[1]):
        h = float(sw.steps[i][k])
        r = [
            str(k),
            _num(h, 2) + (" *" if h == chosen else ""),
            _val(sw.estimates[i][k]),
            _num(sw.differences[i][k], 2),
            _num(sw.orders[i][k], 2) if not math.isnan(float(sw.orders[i][k])) else "—",
            _num(sw.roundoff[i][k], 2),
        ]
        if has_ref:
            r.append(_num(sw.true_errors[i][k], 2))
        rows.append(r)
    head = (
        f"{sw.names[i]}: estimate {_val(sw.estimate[i])} ± {_num(sw.error_estimate[i], 2)} at h* = "
        f"{_num(chosen, 2)} (Richardson level {int(sw.level[i])}); {'|'.join(flag_names(sw.status[i]))}"
    )
    if has_ref:
        head += f"; reference {_val(sw.reference[i])}"
    return head + "\n" + _table(cols, rows)


def _table(cols, rows) -> str:
    widths = [max(len(c), *(len(r[j]) for r in rows)) if rows else len(c) for j, c in enumerate(cols)]
    line = lambda r: "  ".join(
        v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(r, widths, strict=True))
    )  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in rows])


def to_dict(sw) -> dict:
    """JSON-ready: top-level facts and one dict per parameter (per-step lists included)."""
    names = sw.names
    sw = jax.device_get(sw)  # index NumPy arrays below, not device arrays (one dispatch each)
    params = []
    for i in range(len(sw)):
        p = {
            "name": names[i],
            "index": int(sw.index[i]),
            "step": number(sw.step[i]),
            "estimate": number(sw.estimate[i]),
            "error": number(sw.error_estimate[i]),
            "order": number(sw.order[i]),
            "level": int(sw.level[i]),
            "status": flag_names(sw.status[i]),
            "noise": number(sw.noise[i]),
            "slopes": [number(v) for v in np.asarray(sw.slopes[i])],
            "steps": [number(v) for v in np.asarray(sw.steps[i])],
            "estimates": [number(v) for v in np.asarray(sw.estimates[i])],
            "differences": [number(v) for v in np.asarray(sw.differences[i])],
            "orders": [number(v) for v in np.asarray(sw.orders[i])],
            "roundoff": [number(v) for v in np.asarray(sw.roundoff[i])],
        }
        if sw.reference is not None:
            p["reference"] = number(sw.reference[i])
            p["true_error_at_step"] = number(sw.true_error[i])
            p["true_error"] = [number(v) for v in np.asarray(sw.true_errors[i])]
        params.append(p)
    return {
        "schema": SWEEP_SCHEMA,
        "method": sw.method,
        "kind": sw.kind,
        "dtype": str(np.asarray(sw.estimate).dtype),
        "precision": sw.precision,
        "relative_steps": list(sw.relative_steps),
        "num_steps": len(sw.relative_steps),
        "evaluations": int(sw.evaluations),
        "parameters": params,
    }
