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

A convolution is linear in its kernel too. When W is the kernel (rhs) of a
``conv_general_dilated`` (any layout, strides, padding, dilations, feature groups; one
batch group), moving W[o, i, k…] by δ changes only output feature o, by δ times a window of
the input: input feature (o's group, i), shifted by k·rhs_dilation and strided by the
window strides, of the input padded (and lhs-dilated) once. A row then costs a slice of the
input and the layers after the convolution instead of the whole convolution.

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
#: The consumers the rewrite handles: W an operand of a product, or a convolution's kernel.
_CONSUMERS = ("dot_general", "conv_general_dilated")
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
    consumer: Any  # the dot_general or conv_general_dilated equation
    side: int  # which operand of the consumer is the leaf (0: lhs, 1: rhs; a convolution's: 1)
    positions: np.ndarray  # [n, ndim] the leaf element's coordinates in that operand
    after: tuple  # the equations that depend on the product, in order
    jaxpr: Any  # the flat jaxpr

    @property
    def description(self) -> str:
        if self.consumer.primitive.name == "conv_general_dilated":
            return "conv_general_dilated (kernel)"
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
    if eqn.primitive.name not in _CONSUMERS or eqn.invars.count(v) != 1 or len(eqn.invars) != 2:
        return None
    side = eqn.invars.index(v)
    if eqn.primitive.name == "conv_general_dilated" and (side != 1 or eqn.params["batch_group_count"] != 1):
        return None  # an input perturbed, or a batch-grouped (weight-gradient) convolution
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
    """The values every row shares: f's values at the unperturbed leaf that the rows read
    (the operands of the equations after the product, and those equations' own unperturbed
    outputs: where a row changes only a slab of a value, the rest is the unperturbed one)."""
    jaxpr = plan.jaxpr
    env: dict = {}
    env.update(zip(jaxpr.constvars, consts))
    env[jaxpr.invars[0]] = leaf
    for eqn in jaxpr.eqns:
        env.update(zip(eqn.outvars, _bind(eqn, [_read(env, v) for v in eqn.invars])))
    conv = plan.consumer.primitive.name == "conv_general_dilated"
    # a product's rows read its operands; a convolution's, its padded input (below)
    need = {plan.consumer.outvars[0], *(() if conv else plan.consumer.invars)}
    for e in plan.after:
        need.update(u for u in e.invars if not isinstance(u, Literal))
    need.update(v for v in jaxpr.outvars if not isinstance(v, Literal))
    # in the jaxpr's order, not the set's (by id): the rows' program, and so its persistent
    # cache key, must not change from one process to the next
    order = [*jaxpr.constvars, *jaxpr.invars, *(v for e in jaxpr.eqns for v in e.outvars)]
    shared = {v: env[v] for v in order if v in need and v in env}
    if conv:
        shared[_PADDED] = _padded_input(plan.consumer, _read(env, plan.consumer.invars[0]))
    return shared


#: ``prepare``'s key of a convolution's input, padded and lhs-dilated once for every row.
_PADDED = "padded input"


def _padded_input(eqn, lhs):
    """The convolution's input with its padding and lhs dilation applied (zeros)."""
    p = eqn.params
    spatial = p["dimension_numbers"].lhs_spec[2:]
    config = [(0, 0, 0)] * lhs.ndim
    for s, axis in enumerate(spatial):
        lo, hi = p["padding"][s]
        config[axis] = (int(lo), int(hi), int(p["lhs_dilation"][s]) - 1)
    return jax.lax.pad(lhs, jnp.zeros((), lhs.dtype), config)


def _conv_window(eqn, padded, m) -> tuple[dict, jax.Array]:
    """The convolution's output slab that kernel element ``m`` (its coordinates in the
    kernel) feeds: ({output feature axis: o}, the input window it multiplies, in the
    output's remaining axes' order)."""
    p = eqn.params
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    kernel_shape = eqn.invars[1].aval.shape
    out_shape = eqn.outvars[0].aval.shape
    o, i = m[rhs_spec[0]], m[rhs_spec[1]]
    per_group = kernel_shape[rhs_spec[0]] // p["feature_group_count"]
    channel = (o // per_group) * kernel_shape[rhs_spec[1]] + i
    window = jax.lax.dynamic_index_in_dim(padded, channel, lhs_spec[1], keepdims=True)
    for s, axis in enumerate(lhs_spec[2:]):
        size, stride = out_shape[out_spec[2 + s]], int(p["window_strides"][s])
        start = m[rhs_spec[2 + s]] * int(p["rhs_dilation"][s])
        window = jax.lax.dynamic_slice_in_dim(window, start, (size - 1) * stride + 1, axis)
        if stride > 1:
            window = jax.lax.slice_in_dim(window, 0, None, stride, axis)
    window = jnp.squeeze(window, lhs_spec[1])
    # its axes: the input's batch and spatial axes in the input's order; the output's order
    logical = {lhs_spec[0]: 0, **{a: 1 + s for s, a in enumerate(lhs_spec[2:])}}
    mine = [logical[a] for a in sorted(logical)]  # logical dim of each window axis
    wanted = [
        0 if a == out_spec[0] else 1 + out_spec[2:].index(a)
        for a in range(len(out_shape))
        if a != out_spec[1]
    ]
    window = jnp.transpose(window, [mine.index(d) for d in wanted])
    return {out_spec[1]: o}, window


#: Elementwise primitives through which a change confined to a slab stays confined to it.
_ELEMENTWISE = frozenset(
    "add sub mul div neg tanh exp exp2 log log1p expm1 logistic sin cos tan sqrt rsqrt cbrt abs sign "
    "max min pow integer_pow square erf erfc erf_inv atan2 asinh acosh atanh sinh cosh asin acos atan "
    "convert_element_type select_n".split()
)


def _index(value, fixed: dict):
    """``value`` at the fixed coordinates (axes removed, highest first so numbers hold)."""
    for axis in sorted(fixed, reverse=True):
        value = jax.lax.dynamic_index_in_dim(value, fixed[axis], axis, keepdims=False)
    return value


def _fill(base, fixed: dict, slab):
    """``base`` with its slab at the fixed coordinates replaced by ``slab`` (masked where)."""
    free = [a for a in range(base.ndim) if a not in fixed]
    spread = jax.lax.broadcast_in_dim(slab.astype(base.dtype), base.shape, tuple(free))
    mask = jnp.ones((), bool)
    for axis, coord in fixed.items():
        mask = mask & (jax.lax.broadcasted_iota(jnp.int32, base.shape, axis) == coord)
    return jnp.where(mask, spread, base)


def _renumber(axes, removed) -> tuple:
    return tuple(a - sum(r < a for r in removed) for a in axes)


def _slab_dot(eqn, env: dict, slabs: dict):
    """A dot_general whose one changed operand differs from its unperturbed value only on a
    slab fixed at *contracting* axes: the product changes by the slab's change contracted
    with the other operand at those coordinates (a rank-1 update of the output). None when
    the pattern does not hold."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    a, b = eqn.invars
    if (a in slabs) == (b in slabs) or isinstance(a if b in slabs else b, Literal):
        return None
    side = 0 if a in slabs else 1
    var = (a, b)[side]
    fixed, value = slabs[var]
    own_c, other_c = (lc, rc) if side == 0 else (rc, lc)
    own_b = lb if side == 0 else rb
    if not set(fixed) <= set(own_c) or set(fixed) & set(own_b):
        return None
    other = _read(env, (b, a)[side])
    other_fixed = {other_c[own_c.index(ax)]: coord for ax, coord in fixed.items()}
    change = value - _index(_read(env, var), fixed)
    other_sl = _index(other, other_fixed)
    keep = [i for i, ax in enumerate(own_c) if ax not in fixed]
    own_c2 = _renumber([own_c[i] for i in keep], list(fixed))
    other_c2 = _renumber([other_c[i] for i in keep], list(other_fixed))
    own_b2 = _renumber(own_b, list(fixed))
    other_b2 = _renumber(rb if side == 0 else lb, list(other_fixed))
    if side == 0:
        dims = ((own_c2, other_c2), (own_b2, other_b2))
        update = jax.lax.dot_general(
            change, other_sl, dims, preferred_element_type=eqn.params.get("preferred_element_type")
        )
    else:
        dims = ((other_c2, own_c2), (other_b2, own_b2))
        update = jax.lax.dot_general(
            other_sl, change, dims, preferred_element_type=eqn.params.get("preferred_element_type")
        )
    base = _read(env, eqn.outvars[0])
    return base + update.astype(base.dtype)


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
    base = _read(shared, eqn.outvars[0])
    if eqn.primitive.name == "conv_general_dilated":
        fixed_out, piece = _conv_window(eqn, shared[_PADDED], m)
    else:
        fixed_out, piece = _dot_piece(eqn, shared, m, plan.side)
    # The product changes only on the slab at the moved element's coordinates: by δ·piece.
    change = delta.astype(base.dtype) * piece.astype(base.dtype)
    slab = _index(base, fixed_out) + change
    return _run_after(plan, shared, {eqn.outvars[0]: (fixed_out, slab)})


def _dot_piece(eqn, shared: dict, m, side: int) -> tuple[dict, jax.Array]:
    """The product's output slab that operand element ``m`` feeds: ({output axis: coordinate},
    the other operand's slice it multiplies, in the slab's axis order)."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = (_read(shared, v) for v in eqn.invars)
    if side == 1:  # W is the rhs: the lhs slice at m's batch and contracting coordinates
        fixed = {**{a: m[b] for a, b in zip(lb, rb)}, **{a: m[b] for a, b in zip(lc, rc)}}
        other, own_batch, own_free, other_free_first = lhs, rb, _free(rhs.ndim, rc, rb), True
    else:
        fixed = {**{b: m[a] for a, b in zip(lb, rb)}, **{b: m[a] for a, b in zip(lc, rc)}}
        other, own_batch, own_free, other_free_first = rhs, lb, _free(lhs.ndim, lc, lb), False
    piece = _index(other, fixed)  # the other operand's free axes, in the output's order
    # the slab: the output's batch axes and this operand's free axes at m's coordinates
    nb, n_own, n_other = len(own_batch), len(own_free), piece.ndim
    start = nb + n_other if other_free_first else nb
    fixed_out = dict(zip(range(nb), [m[a] for a in own_batch]))
    fixed_out.update(zip(range(start, start + n_own), [m[a] for a in own_free]))
    return fixed_out, piece


def _run_after(plan: LinearPlan, shared: dict, slabs: dict) -> list:
    """f's outputs from the consumer's output given as a slab. A value that differs from its
    unperturbed one only on the slab is kept as that slab (elementwise equations compute the
    slab alone; a product that contracts the slab's axes adds a rank-1 update); anything
    else sees the whole value."""
    env = dict(shared)
    for e in plan.after:
        outs = None
        if e.primitive.name in _ELEMENTWISE and len(e.outvars) == 1:
            outs = _slab_elementwise(e, env, slabs)
        elif e.primitive.name == "dot_general":
            full = _slab_dot(e, env, slabs)
            if full is not None:
                env[e.outvars[0]] = full
                continue
        if outs is not None:
            slabs[e.outvars[0]] = outs
            continue
        invals = []
        for v in e.invars:
            if not isinstance(v, Literal) and v in slabs:
                fixed, value = slabs.pop(v)
                env[v] = _fill(_read(env, v), fixed, value)
            invals.append(_read(env, v))
        env.update(zip(e.outvars, _bind(e, invals)))
    for v, (fixed, value) in slabs.items():
        if v in set(plan.jaxpr.outvars):
            env[v] = _fill(_read(env, v), fixed, value)
    return [_read(env, v) for v in plan.jaxpr.outvars]


def _shape(v) -> tuple[int, ...]:
    """The shape of a jaxpr variable or literal (every aval the rewrite sees is shaped)."""
    return tuple(getattr(v.aval, "shape", ()))


def _slab_elementwise(eqn, env: dict, slabs: dict):
    """(fixed, slab) of an elementwise equation whose changed inputs share one slab, else None."""
    out_shape = eqn.outvars[0].aval.shape
    fixed = None
    for v in eqn.invars:
        if not isinstance(v, Literal) and v in slabs:
            if fixed is not None and slabs[v][0] is not fixed:
                return None
            fixed = slabs[v][0]
    if fixed is None:
        return None
    invals = []
    for v in eqn.invars:
        if not isinstance(v, Literal) and v in slabs:
            invals.append(slabs[v][1])
        elif len(shape := _shape(v)) == len(out_shape) and all(d in (1, o) for d, o in zip(shape, out_shape)):
            # same rank, size-1 axes broadcast (a bias as [1, k]): index 0 on those
            at = {a: (c if shape[a] != 1 else 0) for a, c in fixed.items()}
            invals.append(_index(_read(env, v), at))
        elif _shape(v) == ():
            invals.append(_read(env, v))
        else:
            return None
    return fixed, _bind(eqn, invals)[0]


def _free(ndim: int, contracting, batch) -> list[int]:
    used = set(contracting) | set(batch)
    return [a for a in range(ndim) if a not in used]
