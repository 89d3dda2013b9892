"""Steps: validation of ``step=`` and the per-coordinate step actually taken."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._pytree import FlatArgs
from .stencils import Stencil


def eps_of(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


def check_step_static(step: Any, caller: str, allow_auto: bool = False) -> None:
    """Validate a Python-number step at definition time."""
    if step is None or (allow_auto and isinstance(step, str) and step == "auto"):
        return
    if isinstance(step, str):
        accepted = "a positive float, a pytree of them" + (', or "auto"' if allow_auto else "")
        raise ValueError(f"{caller}(step=...) must be {accepted}, got {step!r}")
    if isinstance(step, (int, float)) and not isinstance(step, bool):
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"{caller}(step=...) must be positive and finite, got {step!r}")
    elif isinstance(step, bool):
        raise TypeError(f"{caller}(step=...) must be a positive float, got {step!r}")


def check_step_values(step: Any, caller: str) -> None:
    """Validate a concrete step pytree (host side)."""
    for leaf in jax.tree_util.tree_leaves(step):
        if isinstance(leaf, jax.core.Tracer):
            continue
        a = np.asarray(leaf)
        if not np.all(np.isfinite(a)) or not np.all(a > 0):
            bad = a[~(np.isfinite(a) & (a > 0))].ravel()[:3]
            raise ValueError(f"{caller}(step=...) must be positive and finite, got values {bad.tolist()}")


def relative_step_vector(step: Any, fa: FlatArgs, stencil: Stencil, caller: str) -> jax.Array:
    """The relative step per coordinate of the flat vector (traceable).

    The default is ``stencil.default_step(eps)`` with the eps of each coordinate's own leaf
    dtype: in a {bfloat16, float32} tree the bfloat16 elements get cbrt(eps_bf16) (central).
    """
    x = fa.x
    if step is None:
        if fa.mixed:
            return fa.per_element([stencil.default_step(eps_of(dt)) for dt in fa.float_dtypes])
        return jnp.full(x.shape, stencil.default_step(eps_of(x.dtype)), x.dtype)
    if isinstance(step, (int, float)):
        return jnp.full(x.shape, step, x.dtype)
    # A pytree matching the differentiated argument(s), or a prefix of it (one value per leaf).
    diff = tuple(fa.args[i] for i in fa.argnums)
    if len(fa.argnums) == 1 and fa._single:
        step = (step,)
    try:
        full = jax.tree_util.tree_map(
            lambda s, leaf: jnp.broadcast_to(jnp.asarray(s, x.dtype), jnp.shape(leaf)), step, diff
        )
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{caller}(step=...) must be a float or a pytree matching the differentiated "
            f"argument(s) (or a prefix of it), with broadcastable leaves: {e}"
        ) from None
    leaves = jax.tree_util.tree_leaves(full)
    floats = [leaf for f, leaf in zip(fa.is_float, leaves) if f]
    return jnp.concatenate([jnp.ravel(leaf) for leaf in floats]).astype(x.dtype)


def taken_step(x: jax.Array, rel: jax.Array, fa: FlatArgs | None = None) -> jax.Array:
    """h_i = fl(x_i + h_i) − x_i with h_i = rel_i·max(|x_i|, 1): the step actually representable.

    fl rounds to x's dtype and, with ``fa``, to the dtype of coordinate i's own leaf
    (``FlatArgs.quantize``): the step f sees when a bfloat16 leaf sits in a float32 x.
    """
    h = rel * jnp.maximum(jnp.abs(x), jnp.ones_like(x))
    xp = x + h
    return (xp if fa is None else fa.quantize(xp)) - x
