"""Host-side checks of public arguments, each written once.

Every check raises with the call, the argument, the bad value and what is accepted:
``ValueError("fdjax.grad(chunk_size=...) must be a positive int or None, got 0")``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def function(fun: Any, caller: str) -> None:
    """``fun`` must be callable."""
    if not callable(fun):
        raise TypeError(f"{caller}(fun=...) must be callable, got {type(fun).__name__}")


def int_at_least(value: Any, name: str, caller: str, minimum: int = 1) -> int:
    """An int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{caller}({name}=...) must be an int >= {minimum}, got {value!r}")
    return int(value)


def optional_positive_int(value: Any, name: str, caller: str) -> int | None:
    """None, or an int (not a bool) >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{caller}({name}=...) must be a positive int or None, got {value!r}")
    return int(value)


def positive_finite(value: Any, name: str, caller: str) -> float:
    """A real number (not a bool) > 0 and finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{caller}({name}=...) must be a positive finite number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{caller}({name}=...) must be a positive finite number, got {value!r}")
    return float(value)
