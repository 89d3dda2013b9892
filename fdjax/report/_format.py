"""Number formatting shared by the text, Markdown and HTML renderers."""

from __future__ import annotations

import math
from typing import Any


def num(v: Any, digits: int = 4) -> str:
    """Compact general format; '—' for missing.

    Examples:
        >>> num(0.000123456), num(None), num(12345.678)
        ('0.0001235', '—', '1.235e+04')
    """
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    f = float(v)
    if math.isnan(f):
        return "nan"
    return f"{f:.{digits}g}"


def sci(v: Any, digits: int = 2) -> str:
    """Scientific format: ``1.23e-08``; '—' for missing."""
    if v is None:
        return "—"
    f = float(v)
    if f == 0:
        return "0"
    return f"{f:.{digits}e}"


def pct(v: Any) -> str:
    """A fraction as a percentage: ``99.5%``."""
    if v is None:
        return "—"
    return f"{100 * float(v):.1f}%".replace(".0%", "%")


def shape(s: Any) -> str:
    """``(3, 4)``-style shape."""
    if s is None:
        return "—"
    s = list(s)
    return "(" + ", ".join(str(int(d)) for d in s) + ("," if len(s) == 1 else "") + ")"


def duration(seconds: Any) -> str:
    """``1.2 s`` / ``250 ms``."""
    if seconds is None:
        return "—"
    s = float(seconds)
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"


#: Headers of ``leaf_figures`` (the per-leaf columns every renderer shows).
LEAF_COLUMNS = ("shape", "checked", "inconclusive", "max rel error", "norm ratio", "digits", "sign agreement")


def leaf_figures(row: dict) -> list[str]:
    """The per-leaf figures of one ``_views.leaf_rows`` row, formatted as ``LEAF_COLUMNS``."""
    return [
        shape(row["shape"]),
        num(row["checked"]),
        num(row["inconclusive"]),
        sci(row["max_rel_error"]),
        sci(row["norm_ratio"]),
        num(row["digits"], 3),
        pct(row["sign_agreement"]),
    ]
