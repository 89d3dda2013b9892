"""Per-coordinate FD building blocks, traced: f at x ± s·h·e_i for every coordinate, and the
weighted sum that turns those values into derivatives. Used by the transforms, the step
ladder and the gradient check.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .. import _engine
from .._engine import Options
from .stencils import Stencil


def basis_values(flat_fn, x, h, stencil: Stencil, opts: Options, layout: _engine.Layout | None = None):
    """f at x + s_k·h_i·e_i for every offset k and coordinate i: values [K, N, *out].

    For the complex step the rows are x + i·h_i·e_i. With ``layout`` (x's leaves and f of
    them) the engine may evaluate the rows leaf by leaf (``Options.strategy``).
    """
    offsets = jnp.asarray(stencil.offsets, x.dtype)
    coeff = offsets[:, None] * h[None, :]
    if stencil.complex_step:
        coeff = jax.lax.complex(jnp.zeros_like(coeff), coeff)
    return _engine.evaluate_coordinates(flat_fn, x, coeff, opts, layout)


def combine(values, f0, h, stencil: Stencil):
    """Σ_k w_k f_k (+ w_0 f0), divided by h^d. values [K, M, *out]; h [M] -> [M, *out]."""

    def one(v, f):
        if stencil.complex_step:
            return _divide(jnp.imag(v[0]), h, 1)
        w = jnp.asarray(stencil.weights, v.dtype).reshape((-1,) + (1,) * (v.ndim - 1))
        s = jnp.sum(w * v, axis=0)
        if stencil.uses_center:
            s = s + stencil.center_weight * f
        return _divide(s, h, stencil.derivative)

    return jax.tree_util.tree_map(one, values, f0)


def _divide(s, h, power):
    """s / h^power in the wider of the two dtypes (a float32 f of float64 x: float64, as
    ``jax.grad`` returns x's dtype; explicit, so strict dtype promotion accepts it)."""
    dt = s.dtype if jnp.finfo(s.dtype).bits >= jnp.finfo(h.dtype).bits else h.dtype
    return s.astype(dt) / _bcast(h.astype(dt), s) ** power


def _bcast(h, like):
    return h.reshape(h.shape + (1,) * (like.ndim - h.ndim))


def all_finite(tree):
    """bool scalar: every element of every leaf of ``tree`` is finite."""
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(tree)]))


def _row_finite(values):
    """bool [K, M]: every output element of the row is finite."""
    flags = [
        jnp.all(jnp.isfinite(v).reshape(v.shape[:2] + (-1,)), axis=-1)
        for v in jax.tree_util.tree_leaves(values)
    ]
    return functools.reduce(jnp.logical_and, flags)
