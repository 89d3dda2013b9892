"""The error types of fdjax and the host-side checks that raise them.

``NonFiniteError`` is raised when f is NaN/inf where a derivative needs it; the checks run
after a jitted call on concrete values and do nothing when the caller is tracing (inside a
user's jit nothing can be raised: the NaN shows up in the result instead).
"""

from __future__ import annotations

import numpy as np

from ._pytree import FlatArgs, element_name, is_traced


class NonFiniteError(FloatingPointError, ValueError):
    """f returned NaN/inf at the point or at a perturbed point (named in the message)."""


def check_x_finite(fa: FlatArgs, caller: str) -> None:
    floats = fa.float_leaves
    if is_traced(floats):
        return
    # leaf by leaf on the host: no eager ravel (a few dispatches) on every call
    arrays = [np.ravel(np.asarray(leaf)) for leaf in floats]
    counts = [int(np.count_nonzero(~np.isfinite(a))) for a in arrays]
    if not any(counts):
        return
    try:
        dtype = np.result_type(*fa.float_dtypes)  # the dtype of the ravelled x
    except TypeError:
        dtype = None
    start = 0
    for a, c in zip(arrays, counts):
        if c:
            j = int(np.flatnonzero(~np.isfinite(a))[0])
            value = a[j] if dtype is None else a[j].astype(dtype)
            raise ValueError(
                f"{caller}: the differentiated argument contains non-finite values; first at "
                f"{element_name(fa, start + j)} = {value!r} ({sum(counts)} non-finite element(s))"
            )
        start += a.size


def raise_nonfinite(fa: FlatArgs, caller: str, f0_finite, row_finite, offsets, h) -> None:
    """Raise NonFiniteError naming the first bad parameter and offset (concrete values only)."""
    if is_traced(f0_finite, row_finite):
        return
    if not bool(f0_finite):
        raise NonFiniteError(f"{caller}: the function returned a non-finite value at the unperturbed point")
    rf = np.asarray(row_finite)
    if rf.all():
        return
    k, i = np.argwhere(~rf)[0]
    hs = np.asarray(h)
    raise NonFiniteError(
        f"{caller}: the function returned a non-finite value at a perturbed point: parameter "
        f"{element_name(fa, int(i))} with offset {offsets[k]:+g}·h (h = {hs[i]:.3g}); "
        f"{int((~rf).sum())} of {rf.size} perturbed evaluations were non-finite. Use a smaller "
        "step or a one-sided method near a domain boundary."
    )
