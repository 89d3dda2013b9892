"""Validation of the arguments of the gradient checks (host side, before any tracing).

Every bad input raises a ValueError/TypeError that names the call, the argument, the bad
value and what is accepted.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate
from .._pytree import apply_precision as apply_precision  # the one precision rule (sweep too)
from .._pytree import check_precision
from .._fd import get_stencil
from .._fd import check_step_static, check_step_values
from .._fd import trace_output as trace_output  # f's output, and the eps it computes in
from .._fd import working_eps as working_eps


#: The check modes.
MODES = ("auto", "full", "subset", "directional", "locate")
_DEFAULT_SUBSET_K = 16


def validate_common(caller, fun, options):
    """Check the options of a check; returns (stencil, margin, num_directions, max_located)."""
    mode, method, margin, precision, k = (
        options.mode,
        options.method,
        options.margin,
        options.precision,
        options.k,
    )
    num_directions, max_located = options.num_directions, options.max_located
    _validate.function(fun, caller)
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"{caller}(mode=...) must be one of {list(MODES)}, got {mode!r}")
    stencil = get_stencil(method, caller, first_derivative=True)
    if stencil.complex_step:
        raise ValueError(
            f"{caller}(method=...) must be a real stencil: the complex step has no one-sided "
            f"slopes for kink detection; use 'central', 'central4', 'forward', ..., got {method!r}"
        )
    margin = _validate.positive_finite(margin, "margin", caller)
    num_directions = _validate.int_at_least(num_directions, "num_directions", caller)
    max_located = _validate.int_at_least(max_located, "max_located", caller)
    check_precision(precision, caller)
    if k is not None:
        if mode != "subset":
            raise ValueError(f"{caller}(k=...) applies to mode='subset' only, got mode={mode!r}")
        _validate.int_at_least(k, "k", caller)
    return stencil, float(margin), num_directions, max_located


def as_key(key, caller):
    """The check's key: a jax.random key, or for an int seed (None: 0) the raw uint32[2] key
    data ``jax.random.key(seed)`` holds, computed on the host (no program to compile)."""
    if key is None:
        key = 0
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if 0 <= int(key) < 2**31 and getattr(jax.config, "jax_default_prng_impl", None) == "threefry2x32":
            return np.asarray([0, int(key)], np.uint32)  # threefry's seed: (high, low) words
        return jax.random.key(int(key))
    if isinstance(key, jax.Array) and (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        return key
    raise TypeError(f"{caller}(key=...) must be None, an int seed or a jax.random key, got {key!r}")


def subset_sizes(fa, k, caller):
    sizes = [int(np.prod(s, dtype=np.int64)) for s in fa.float_shapes]
    if k is None:
        return tuple(min(_DEFAULT_SUBSET_K, s) for s in sizes)
    for name, s in zip(fa.float_paths, sizes, strict=False):
        if k > s:
            raise ValueError(
                f"{caller}(k=...) must not exceed the size of any leaf: k={k} but leaf {name} has {s} "
                f"element(s); use k <= {min(sizes)} or k=None (min(16, leaf size) per leaf)"
            )
    return tuple(int(k) for _ in sizes)


def step_kind(step, mode, caller) -> str:
    check_step_static(step, caller, allow_auto=True)
    if isinstance(step, str):
        if mode != "full":
            raise ValueError(
                f"{caller}(step='auto') needs mode='full' (the sweep runs over every element), got "
                f"mode={mode!r}; pass step=None or a float for the other modes"
            )
        return "auto"
    check_step_values(step, caller)
    if step is None:
        return "default"
    if isinstance(step, (int, float)):
        return "scalar"
    return "tree"


def check_output(out, caller, scalar):
    """The output's shapes and dtypes (``trace_output``) are what the check accepts."""
    leaves = jax.tree_util.tree_leaves(out)
    if scalar and not (len(leaves) == 1 and hasattr(out, "shape") and out.shape == ()):
        shape = getattr(out, "shape", type(out).__name__)
        raise TypeError(
            f"{caller} requires a scalar-output function (shape ()), got output {shape}; "
            "use fdjax.check_vjp or fdjax.check_jvp for vector-valued functions"
        )
    if not leaves:
        raise TypeError(f"{caller}: the function returned no arrays")
    for leaf in leaves:
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"{caller} requires real floating-point outputs, got dtype {leaf.dtype}")
    return out


def check_cotangents(cot, out, caller):
    if cot is None:
        return None
    o_leaves, o_def = jax.tree_util.tree_flatten(out)
    try:
        c_leaves, c_def = jax.tree_util.tree_flatten(cot)
    except Exception:  # pragma: no cover - defensive
        c_leaves, c_def = [], None
    if c_def != o_def:
        raise ValueError(
            f"{caller}(cotangents=...) must have the structure of the function's output: {c_def} vs {o_def}"
        )
    fixed = []
    for c, o in zip(c_leaves, o_leaves, strict=False):
        shape = tuple(np.shape(c))
        if shape != tuple(o.shape):
            raise ValueError(
                f"{caller}(cotangents=...) leaf shape {shape} does not match the output leaf shape "
                f"{tuple(o.shape)}"
            )
        if not (
            jnp.issubdtype(jnp.result_type(c), jnp.floating)
            or jnp.issubdtype(jnp.result_type(c), jnp.integer)
        ):
            raise TypeError(
                f"{caller}(cotangents=...) leaves must be real arrays, got dtype {jnp.result_type(c)}"
            )
        fixed.append(jnp.asarray(c, o.dtype))
    return jax.tree_util.tree_unflatten(o_def, fixed)


def flatten_tangent(primals, tangents, caller):
    p_leaves, p_def = jax.tree_util.tree_flatten(tuple(primals))
    if not isinstance(tangents, (tuple, list)):
        raise TypeError(
            f"{caller}(tangents=...) must be a tuple or list with one entry per primal, got "
            f"{type(tangents).__name__}"
        )
    t_leaves, t_def = jax.tree_util.tree_flatten(tuple(tangents))
    if t_def != p_def:
        raise ValueError(f"{caller}(tangents=...) must have the structure of primals: {t_def} vs {p_def}")
    flats = []
    for p, t in zip(p_leaves, t_leaves, strict=False):
        if tuple(np.shape(t)) != tuple(np.shape(p)):
            raise ValueError(
                f"{caller}(tangents=...) leaf shape {tuple(np.shape(t))} does not match the primal "
                f"shape {tuple(np.shape(p))}"
            )
        if jnp.issubdtype(jnp.result_type(p), jnp.floating):
            flats.append(jnp.ravel(jnp.asarray(t, jnp.result_type(p))))
    dt = np.result_type(*[np.dtype(f.dtype) for f in flats])
    return jnp.concatenate([f.astype(dt) for f in flats])


def as_primals(primals, caller):
    if not isinstance(primals, (tuple, list)):
        raise TypeError(
            f"{caller}(primals=...) must be a tuple or list of positional arguments, got "
            f"{type(primals).__name__}"
        )
    if not primals:
        raise ValueError(f"{caller}(primals=...) must not be empty")
    return tuple(primals)
