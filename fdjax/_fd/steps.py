"""Steps: validation of ``step=`` and the per-coordinate step actually taken."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._pytree import FlatArgs, is_array
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


def relative_step_vector(
    step: Any, fa: FlatArgs, stencil: Stencil, caller: str, eps_floor: float = 0.0
) -> jax.Array:
    """The relative step per coordinate of the flat vector (traceable).

    The default is ``stencil.default_step(eps)`` with the eps of each coordinate's own leaf
    dtype: in a {bfloat16, float32} tree the bfloat16 elements get cbrt(eps_bf16) (central).
    ``eps_floor`` is the eps f computes in where that is coarser (a float64 x whose loss is
    computed in float32): the step that balances truncation against f's rounding follows
    f's precision, not x's.
    """
    x = fa.x
    if step is None:
        if fa.mixed:
            rels = [stencil.default_step(max(eps_of(dt), eps_floor)) for dt in fa.float_dtypes]
            return fa.per_element(rels)
        return jnp.full(x.shape, stencil.default_step(max(eps_of(x.dtype), eps_floor)), x.dtype)
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


def working_eps(fun, fa) -> tuple[float, str]:
    """The precision f computes in, where it is coarser than x's: (eps, dtype name) of the
    narrowest float that f converts a value depending on x down to (a float32 loss of
    bfloat16 activations: bfloat16's), or (0.0, "") when f never narrows such a value.

    f is traced as a function of the differentiated leaves in their own dtypes, so a
    float32 leaf of a mixed tree is not a narrowing (the per-leaf model covers it); only
    f's own casts to a narrower float are. The error model scales its round-off terms by
    this eps: f's values and its AD gradient are rounded at that precision whatever x's
    dtype (a check in float32 of a bfloat16 network cannot resolve what bfloat16 rounds
    away, and must not call that a bug), and the default steps follow it.
    """
    return trace_output(fun, fa)[1:]


def trace_output(fun, fa) -> tuple[Any, float, str]:
    """f traced once with every array argument abstract: (the output's shapes and dtypes,
    then ``working_eps``'s eps and dtype name). What ``jax.eval_shape`` does, and the jaxpr
    read on the way; errors of f are raised as f raises them. Leaves that are not arrays
    (functions, strings, Python numbers) are passed as they are (fdjax's jit keeps them
    static)."""
    live_ids = {id(leaf) for leaf, f in zip(fa.leaves, fa.is_float, strict=True) if f}
    leaves, treedef = jax.tree_util.tree_flatten(fa.args)
    dynamic = [leaf for leaf in leaves if is_array(leaf)]

    def call(*dyn):
        it = iter(dyn)
        full = [next(it) if is_array(leaf) else leaf for leaf in leaves]
        return fun(*jax.tree_util.tree_unflatten(treedef, full))

    closed, out = jax.make_jaxpr(call, return_shape=True)(*dynamic)
    worst = _narrowest(closed.jaxpr, [id(leaf) in live_ids for leaf in dynamic])
    if worst is None or worst.eps <= jnp.finfo(fa.dtype).eps:
        return out, 0.0, ""
    return out, float(worst.eps), str(worst.dtype)


def _narrowest(jaxpr, live: list[bool]):
    """The ``finfo`` of the narrowest float that a value depending on a live input is
    converted down to (``convert_element_type`` to a float of larger eps), or None."""
    dep = {v for v, on in zip(jaxpr.invars, live, strict=False) if on}
    worst = None
    for eqn in jaxpr.eqns:
        ins = [not hasattr(v, "val") and v in dep for v in eqn.invars]  # literals have .val
        if not any(ins):
            continue
        dep.update(eqn.outvars)
        if eqn.primitive.name == "convert_element_type":
            src, dst = getattr(eqn.invars[0].aval, "dtype", None), eqn.params.get("new_dtype")
            if _floating(src) and _floating(dst) and jnp.finfo(dst).eps > jnp.finfo(src).eps:
                info = jnp.finfo(dst)
                worst = info if worst is None or info.eps > worst.eps else worst
        for p in eqn.params.values():
            for sub in p if isinstance(p, (tuple, list)) else (p,):
                inner: Any = getattr(sub, "jaxpr", sub)
                if not hasattr(inner, "eqns"):
                    continue
                aligned = len(inner.invars) == len(ins)
                found = _narrowest(inner, ins if aligned else [True] * len(inner.invars))
                if found is not None and (worst is None or found.eps > worst.eps):
                    worst = found
    return worst


def _floating(dtype) -> bool:
    return dtype is not None and jnp.issubdtype(dtype, jnp.floating)
