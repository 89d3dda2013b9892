"""The linear-consumer rewrite: f at a perturbed leaf from one unperturbed product.

Let W be one leaf of f's parameters. When W's only use in f (after reshapes, transposes
and casts) is one operand of a ``dot_general`` whose other operand Q does not depend on W,
then moving one element W[m] by δ changes the product ``P = dot_general(Q, W)`` by δ times
the slice of Q that element multiplies, at one position of P:

    P(W + δ·e_m) = P(W) + δ · Q[.., m's contracting/batch coordinates, ..]   (at m's free ones)

an exact identity of real arithmetic (in floating point the two sides differ by the rounding
of one sum, ~eps·|P|, far below an FD difference's own round-off eps·|f|/h). So the product
is computed once, each row adds its rank-1 (one-column) change, and only the part of f
after the product runs once per row: for a dense layer ``x @ W`` of a d×k weight the row
costs the layers after it instead of a whole forward pass.

``linear_rows`` traces f as a function of the leaf, inlines nested ``jit`` calls, follows
the leaf to its first use and, when the pattern holds, returns the per-row function and
the values every row shares; anything else (the leaf used twice, a nonlinear first use,
a ``custom_vjp``/``scan``/``while`` around the use, integer or complex dtypes) returns
None and the caller evaluates that leaf as a plain batched plan: never a wrong value.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Literal

#: Primitives that move or cast a leaf's elements without mixing them.
_VIEWS = ("reshape", "transpose", "squeeze", "convert_element_type", "copy", "copy_p", "broadcast_in_dim")
#: Call primitives whose body is inlined before the analysis (XLA inlines them anyway).
_CALLS = ("jit", "pjit")


def _read(env: dict, v) -> Any:
    return v.val if isinstance(v, Literal) else env[v]


def _bind(eqn, invals: Sequence[Any]) -> list:
    params = eqn.primitive.get_bind_params(eqn.params)
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _eval(jaxpr, consts: Sequence[Any], args: Sequence[Any]) -> list:
    """Evaluate a jaxpr, inlining nested ``jit`` calls (so their equations are visible)."""
    env: dict = {}
    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        invals = [_read(env, v) for v in eqn.invars]
        sub = eqn.params.get("jaxpr") if eqn.primitive.name in _CALLS else None
        if isinstance(sub, ClosedJaxpr):
            outs = _eval(sub.jaxpr, sub.consts, invals)
        else:
            outs = _bind(eqn, invals)
        env.update(zip(eqn.outvars, outs))
    return [_read(env, v) for v in jaxpr.outvars]


def inlined(fn: Callable, *args: Any) -> ClosedJaxpr:
    """The jaxpr of ``fn(*args)`` with nested ``jit`` calls inlined (one flat equation list)."""
    closed = jax.make_jaxpr(fn)(*args)
    flat = jax.make_jaxpr(lambda *a: _eval(closed.jaxpr, closed.consts, a))(*args)
    return flat


def _view_positions(eqns: Sequence, n: int) -> np.ndarray:
    """Where each element of the leaf lands in the consumer's operand: [n, ndim] int32.

    Applies the chain of view equations to ``arange(n)`` in NumPy (reshape, transpose,
    squeeze and size-preserving broadcasts keep every element exactly once)."""
    a = np.arange(n)
    for eqn in eqns:
        name, p = eqn.primitive.name, eqn.params
        if name == "transpose":
            a = np.transpose(a, p["permutation"])
        elif name != "convert_element_type" and name not in ("copy", "copy_p"):
            a = np.reshape(a, eqn.outvars[0].aval.shape)
    pos = np.empty((n, a.ndim), np.int32)
    flat = a.reshape(-1)
    pos[flat] = np.stack(np.unravel_index(np.arange(flat.size), a.shape), axis=-1) if a.ndim else 0
    return pos


def _is_view(eqn) -> bool:
    name = eqn.primitive.name
    if name not in _VIEWS:
        return False
    aval_in, aval_out = eqn.invars[0].aval, eqn.outvars[0].aval
    if not (jnp.issubdtype(aval_in.dtype, jnp.floating) and jnp.issubdtype(aval_out.dtype, jnp.floating)):
        return False
    if name == "reshape" and eqn.params.get("dimensions") is not None:
        return False
    if name == "broadcast_in_dim":  # only size-1 axes added, operand axes in order
        dims = tuple(eqn.params["broadcast_dimensions"])
        return int(np.prod(aval_in.shape)) == int(np.prod(aval_out.shape)) and dims == tuple(sorted(dims))
    return True


@dataclasses.dataclass(frozen=True)
class LinearPlan:
    """What the rewrite found for one leaf (static; the arrays come at call time)."""

    chain: tuple  # the view equations from the leaf to the consumer's operand
    consumer: Any  # the dot_general equation
    side: int  # which operand of the consumer is the leaf (0: lhs, 1: rhs)
    positions: np.ndarray  # [n, ndim] the leaf element's coordinates in that operand
    after: tuple  # the equations that depend on the product, in order
    jaxpr: Any  # the flat jaxpr

    @property
    def description(self) -> str:
        return f"dot_general ({'lhs' if self.side == 0 else 'rhs'} operand)"


def analyze(closed: ClosedJaxpr, n: int) -> LinearPlan | None:
    """The rewrite's plan for the (inlined) jaxpr of f as a function of one leaf, or None."""
    jaxpr = closed.jaxpr
    if len(jaxpr.invars) != 1:
        return None
    users: dict = {}
    for eqn in jaxpr.eqns:
        for v in eqn.invars:
            if not isinstance(v, Literal):
                users.setdefault(v, []).append(eqn)
    outs = {v for v in jaxpr.outvars if not isinstance(v, Literal)}
    v, chain = jaxpr.invars[0], []
    if not jnp.issubdtype(v.aval.dtype, jnp.floating):
        return None
    while True:
        if v in outs or len(users.get(v, ())) != 1:
            return None
        eqn = users[v][0]
        if _is_view(eqn):
            chain.append(eqn)
            v = eqn.outvars[0]
            continue
        break
    if eqn.primitive.name != "dot_general" or eqn.invars.count(v) != 1 or len(eqn.invars) != 2:
        return None
    side = eqn.invars.index(v)
    # everything that depends on the product, in order
    tainted = {eqn.outvars[0]}
    after = []
    for e in jaxpr.eqns:
        if any((not isinstance(u, Literal)) and u in tainted for u in e.invars):
            after.append(e)
            tainted.update(e.outvars)
    for e in after:  # an effect or a nested trace around the product: no rewrite
        if e.effects:
            return None
    return LinearPlan(tuple(chain), eqn, side, _view_positions(chain, n), tuple(after), jaxpr)


def prepare(plan: LinearPlan, consts: Sequence[Any], leaf: jax.Array) -> dict:
    """The values every row shares: f's values at the unperturbed leaf that the rows read."""
    jaxpr = plan.jaxpr
    env: dict = {}
    env.update(zip(jaxpr.constvars, consts))
    env[jaxpr.invars[0]] = leaf
    after = set(map(id, plan.after))
    for eqn in jaxpr.eqns:
        if id(eqn) in after:
            continue
        env.update(zip(eqn.outvars, _bind(eqn, [_read(env, v) for v in eqn.invars])))
    need = {plan.consumer.invars[0], plan.consumer.invars[1], plan.consumer.outvars[0]}
    for e in plan.after:
        need.update(u for u in e.invars if not isinstance(u, Literal))
    need.update(v for v in jaxpr.outvars if not isinstance(v, Literal))
    made = {v for e in plan.after for v in e.outvars}
    return {v: env[v] for v in need if v not in made and v in env}


def row_value(plan: LinearPlan, shared: dict, leaf: jax.Array, row: dict) -> list:
    """f's outputs (flat list) at the leaf moved by ``row["coeff"]`` at element ``row["index"]``."""
    j, c = row["index"], row["coeff"]
    # the moved element's value as the consumer sees it, through the chain's casts
    old = leaf[j]
    new = old + c.astype(leaf.dtype)
    for eqn in plan.chain:
        if eqn.primitive.name == "convert_element_type":
            dt = eqn.params["new_dtype"]
            old, new = old.astype(dt), new.astype(dt)
    delta = new - old
    m = [row["pos"][k] for k in range(plan.positions.shape[1])]
    eqn = plan.consumer
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = (_read(shared, v) for v in eqn.invars)
    base = _read(shared, eqn.outvars[0])
    if plan.side == 1:  # W is the rhs: the lhs slice at m's batch and contracting coordinates
        fixed = {**{a: m[b] for a, b in zip(lb, rb)}, **{a: m[b] for a, b in zip(lc, rc)}}
        other, own_batch, own_free, other_free_first = lhs, rb, _free(rhs.ndim, rc, rb), True
    else:
        fixed = {**{b: m[a] for a, b in zip(lb, rb)}, **{b: m[a] for a, b in zip(lc, rc)}}
        other, own_batch, own_free, other_free_first = rhs, lb, _free(lhs.ndim, lc, lb), False
    piece = other
    for axis in sorted(fixed, reverse=True):
        piece = jax.lax.dynamic_index_in_dim(piece, fixed[axis], axis, keepdims=False)
    # Place the change without a scatter: broadcast over the other operand's free axes,
    # masked to the moved element's coordinates on the rest (elementwise: XLA fuses it into
    # the product's first consumer instead of writing a copy per row).
    nb, n_own, n_other = len(own_batch), len(own_free), piece.ndim
    other_axes = (
        list(range(nb, nb + n_other)) if other_free_first else list(range(nb + n_own, nb + n_own + n_other))
    )
    own_axes = (
        list(range(nb + n_other, nb + n_other + n_own)) if other_free_first else list(range(nb, nb + n_own))
    )
    fixed_out = dict(zip(range(nb), [m[a] for a in own_batch]))
    fixed_out.update(zip(own_axes, [m[a] for a in own_free]))
    change = delta.astype(base.dtype) * piece.astype(base.dtype)
    spread = jax.lax.broadcast_in_dim(change, base.shape, tuple(other_axes))
    mask = jnp.ones((), bool)
    for axis, coord in fixed_out.items():
        mask = mask & (jax.lax.broadcasted_iota(jnp.int32, base.shape, axis) == coord)
    product = base + jnp.where(mask, spread, jnp.zeros((), base.dtype))
    env = dict(shared)
    env[eqn.outvars[0]] = product
    for e in plan.after:
        env.update(zip(e.outvars, _bind(e, [_read(env, v) for v in e.invars])))
    return [_read(env, v) for v in plan.jaxpr.outvars]


def _free(ndim: int, contracting, batch) -> list[int]:
    used = set(contracting) | set(batch)
    return [a for a in range(ndim) if a not in used]
