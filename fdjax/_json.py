"""The one JSON encoding of fdjax's documents.

Every ``to_dict()`` and report is plain JSON: arrays become lists, NumPy scalars Python
numbers, and a value that is not finite (NaN, ±inf) becomes ``null`` — the status fields
next to it say why (``"nonfinite"``, a kink, nothing measured). Every document carries a
``"schema"`` string, ``"fdjax.<kind>/<version>"``, bumped when a field changes meaning.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Schema of each document kind (the report's own is ``fdjax.report.SCHEMA``; the
#: calculator's, which must not import NumPy, are in ``fdjax._calculator``).
CHECK_SCHEMA = "fdjax.check/3"
SWEEP_SCHEMA = "fdjax.sweep/2"
LANDSCAPE_SCHEMA = "fdjax.landscape/1"


def number(value: Any) -> float | None:
    """A float, or None where it is not finite."""
    f = float(value)
    return f if math.isfinite(f) else None


def jsonable(obj: Any) -> Any:
    """Plain JSON types: arrays to lists, NumPy scalars to Python, NaN/inf to None.

    Examples:
        >>> jsonable({"a": np.array([1.0, np.nan]), "b": np.int32(3), "c": float("inf")})
        {'a': [1.0, None], 'b': 3, 'c': None}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        return jsonable(arr.tolist()) if arr.ndim else jsonable(arr.item())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return number(obj)
    return obj
