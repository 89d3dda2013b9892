"""The one engine: f at every row of a plan, in one jit-compiled, vmapped, chunked batch.

A *plan* is a perturbation rule plus a table of rows. Row r asks for
``fn(perturb(x, row_r))``. The rows are small per-row records (an integer index, a
coefficient, ...), never [rows, N] arrays: each perturbed point is built inside the
batch from its row, evaluated with ``jax.vmap`` and ``jax.lax.map(batch_size=B)`` so
that only B perturbed copies of x exist at a time. B comes from ``chunk_size`` or from a
memory budget. The engine knows nothing about derivatives, AD or verdicts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Basis",
    "Directions",
    "RandomDirections",
    "evaluate",
    "choose_chunk_size",
    "DEFAULT_MEMORY_BUDGET",
    "Options",
]

#: Default bytes for the perturbed copies and activations of one chunk.
DEFAULT_MEMORY_BUDGET = 256 * 2**20


@dataclasses.dataclass(frozen=True)
class Options:
    """Static engine options (hashable: part of the jit cache key).

    Attributes:
        chunk_size: rows per vmapped chunk; None chooses it from ``memory_budget``.
        memory_budget: bytes one chunk may use; None means ``DEFAULT_MEMORY_BUDGET``.
    """

    chunk_size: int | None = None
    memory_budget: int | None = None

    def validate(self, caller: str) -> "Options":
        for name in ("chunk_size", "memory_budget"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise ValueError(f"{caller}({name}=...) must be a positive int or None, got {v!r}")
        return self


def _register(cls):
    """Register a dataclass as a pytree: fields in ``_data`` are children, the rest static."""
    data = cls._data
    meta = tuple(f.name for f in dataclasses.fields(cls) if f.name not in data)
    return jax.tree_util.register_dataclass(cls, data_fields=list(data), meta_fields=list(meta))


@_register
@dataclasses.dataclass(frozen=True)
class Basis:
    """Perturb one coordinate: ``x.at[row["index"]].add(row["coeff"])``.

    Rows: ``index`` (int32) and ``coeff`` (the signed step s_k·h_i, real or imaginary).
    """

    _data = ()

    def __call__(self, x: jax.Array, row: dict) -> jax.Array:
        coeff = row["coeff"]
        if jnp.iscomplexobj(coeff) and not jnp.iscomplexobj(x):
            x = x.astype(coeff.dtype)
        return x.at[row["index"]].add(coeff.astype(x.dtype))


@_register
@dataclasses.dataclass(frozen=True)
class Directions:
    """Perturb along explicit direction vectors: ``x + row["coeff"] * vectors[row["index"]]``.

    ``vectors`` is a [D, N] array given by the caller (D directions, not one per row).
    """

    vectors: jax.Array
    _data = ("vectors",)

    def __call__(self, x: jax.Array, row: dict) -> jax.Array:
        v = self.vectors[row["index"]]
        coeff = row["coeff"]
        if jnp.iscomplexobj(coeff) and not jnp.iscomplexobj(x):
            x = x.astype(coeff.dtype)
        return x + coeff.astype(x.dtype) * v.astype(x.dtype)


def random_direction(key: jax.Array, index, size: int, dtype, distribution: str) -> jax.Array:
    """Direction number ``index`` of the stream ``key`` (identical inside and outside the batch)."""
    k = jax.random.fold_in(key, index)
    if distribution == "rademacher":
        return jax.random.rademacher(k, (size,), dtype=dtype)
    return jax.random.normal(k, (size,), dtype=dtype)


@_register
@dataclasses.dataclass(frozen=True)
class RandomDirections:
    """Directions generated inside the batch from a key: no [D, N] array is ever stored.

    Direction ``row["index"]`` is ``random_direction(key, index, N)``; when the row has
    ``lo``/``hi`` it is restricted to coordinates lo <= i < hi (group testing / bisection).
    """

    key: jax.Array
    distribution: str = "rademacher"
    _data = ("key",)

    def direction(self, x: jax.Array, row: dict) -> jax.Array:
        v = random_direction(self.key, row["index"], x.shape[0], x.dtype, self.distribution)
        if "lo" in row:
            i = jnp.arange(x.shape[0])
            v = jnp.where((i >= row["lo"]) & (i < row["hi"]), v, jnp.zeros_like(v))
        return v

    def __call__(self, x: jax.Array, row: dict) -> jax.Array:
        return x + row["coeff"].astype(x.dtype) * self.direction(x, row)


def _jaxpr_bytes(jaxpr) -> int:
    """Sum of the sizes of all intermediate values of a jaxpr (sub-jaxprs included)."""
    total = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            aval = v.aval
            if hasattr(aval, "shape") and hasattr(aval, "dtype"):
                total += math.prod(aval.shape) * np.dtype(aval.dtype).itemsize
        for p in eqn.params.values():
            sub = getattr(p, "jaxpr", None)
            if sub is not None and hasattr(sub, "eqns"):
                total += _jaxpr_bytes(sub)
            elif hasattr(p, "eqns"):
                total += _jaxpr_bytes(p)
    return total


def row_bytes(one: Callable, row0: Any, x: jax.Array) -> int:
    """Estimated bytes one row costs inside a vmapped chunk.

    The perturbed copy of x (and its cotangent-free temporaries: twice its size) plus the
    sum of all intermediate values of one evaluation, from the jaxpr. The sum ignores buffer
    reuse, so it over-estimates activations: a safe side for a memory budget.
    """
    jaxpr = jax.make_jaxpr(one)(row0)
    return 2 * x.size * x.dtype.itemsize + _jaxpr_bytes(jaxpr.jaxpr)


def choose_chunk_size(num_rows: int, bytes_per_row: int, memory_budget: int) -> int:
    """Largest chunk within the budget, at least 1, at most the number of rows."""
    return int(max(1, min(num_rows, memory_budget // max(bytes_per_row, 1))))


def evaluate(
    fn: Callable[[jax.Array], Any],
    x: jax.Array,
    perturb: Callable[[jax.Array, dict], jax.Array],
    rows: dict,
    opts: Options = Options(),
) -> Any:
    """``fn(perturb(x, row))`` for every row, as a pytree with a leading axis of rows.

    Runs under the caller's trace (call it inside ``jax.jit``). Every row is evaluated in
    a vmapped chunk of exactly B rows (the rows are padded by repeating the last one), so
    a row's value does not depend on where the chunk boundaries fall.

    Args:
        fn: function of a flat vector.
        x: the flat point, shape [N].
        perturb: ``perturb(x, row) -> x'``, e.g. ``Basis()``.
        rows: dict of arrays with a common leading dimension R.
        opts: chunk size / memory budget.
    """
    chunk_size, memory_budget = opts.chunk_size, opts.memory_budget
    num_rows = int(jax.tree_util.tree_leaves(rows)[0].shape[0])

    def one(row):
        return fn(perturb(x, row))

    if chunk_size is None:
        row0 = jax.tree_util.tree_map(lambda a: a[0], rows)
        budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
        chunk_size = choose_chunk_size(num_rows, row_bytes(one, row0, x), budget)
    b = int(min(chunk_size, num_rows))
    n_chunks = -(-num_rows // b)
    pad = n_chunks * b - num_rows
    if pad:
        rows = jax.tree_util.tree_map(
            lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), rows
        )
    chunks = jax.tree_util.tree_map(lambda a: a.reshape((n_chunks, b) + a.shape[1:]), rows)
    if n_chunks == 1:
        out = jax.vmap(one)(jax.tree_util.tree_map(lambda a: a[0], chunks))
        return out if not pad else jax.tree_util.tree_map(lambda a: a[:num_rows], out)
    out = jax.lax.map(jax.vmap(one), chunks)
    return jax.tree_util.tree_map(lambda a: a.reshape((n_chunks * b,) + a.shape[2:])[:num_rows], out)
