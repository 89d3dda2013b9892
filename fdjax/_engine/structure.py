"""Structure-aware plans: a perturbation of one leaf leaves the rest of f's work unchanged.

A plan of coordinate rows (f at x + c·e_i for coordinates i and coefficients c: every FD
gradient, Jacobian, full check and step sweep) is evaluated by the dense engine
as if every row were a new problem: the whole vector x is batched, so every operation of f
runs once per row. But a row that moves an element of one leaf leaves every computation
that does not depend on that leaf unchanged. Given the *layout* of x (its leaves, and f as
a function of them), rows are grouped by leaf and each group is its own engine plan:

- ``"leaf"``: only the group's leaves are batched; the other leaves are constants of the
  vmapped function, so what depends on them alone is computed once per chunk, not per row;
- ``"linear"``: the leaf's first use is linear in it (``linear``): the product is computed
  once and each row adds its exact rank-1 change; only what follows the product runs per
  row (a dense layer's rows cost the layers after it);
- ``"dense"``: the plain plan over all of x.

``strategy="auto"`` gives the largest leaves (at most ``MAX_GROUPS - 1`` of them, each at
least ``MIN_GROUP`` elements) a group of their own, ``"linear"`` where the rewrite applies
and ``"leaf"`` otherwise, and puts the other leaves in one shared ``"leaf"`` group; the
number of compiled row programs is therefore at most ``MAX_GROUPS`` whatever the model.
Plans of fewer than ``MIN_ROWS`` rows run dense under ``"auto"`` (one program, milliseconds).
A plan's groups are reported to ``listen_groups`` callbacks when it is traced.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .batch import STRATEGIES as STRATEGIES
from .batch import Basis, Options, evaluate, evaluate_rows
from .._pytree import is_traced
from .plan import itemsize

#: Leaves evaluated as groups of their own at most (the rest share one group).
MAX_GROUPS = 8
#: Leaves with fewer elements than this share the last group.
MIN_GROUP = 64
#: ``"auto"`` plans with fewer rows run dense: they take milliseconds, and a structured plan
#: would compile a row program per group (tenths of a second each) to save less.
MIN_ROWS = 8192


@dataclasses.dataclass(frozen=True)
class Layout:
    """x as consecutive pieces (the differentiated leaves, flattened, in x's dtype).

    Attributes:
        sizes: elements of each piece, in x's order (they sum to N).
        call: f of the pieces: ``call(pieces)`` equals ``fn(concatenate(pieces))`` and is
            built without the concatenation (each piece reshaped into its leaf), so that a
            vmap over one piece batches only what depends on it.
    """

    sizes: tuple[int, ...]
    call: Callable[[Sequence[jax.Array]], Any]


@dataclasses.dataclass(frozen=True)
class Group:
    """One engine plan of a structure-aware evaluation."""

    leaves: tuple[int, ...]
    strategy: str  # "dense", "leaf" or "linear"
    rows: int
    detail: str = ""
    chunk_size: int = 0


_group_listeners: list[Callable[[list[Group]], None]] = []


@contextlib.contextmanager
def listen_groups(callback: Callable[[list[Group]], None]) -> Iterator[None]:
    """Call ``callback(groups)`` each time a coordinate plan is traced (which strategy ran)."""
    _group_listeners.append(callback)
    try:
        yield
    finally:
        _group_listeners.remove(callback)


def leaf_groups(sizes: Sequence[int], strategy: str) -> list[tuple[int, ...]]:
    """The leaves of each group: the largest alone, the others together (see module doc)."""
    live = [i for i, s in enumerate(sizes) if s > 0]
    if strategy == "dense" or len(live) <= 1:
        return [tuple(live)]
    largest = sorted(live, key=lambda i: (-sizes[i], i))[: MAX_GROUPS - 1]
    own = [i for i in largest if sizes[i] >= MIN_GROUP] if strategy == "auto" else largest
    rest = tuple(sorted(set(live) - set(own)))
    groups: list[tuple[int, ...]] = [(i,) for i in sorted(own)]
    return groups + [rest] if rest else groups


def evaluate_coordinates(
    fn: Callable[[jax.Array], Any],
    x: jax.Array,
    coeff: jax.Array,
    opts: Options,
    layout: Layout | None = None,
    index: Any = None,
    leaf_of: np.ndarray | None = None,
) -> Any:
    """f at x + coeff[k, j]·e_{index[j]} for every k and j: a pytree of [K, M, *out].

    Args:
        fn: f of the flat vector.
        x: the point, [N].
        coeff: [K, M] coefficients (real, or complex for the complex step: dense then).
        opts: engine options; ``opts.strategy`` chooses the plan (module doc).
        layout: x's pieces and f of them; None evaluates the dense plan.
        index: the M coordinates: a static NumPy int array (None: all N in order), or an
            int array known only at run time (drawn under the trace); that runs dense unless
            ``leaf_of`` says which piece of the layout each of them lies in.
        leaf_of: static [M] piece of each coordinate, for a traced ``index``.
    """
    n = int(x.shape[0])
    traced = is_traced(index)
    idx: Any
    if traced:
        idx = jnp.asarray(index, jnp.int32)
    else:
        idx = np.arange(n, dtype=np.int32) if index is None else np.asarray(index, np.int32)
    k, m = int(coeff.shape[0]), int(idx.shape[0])
    small = opts.strategy == "auto" and k * m < MIN_ROWS
    unknown = traced and leaf_of is None  # drawn at run time, its leaves not given
    if layout is None or opts.strategy == "dense" or jnp.iscomplexobj(coeff) or m == 0 or small or unknown:
        return _dense(fn, x, coeff, idx, opts, m)
    starts = np.concatenate([[0], np.cumsum(layout.sizes)]).astype(np.int64)
    if int(starts[-1]) != n:
        raise ValueError(f"layout sizes sum to {int(starts[-1])}, x has {n} elements")
    if leaf_of is None:
        leaf_of = np.searchsorted(starts, idx, side="right") - 1
    leaf_of = np.asarray(leaf_of, np.int32)  # int32 throughout: a 1e7 plan's indices are host arrays
    if leaf_of.shape != (m,):
        raise ValueError(f"leaf_of has shape {leaf_of.shape}, expected ({m},): one piece per coordinate")
    pieces = [x[int(a) : int(b)] for a, b in zip(starts[:-1], starts[1:])]
    groups = leaf_groups(layout.sizes, opts.strategy)
    outs, order, report = [], [], []
    for leaves in groups:
        member = np.zeros(len(layout.sizes), bool)
        member[list(leaves)] = True
        sel = _selection(np.flatnonzero(member[leaf_of]))
        size = sel.stop - sel.start if isinstance(sel, slice) else int(sel.size)
        if size == 0:
            continue
        # where each leaf starts in the group's vector, less where it starts in x
        shift = np.zeros(len(layout.sizes), np.int32)
        shift[list(leaves)] = np.cumsum([0] + [layout.sizes[i] for i in leaves])[:-1] - starts[list(leaves)]
        j = idx[sel] + shift[leaf_of[sel]]  # idx static (NumPy) or traced
        c = coeff[:, sel].reshape(-1)
        out, strategy, detail, plan = None, "leaf", "", None
        if len(leaves) == 1 and opts.strategy == "auto":
            out, plan, detail = _linear(layout, pieces, leaves[0], j, c, k, opts)
            strategy = "linear" if out is not None else "leaf"
        if out is None and len(leaves) == len(pieces):  # one group of every leaf: the dense plan
            out, strategy = _dense(fn, x, coeff[:, sel], idx[sel], opts, size), "dense"
            out = jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:]), out)
        elif out is None:
            out, plan = _leaf(layout, pieces, leaves, j, c, k, opts)
        outs.append(jax.tree_util.tree_map(lambda a, s=size: a.reshape((k, s) + a.shape[1:]), out))
        order.append(sel)
        chunk = plan["chunk_size"] if plan else 0
        report.append(Group(tuple(leaves), strategy, int(k * size), detail, chunk))
    for callback in tuple(_group_listeners):
        callback(report)
    joined = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=1), *outs)
    runs = [sel.start for sel in order if isinstance(sel, slice)]
    if len(runs) == len(order) and runs == sorted(runs):
        return joined  # runs of coordinates, in order: no permutation
    perm = np.concatenate([np.arange(m, dtype=np.int32)[sel] for sel in order])
    inverse = np.argsort(perm)
    return jax.tree_util.tree_map(lambda a: jnp.take(a, jnp.asarray(inverse), axis=1), joined)


def _selection(sel: np.ndarray) -> np.ndarray | slice:
    """Sorted positions as a slice when they are a contiguous run (no index array to keep)."""
    if sel.size and int(sel[-1]) - int(sel[0]) + 1 == sel.size:
        return slice(int(sel[0]), int(sel[-1]) + 1)
    return sel


def _dense(fn, x, coeff, idx, opts, m):
    k = int(coeff.shape[0])
    rows = {"index": jnp.tile(jnp.asarray(idx, jnp.int32), k), "coeff": coeff.reshape(-1)}
    vals = evaluate(fn, x, Basis(), rows, opts)
    return jax.tree_util.tree_map(lambda v: v.reshape((k, m) + v.shape[1:]), vals)


def _rows(j, c: jax.Array, k: int) -> dict:
    """Rows of the element offsets ``j`` (static or traced) within a group's vector."""
    return {"index": jnp.tile(jnp.asarray(j, jnp.int32), k), "coeff": c}


def _leaf(layout: Layout, pieces, leaves, j, c, k, opts):
    """Rows of the group's leaves, only those batched (the others are constants)."""
    sizes = [layout.sizes[i] for i in leaves]
    sub = jnp.concatenate([pieces[i] for i in leaves]) if len(leaves) > 1 else pieces[leaves[0]]
    others = [pieces[i] for i in range(len(pieces)) if i not in leaves]
    cuts = np.cumsum(sizes)[:-1].tolist()

    def one(row, sub, *others):
        moved = Basis()(sub, row)
        parts = jnp.split(moved, cuts) if cuts else [moved]
        it_own, it_other = iter(parts), iter(others)
        return layout.call([next(it_own) if i in leaves else next(it_other) for i in range(len(pieces))])

    copy = int(sub.shape[0]) * itemsize(sub.dtype)
    return evaluate_rows(one, _rows(j, c, k), (sub, *others), opts, copy, measure=False)


def _linear(layout: Layout, pieces, leaf: int, j, c, k, opts):
    """Rows of one leaf through the linear-consumer rewrite, or (None, why) when it does not apply."""
    from . import linear  # jax.extend (pallas included, ~15 ms) only for the plans that use it

    piece = pieces[leaf]

    def of_leaf(p):
        return layout.call([p if i == leaf else q for i, q in enumerate(pieces)])

    try:
        closed = linear.inlined(of_leaf, piece)
    except Exception as e:  # noqa: BLE001 - anything the tracer-level inliner cannot handle
        return None, None, f"not traced ({type(e).__name__})"
    plan = linear.analyze(closed, int(piece.shape[0]))
    if plan is None:
        return None, None, "first use not linear"
    shared = linear.prepare(plan, closed.consts, piece)
    keys = list(shared)
    treedef = jax.tree_util.tree_structure(jax.eval_shape(of_leaf, piece))
    rows = _rows(j, c, k)
    pos = plan.positions[j] if isinstance(j, np.ndarray) else jnp.asarray(plan.positions)[j]
    rows["pos"] = jnp.tile(jnp.asarray(pos, jnp.int32), (k, 1))

    def one(row, piece, *vals):
        out = linear.row_value(plan, dict(zip(keys, vals)), piece, row)
        return jax.tree_util.tree_unflatten(treedef, out)

    consts = (piece, *(shared[v] for v in keys))
    out, chunk_plan = evaluate_rows(one, rows, consts, opts, 0, measure=False)
    return out, chunk_plan, plan.description
