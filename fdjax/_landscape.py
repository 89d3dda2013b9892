"""Loss along directions: a 2-D landscape slice and a 1-D slice along one parameter.

Both are one batched engine call each: the rows are coefficients, the perturbed points are
built inside the batch (``x + a·d1 + b·d2``), never stored as a [rows, N] array.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _engine, _validate
from ._json import LANDSCAPE_SCHEMA, jsonable
from ._engine import Options
from ._engine import call_jitted
from ._pytree import FlatArgs, flatten_args


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _Plane:
    """Perturbation ``x + row["a"]·d1 + row["b"]·d2`` (the landscape's rows are (a, b))."""

    d1: jax.Array
    d2: jax.Array

    def __call__(self, x: jax.Array, row: dict) -> jax.Array:
        return x + row["a"].astype(x.dtype) * self.d1 + row["b"].astype(x.dtype) * self.d2


def filter_normalized_direction(key: jax.Array, fa: FlatArgs) -> jax.Array:
    """A Gaussian direction, rescaled filter by filter to the parameters' norms (Li et al., 2018).

    A leaf with two or more axes is a stack of filters along its leading axis (the output
    channels of an OIHW convolution kernel, the rows of a dense matrix): each filter of the
    direction gets the norm of the same filter of the parameters. A vector or scalar leaf is
    one filter. Zero filters (e.g. biases initialised to 0) get a zero direction.
    """
    d = jax.random.normal(key, fa.x.shape, fa.x.dtype)
    out = []
    for dl, pl in zip(fa.unravel(d), fa.unravel(fa.x), strict=False):
        shape = jnp.shape(pl)
        rows = shape[0] if len(shape) >= 2 else 1
        dm = jnp.reshape(dl, (rows, -1))
        pm = jnp.reshape(pl, (rows, -1))
        dn = jnp.linalg.norm(dm, axis=1, keepdims=True)
        pn = jnp.linalg.norm(pm, axis=1, keepdims=True)
        out.append(jnp.ravel(dm * (pn / jnp.where(dn > 0, dn, 1))))
    return jnp.concatenate(out)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Landscape:
    """The loss on a grid around the parameters: ``loss[i, j] = f(x + alphas[i]·d1 + betas[j]·d2)``.

    Attributes:
        alphas: coefficients along the first direction, shape [R].
        betas: coefficients along the second direction, shape [R].
        loss: the loss on the grid, shape [R, R].
        loss0: the loss at the parameters (alpha = beta = 0).
        direction_norms: ‖d1‖ and ‖d2‖, shape [2] (each equal to the parameters' norm when
            no filter is zero).
    """

    alphas: jax.Array
    betas: jax.Array
    loss: jax.Array
    loss0: jax.Array
    direction_norms: jax.Array

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists of floats; non-finite values become None)."""
        return {
            "schema": LANDSCAPE_SCHEMA,
            "alphas": _floats(self.alphas),
            "betas": _floats(self.betas),
            "loss": [_floats(row) for row in np.asarray(self.loss)],
            "loss0": _floats(self.loss0),
            "direction_norms": _floats(self.direction_norms),
            "directions": "filter-normalised Gaussian (Li et al., 2018)",
            "evaluations": int(np.size(self.loss)),
        }


def _floats(a):
    return jsonable(np.asarray(a, dtype=np.float64))


def _scalar_output(fun, fa: FlatArgs, caller: str) -> None:
    out = jax.eval_shape(lambda flat: fun(*fa.call_args(flat)), fa.x)
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        got = getattr(out, "shape", type(out).__name__)
        raise TypeError(f"{caller} requires a function returning a real scalar, got output {got}")


@dataclasses.dataclass(frozen=True)
class _LandscapeBody:
    fun: Callable
    argnums: Any
    resolution: int
    span: float
    opts: Options

    def __call__(self, args, key):
        caller = "fdjax.landscape"
        fa = flatten_args(args, self.argnums, caller)
        k1, k2 = jax.random.split(key)
        d1 = filter_normalized_direction(k1, fa)
        d2 = filter_normalized_direction(k2, fa)
        coords = jnp.linspace(-self.span, self.span, self.resolution, dtype=fa.x.dtype)
        a, b = jnp.meshgrid(coords, coords, indexing="ij")
        rows = {"a": a.ravel(), "b": b.ravel()}

        def flat_fn(flat):
            return self.fun(*fa.call_args(flat))

        vals = _engine.evaluate(flat_fn, fa.x, _Plane(d1, d2), rows, self.opts)
        return Landscape(
            alphas=coords,
            betas=coords,
            loss=vals.reshape(self.resolution, self.resolution),
            loss0=flat_fn(fa.x),
            direction_norms=jnp.stack([jnp.linalg.norm(d1), jnp.linalg.norm(d2)]),
        )


def _key(key: Any, caller: str) -> jax.Array:
    if key is None:
        return jax.random.key(0)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise TypeError(f"{caller}(key=...) must be an int seed or a jax.random key, got {key!r}")


def landscape(
    fun: Callable,
    *args: Any,
    argnums: int | Sequence[int] = 0,
    key: Any = None,
    span: float = 1.0,
    resolution: int = 21,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: Any = None,
) -> Landscape:
    """The loss on a grid along two random filter-normalised directions, in one batched call.

    ``loss[i, j] = fun(x + alphas[i]·d1 + betas[j]·d2)`` for the differentiated argument(s)
    x; d1 and d2 are Gaussian directions rescaled filter by filter to the parameters' norms
    (Li et al., "Visualizing the Loss Landscape of Neural Nets", 2018), so a coefficient of
    1 moves every filter by its own norm. All resolution² points are one engine call.

    Args:
        fun: scalar loss ``fun(*args)``.
        *args: its positional arguments.
        argnums: which argument(s) span the landscape.
        key: int seed or ``jax.random`` key for the directions; default 0.
        span: the grid covers [−span, span] along each direction; positive.
        resolution: points per axis, at least 2.
        chunk_size: rows per vmapped chunk (default: from ``memory_budget``).
        memory_budget: bytes per chunk (default: 256 MiB on CPU, 1 GiB on accelerators).
        devices: where the rows run, as in ``fdjax.grad`` (default: every device).

    Returns:
        A ``Landscape``.

    Raises:
        ValueError, TypeError: bad span, resolution, key, or a non-scalar loss.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> ls = fdjax.landscape(lambda w: jnp.sum(w**2), jnp.ones(3), resolution=3)
        >>> ls.loss.shape, float(ls.loss[1, 1])
        ((3, 3), 3.0)
    """
    caller = "fdjax.landscape"
    _validate.function(fun, caller)
    resolution = _validate.int_at_least(resolution, "resolution", caller, minimum=2)
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not (np.isfinite(span) and span > 0):
        raise ValueError(f"{caller}(span=...) must be positive and finite, got {span!r}")
    opts = Options(chunk_size, memory_budget, devices).validate(caller)
    _scalar_output(fun, flatten_args(args, argnums, caller), caller)  # validate before tracing
    body = _LandscapeBody(fun, argnums, int(resolution), float(span), opts)
    return call_jitted(body, tuple(args), _key(key, caller))


@dataclasses.dataclass(frozen=True)
class _SliceBody:
    fun: Callable
    argnums: Any
    index: int
    opts: Options

    def __call__(self, args, offsets):
        fa = flatten_args(args, self.argnums, "fdjax parameter slice")

        def flat_fn(flat):
            return self.fun(*fa.call_args(flat))

        rows = {"index": jnp.full(offsets.shape, self.index, jnp.int32), "coeff": offsets.astype(fa.x.dtype)}
        return fa.x[self.index], _engine.evaluate(flat_fn, fa.x, _engine.Basis(), rows, self.opts)


def parameter_slice(
    fun: Callable, args: tuple, index: int, offsets: Any, argnums: Any = 0, chunk_size: int | None = None
) -> tuple[float, np.ndarray]:
    """θ and the loss at θ + offsets along flat parameter ``index`` (one engine call).

    Used by the report's calculator-style chart.

    Examples:
        >>> import jax.numpy as jnp
        >>> theta, losses = parameter_slice(lambda w: jnp.sum(w**2), (jnp.ones(2),), 1, [-1.0, 0.0, 1.0])
        >>> theta, losses.tolist()
        (1.0, [1.0, 2.0, 5.0])
    """
    fa = flatten_args(args, argnums, "fdjax parameter slice")
    if not 0 <= index < fa.size:
        raise ValueError(f"parameter_slice(index=...) must be in [0, {fa.size}), got {index}")
    body = _SliceBody(fun, argnums, int(index), Options(chunk_size).validate("parameter_slice"))
    theta, vals = call_jitted(body, tuple(args), jnp.asarray(offsets, fa.x.dtype))
    return float(theta), np.asarray(vals, dtype=np.float64)
