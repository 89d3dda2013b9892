"""The one engine: f at every row of a plan, in one jit-compiled, vmapped, chunked batch.

A *plan* is a perturbation rule plus a table of rows. Row r asks for
``fn(perturb(x, row_r))``. The rows are small per-row records (an integer index, a
coefficient, ...), never [rows, N] arrays: each perturbed point is built inside the
batch from its row, evaluated with ``jax.vmap`` over chunks of B rows in a
``jax.lax.map``, so that at most B perturbed copies of x exist at a time (and none at
all when XLA fuses the perturbation into f's first use of x). B comes from
``chunk_size`` or from a memory budget and a cache model (``plan``). With several
devices the rows are sharded over a 1-D mesh (``devices``): x is replicated, each
device runs its share of chunks, the values are gathered. The engine knows nothing about
derivatives, AD or verdicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from .. import _validate
from .devices import ROW_AXIS, check_devices, row_mesh
from .plan import (
    RowCost,
    choose_chunk_size,
    default_budget,
    estimate_row,
    itemsize,
    lowered_cost,
    measure_row,
    row_jaxpr,
    warn_if_long,
)


#: How plans of coordinate rows use f's structure (``Options.strategy``, ``structure``).
STRATEGIES = ("auto", "dense", "leaf")

#: Callbacks told, when a plan is traced, how many rows (padding included) it evaluates.
_listeners: list[Callable[[int], None]] = []


@contextlib.contextmanager
def listen(callback: Callable[[int], None]) -> Iterator[None]:
    """Call ``callback(rows)`` each time a plan is traced, before any of its rows run.

    ``rows`` counts every evaluation of f the plan makes, padding included (what a
    counter inside f sees). Progress displays use it to know a pass's size up front.
    """
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


#: Plans with at least this many rows are costed (for ``LargePlanWarning``) even when
#: ``chunk_size`` is given; smaller plans with a given chunk size skip the cost analysis.
COST_ROWS = 100_000


@dataclasses.dataclass(frozen=True)
class Options:
    """Static engine options (hashable: part of the jit cache key).

    Attributes:
        chunk_size: rows per vmapped chunk on each device (at most the number of rows);
            None chooses it from ``memory_budget`` and, on CPU, the last-level cache
            size, for the rows of one device. A given chunk size makes results
            bit-identical for any number of devices; the chosen one may differ with the
            rows per device, and values then agree within rounding.
        memory_budget: bytes one chunk may use (its perturbed copies of x plus f's
            temporaries, measured by XLA); None means 256 MiB on CPU, 1 GiB on GPU/TPU.
        devices: where the rows run: None (every device in ``jax.devices()``; several
            devices shard the rows, and after ``jax.distributed.initialize()`` that is
            every process's devices), an int k (the first k devices; 1 turns sharding
            off) or a sequence of ``jax.Device``.
        vectorize: True (default) evaluates each chunk under ``jax.vmap``; False evaluates
            the rows one at a time (``jax.lax.map``, chunk size 1): the fallback when a
            batched evaluation of f is not faithful to f evaluated alone.
        strategy: how plans of coordinate rows use f's structure (``structure``):
            ``"auto"`` (default: per leaf, the linear-consumer rewrite where it applies,
            else only that leaf batched), ``"leaf"`` (leaf-aware batching only) or
            ``"dense"`` (every row batches the whole of x).
    """

    chunk_size: int | None = None
    memory_budget: int | None = None
    devices: int | tuple | None = None
    vectorize: bool = True
    strategy: str = "auto"

    def validate(self, caller: str) -> Options:
        """Check every field; returns the options with ``devices`` normalized.

        Raises:
            ValueError, TypeError: naming ``caller``, the argument and the bad value.
        """
        for name in ("chunk_size", "memory_budget"):
            _validate.optional_positive_int(getattr(self, name), name, caller)
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"{caller}: strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {self.strategy!r}"
            )
        return dataclasses.replace(self, devices=check_devices(self.devices, caller))


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

    Built as ``where(arange(N) == index, x + coeff, x)``, bit for bit the same values as
    the scatter, but elementwise: under vmap XLA fuses it into f's first reads of x (the
    slices and layout copies that feed its matmuls), so a chunk never materialises a
    [B, N] array of perturbed copies unless f itself needs one.
    """

    _data = ()

    def __call__(self, x: jax.Array, row: dict) -> jax.Array:
        coeff = row["coeff"]
        if jnp.iscomplexobj(coeff) and not jnp.iscomplexobj(x):
            x = x.astype(coeff.dtype)
        index = jnp.asarray(row["index"])
        if not jnp.issubdtype(index.dtype, jnp.integer):
            raise TypeError(f"Basis rows need an integer 'index', got {index.dtype}")
        n = x.shape[0]
        index = jnp.where(index < 0, index + n, index)
        hit = jnp.arange(n, dtype=index.dtype) == index
        return jnp.where(hit, x + coeff.astype(x.dtype), x)


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
            lo, hi = jnp.asarray(row["lo"]), jnp.asarray(row["hi"])
            i = jnp.arange(x.shape[0], dtype=jnp.result_type(lo, hi))
            v = jnp.where((i >= lo) & (i < hi), v, jnp.zeros_like(v))
        return v

    def __call__(self, x: jax.Array, row: dict) -> jax.Array:
        return x + row["coeff"].astype(x.dtype) * self.direction(x, row)


def _pad_rows(rows: dict, total: int) -> dict:
    """Rows padded to ``total`` by repeating the last row (padded values are dropped)."""
    num = int(jax.tree_util.tree_leaves(rows)[0].shape[0])
    if total == num:
        return rows
    return jax.tree_util.tree_map(
        lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], total - num, axis=0)]), rows
    )


def _chunked(one: Callable, rows: dict, b: int):
    """``vmap(one)`` over chunks of exactly b rows, one chunk after another."""
    num = int(jax.tree_util.tree_leaves(rows)[0].shape[0])
    n_chunks = num // b
    if n_chunks <= 1:
        return jax.vmap(one)(rows)
    chunks = jax.tree_util.tree_map(lambda a: a.reshape((n_chunks, b) + a.shape[1:]), rows)
    out = jax.lax.map(jax.vmap(one), chunks)
    return jax.tree_util.tree_map(lambda a: a.reshape((n_chunks * b,) + a.shape[2:]), out)


def chunk_plan(fn, x, perturb, rows, opts: Options = Options()) -> dict:
    """The engine's plan for these rows: devices, rows per device, chunk size, row cost.

    Runs at trace time (nothing is executed); ``evaluate`` uses it, and benchmarks and
    tests read it to see what the engine chose. The row's memory is the jaxpr's
    over-estimate (``row_cost.source == "estimate"``) unless that would cost speed
    (``_coarse``: under 8 rows per chunk on CPU, not every row in one chunk on an
    accelerator); then XLA measures it, compiling the one-row program once. A plan of at
    least ``COST_ROWS`` rows takes its FLOPs from the lowered (not compiled) program, for
    ``LargePlanWarning``.
    """
    copy_bytes = 0
    if _num_rows(rows):
        copy = jax.eval_shape(perturb, x, _row_shape(rows))
        copy_bytes = int(np.prod(copy.shape)) * itemsize(copy.dtype)
    return rows_plan(lambda row, x: fn(perturb(x, row)), rows, (x,), opts, copy_bytes)


def _row_shape(rows: dict) -> dict:
    """One row's shapes and dtypes (to trace with: slicing row 0 of traced rows would add
    operations to the caller's program that nothing uses)."""

    def one(a):
        weak = bool(getattr(getattr(a, "aval", None), "weak_type", False))
        return jax.ShapeDtypeStruct(np.shape(a)[1:], a.dtype, weak_type=weak)

    return jax.tree_util.tree_map(one, rows)


def _num_rows(rows: dict) -> int:
    return int(jax.tree_util.tree_leaves(rows)[0].shape[0])


def rows_plan(
    one: Callable, rows: dict, consts: tuple, opts: Options, copy_bytes: int = 0, measure: bool = True
) -> dict:
    """``chunk_plan`` for rows evaluated as ``one(row, *consts)``; ``copy_bytes`` is what a
    row holds beyond the temporaries of ``one`` (a perturbed copy of x). ``measure=False``
    sizes chunks from the jaxpr's over-estimate alone: no one-row compile, and no
    ``LargePlanWarning`` (XLA's cost analysis of a row that reads shared values counts all
    of them, so its time estimate would be far too long)."""
    num_rows = _num_rows(rows)
    mesh = row_mesh(opts.devices)
    ndev = 1 if mesh is None else int(mesh.size)
    platform = (mesh.devices.flat[0] if mesh is not None else jax.devices()[0]).platform
    per_device = -(-num_rows // ndev)
    budget = default_budget(platform) if opts.memory_budget is None else opts.memory_budget
    cost = None
    if num_rows and (opts.chunk_size is None or num_rows >= COST_ROWS):
        row0 = _row_shape(rows)
        closed = row_jaxpr(one, row0, consts)
        cost = estimate_row(closed, copy_bytes)
        if measure and opts.chunk_size is None and _coarse(cost, per_device, budget, platform):
            cost = measure_row(closed, copy_bytes)  # one compile, for XLA's memory analysis
        if measure and num_rows >= COST_ROWS:
            if cost.source == "estimate":
                cost = lowered_cost(closed, cost)
            warn_if_long(cost, num_rows, ndev, platform)
    if not num_rows or not opts.vectorize:
        b = 1
    elif opts.chunk_size is not None:
        # the same B on every device and for any device count (bit-identical results);
        # a plan smaller than devices × B pads each device's share up to one chunk
        b = min(opts.chunk_size, max(num_rows, 1))
    else:
        assert cost is not None  # measured above for any rows without a chunk_size
        b = choose_chunk_size(per_device, cost.bytes, budget, platform)
    n_chunks = -(-per_device // b) if per_device else 0
    return {
        "mesh": mesh,
        "devices": ndev,
        "platform": platform,
        "rows": num_rows,
        "rows_per_device": per_device,
        "chunk_size": b,
        "chunks_per_device": n_chunks,
        "padded_rows": ndev * n_chunks * b,
        "row_cost": cost,
    }


def _coarse(cost: RowCost, per_device: int, budget: int, platform: str) -> bool:
    """Whether the jaxpr's over-estimate of a row would cost speed, so XLA measures it: on
    an accelerator when it does not fit every row into one chunk; on CPU (cache-sized
    chunks, a compile costing seconds for a large f) only when it leaves under 8 rows."""
    if platform != "cpu":
        return per_device * cost.bytes > budget
    return choose_chunk_size(per_device, cost.bytes, budget, platform) < min(8, per_device)


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
    a row's value does not depend on where the chunk boundaries fall; with several
    devices each evaluates ``rows / devices`` rows in chunks of the same B and the values
    are gathered (replicated) afterwards.

    Args:
        fn: function of a flat vector.
        x: the flat point, shape [N].
        perturb: ``perturb(x, row) -> x'``, e.g. ``Basis()``.
        rows: dict of arrays with a common leading dimension R.
        opts: chunk size / memory budget / devices.

    Warns:
        LargePlanWarning: the plan is expected to take longer than
            ``fdjax._engine.plan.PLAN_WARNING_SECONDS`` (the message gives the estimate).
    """
    plan = chunk_plan(fn, x, perturb, rows, opts)
    return _run(lambda row, x: fn(perturb(x, row)), rows, (x,), opts, plan)


def evaluate_rows(
    one: Callable,
    rows: dict,
    consts: tuple,
    opts: Options = Options(),
    copy_bytes: int = 0,
    measure: bool = True,
) -> tuple[Any, dict]:
    """``one(row, *consts)`` for every row, chunked, vmapped and sharded as ``evaluate``;
    returns (values, the plan).

    ``consts`` (arrays, replicated on every device) are what every row shares: the point x,
    the values of f that no row changes. Structure-aware plans (``structure``) use it, with
    ``measure=False`` (``rows_plan``): one compile per group instead of two.
    """
    plan = rows_plan(one, rows, tuple(consts), opts, copy_bytes, measure)
    return _run(one, rows, tuple(consts), opts, plan), plan


def _run(one: Callable, rows: dict, consts: tuple, opts: Options, plan: dict) -> Any:
    num_rows, b, mesh = plan["rows"], plan["chunk_size"], plan["mesh"]
    for callback in tuple(_listeners):
        callback(plan["padded_rows"] if num_rows else 0)

    def local(rows, consts):
        if not opts.vectorize:  # one row at a time: no vmap anywhere
            return jax.lax.map(lambda row: one(row, *consts), rows)
        return _chunked(lambda row: one(row, *consts), rows, b)

    def body(rows, consts):
        if num_rows == 0:
            return local(rows, consts)
        rows = _pad_rows(rows, plan["padded_rows"])
        if mesh is None:
            out = local(rows, consts)
        else:
            sharded = jax.shard_map(
                local, mesh=mesh, in_specs=(P(ROW_AXIS), P()), out_specs=P(ROW_AXIS), check_vma=False
            )
            out = jax.lax.with_sharding_constraint(sharded(rows, consts), NamedSharding(mesh, P()))
        if plan["padded_rows"] == num_rows:
            return out
        return jax.tree_util.tree_map(lambda a: a[:num_rows], out)

    # Always compiled: inside the caller's jit this nests (and is inlined); called eagerly it
    # still fuses, so a row's bits do not depend on whether the caller jits.
    return jax.jit(body)(rows, consts)
