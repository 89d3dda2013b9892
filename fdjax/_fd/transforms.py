"""FD transforms that mirror JAX: ``grad``, ``jacobian``, ``jvp``, ``batched_jvp``.

Each is a thin layer over the engine: choose rows, combine values with stencil weights.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal, ParamSpec
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import _engine, _validate
from .._engine import Options
from .._engine import call_jitted
from .._errors import NonFiniteError, check_x_finite, raise_nonfinite
from .._pytree import is_traced
from .basis import _row_finite, all_finite, basis_values, combine
from .._pytree import FlatArgs, flatten_args
from .stencils import Stencil, get_stencil
from .steps import (
    check_step_static,
    check_step_values,
    eps_of,
    relative_step_vector,
    taken_step,
    trace_output,
    working_eps,
)

# --------------------------------------------------------------------------------------------
# jacobian / grad


#: The wrapped function's parameters: grad(f) and jacobian(f) take the same arguments as f.
P = ParamSpec("P")
#: How the engine evaluates a plan of coordinate rows (``_engine.structure``).
Strategy = Literal["auto", "leaf", "dense"]

# ``jax.Device`` in the signatures below carries ``# pyright: ignore[reportInvalidTypeForm]``:
# jax defines it as ``Device = xla_client.Device``, a class of the compiled ``jaxlib._jax``,
# which ships no stub, so pyright sees a variable of unknown type (mypy accepts it as Any).


@dataclasses.dataclass(frozen=True)
class _JacobianBody:
    """Traced body of grad/jacobian (hashable: the jit cache key)."""

    fun: Callable
    argnums: Any
    stencil: Stencil
    opts: Options
    has_aux: bool
    scalar: bool
    caller: str

    def __call__(self, args, kwargs, step):
        fa = flatten_args(args, self.argnums, self.caller)
        # f traced once: its output's shapes, and the precision it computes in (the steps'
        # eps where coarser than x's: a float32 loss of float64 parameters)
        out, eps_work, _ = trace_output(lambda *a: self.fun(*a, **kwargs), fa)
        check_output(out, self.has_aux, self.scalar, self.caller)

        def full(flat):
            return self.fun(*fa.call_args(flat), **kwargs)

        def main(flat):
            out = full(flat)
            return out[0] if self.has_aux else out

        def of_pieces(pieces):
            out = self.fun(*fa.call_pieces(pieces), **kwargs)
            return out[0] if self.has_aux else out

        layout = _engine.Layout(fa.float_sizes, of_pieces)
        x = fa.x
        if isinstance(step, str):  # step="auto": the per-parameter step sweep (``adaptive``)
            from .adaptive import adaptive_basis, auto_diagnostics

            out0 = full(x)
            f0 = out0[0] if self.has_aux else out0
            d = adaptive_basis(
                main, x, f0, self.stencil, self.opts, layout=layout, eps_work=eps_work
            ).estimate
            diag = auto_diagnostics(f0, d)
            if self.stencil.complex_step:
                d, diag["complex_ok"] = _complex_safety(main, x, f0, None, d)
            return _to_jacobian(fa, d), (out0[1] if self.has_aux else None), diag
        rel = relative_step_vector(step, fa, self.stencil, self.caller, eps_work)
        if self.stencil.complex_step:
            h = rel * jnp.maximum(jnp.abs(x), 1)
        else:
            h = taken_step(x, rel, fa)
        out0 = full(x)
        f0 = out0[0] if self.has_aux else out0

        vals = basis_values(main, x, h, self.stencil, self.opts, layout)
        d = combine(vals, jax.tree_util.tree_map(lambda a: a[None], f0), h, self.stencil)
        diag = {"f0_finite": all_finite(f0), "row_finite": _row_finite(vals), "h": h}
        if self.stencil.complex_step:
            d, diag["complex_ok"] = _complex_safety(main, x, f0, vals, d)
        jac = _to_jacobian(fa, d)
        aux = out0[1] if self.has_aux else None
        return jac, aux, diag


def _complex_safety(main, x, f0, vals, d):
    """Is f complex-step safe? Along one random direction u, with a tiny imaginary step,
    Re f(x + ih·u) ≈ f(x) and Im f(x + ih·u)/h agrees with a central difference. Under a trace
    (where we cannot raise) a failure turns the estimate into NaN, never a plausible number."""
    eps = eps_of(x.dtype)
    ok = jnp.asarray(True)
    u = jax.random.normal(jax.random.key(17), x.shape, x.dtype)
    u = u / jnp.linalg.norm(u)
    hc = eps ** (1 / 3) * jnp.maximum(jnp.max(jnp.abs(x)), 1.0)
    hi = eps * jnp.maximum(jnp.max(jnp.abs(x)), 1.0)
    along = _engine.Directions(u[None])
    real = _engine.evaluate(main, x, along, {"index": jnp.zeros(2, jnp.int32), "coeff": jnp.stack([hc, -hc])})
    cplx = _engine.evaluate(
        main,
        x,
        along,
        {"index": jnp.zeros(1, jnp.int32), "coeff": jax.lax.complex(jnp.zeros_like(hi), hi)[None]},
    )
    for r, c, f in zip(*(jax.tree_util.tree_leaves(t) for t in (real, cplx, f0))):
        scale = jnp.maximum(jnp.max(jnp.abs(f)), 1.0)
        ok &= jnp.all(jnp.abs(jnp.real(c[0]) - f) <= jnp.sqrt(eps) * scale)
        central = (r[0] - r[1]) / (2 * hc)
        comp = jnp.imag(c[0]) / hi
        tol = 1e-2 * jnp.maximum(jnp.abs(central), jnp.abs(comp)) + 100 * eps * scale / hc
        ok &= jnp.all(jnp.abs(central - comp) <= tol)
    d = jax.tree_util.tree_map(lambda a: jnp.where(ok, a, jnp.nan), d)
    return d, ok


def _to_jacobian(fa: FlatArgs, d):
    """d: output pytree of [N, *out_shape] -> output tree of (input tree of [*out, *in])."""

    def per_output(a):
        out_shape = a.shape[1:]
        moved = jnp.moveaxis(a, 0, -1) if a.ndim > 1 else a
        flat_in = moved.reshape((-1, a.shape[0]))  # [prod(out), N]
        pieces = iter(jax.vmap(fa.unravel)(flat_in))  # the float leaves with leading prod(out)
        return fa.rebuild(lambda leaf: next(pieces).reshape(out_shape + np.shape(leaf)), "float0", out_shape)

    return jax.tree_util.tree_map(per_output, d)


def check_output(out, has_aux, scalar, caller):
    """f's output (shapes and dtypes, ``trace_output``) is what the transform accepts."""
    if has_aux:
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"{caller}(has_aux=True) requires the function to return a pair (output, aux)")
        out = out[0]
    if scalar:
        if not (hasattr(out, "shape") and out.shape == ()):
            shape = getattr(out, "shape", type(out).__name__)
            raise TypeError(
                f"{caller} requires a scalar-output function (shape ()), got output shape {shape}; "
                "use fdjax.jacobian for array outputs"
            )
    for leaf in jax.tree_util.tree_leaves(out):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"{caller} requires real floating-point outputs, got dtype {leaf.dtype}")


def _make(
    fun,
    argnums,
    method,
    step,
    *,
    chunk_size,
    memory_budget,
    has_aux,
    scalar,
    caller,
    devices=None,
    strategy="auto",
):
    _validate.function(fun, caller)
    stencil = get_stencil(method, caller, first_derivative=True)
    check_step_static(step, caller, allow_auto=True)
    opts = Options(chunk_size, memory_budget, devices, strategy=strategy).validate(caller)

    @functools.wraps(fun)
    def transformed(*args, **kwargs):
        fa = flatten_args(args, argnums, caller)
        check_x_finite(fa, caller)
        auto = isinstance(step, str)  # "auto", validated above
        if not auto:
            check_step_values(step, caller)
        body = _JacobianBody(fun, argnums, stencil, opts, has_aux, scalar, caller)
        jac, aux, diag = call_jitted(body, fa.args, kwargs, step)
        if auto:
            from .adaptive import raise_auto_nonfinite

            raise_auto_nonfinite(fa, caller, diag)
        else:
            raise_nonfinite(fa, caller, diag["f0_finite"], diag["row_finite"], stencil.offsets, diag["h"])
        if "complex_ok" in diag and not is_traced(diag["complex_ok"]) and not bool(diag["complex_ok"]):
            raise ValueError(
                f"{caller}(method='complex'): the function is not complex-step safe: Re f(x + ih) "
                "differs from f(x) or Im f(x + ih)/h disagrees with a central difference. It likely "
                "uses abs, real/imag/conj, a comparison or a cast that drops the imaginary part."
            )
        return (jac, aux) if has_aux else jac

    return transformed


def jacobian(
    fun: Callable[P, Any],
    argnums: int | Sequence[int] = 0,
    *,
    method: str | Stencil = "central",
    step: Any = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    has_aux: bool = False,
    devices: int | Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]
    strategy: Strategy = "auto",
) -> Callable[P, Any]:
    """FD Jacobian of ``fun`` with respect to ``argnums``, laid out as ``jax.jacfwd``.

    For an output leaf of shape S and an input leaf of shape T the block has shape S + T;
    the result is the output pytree with each leaf replaced by the input pytree.

    Args:
        fun: function of arrays/pytrees returning an array or a pytree of real arrays.
        argnums: which positional argument(s) to differentiate.
        method: ``"central"`` (default), ``"forward"``, ``"backward"``, ``"central4"``,
            ``"central6"``, ``"complex"`` (complex step; ``fun`` must accept complex input),
            or any first-derivative ``fdjax.Stencil``.
        step: relative step (h_i = step·max(|x_i|, 1)), a float or a pytree matching the
            argument(s); default eps^(1/(p+1)) of the dtype: cbrt(eps) for central,
            sqrt(eps) for forward/backward (the eps of the float f computes in, where that is
            coarser: float64 x cast to float32 inside f gets float32's step). The step actually
            taken, (x_i + h_i) − x_i, is used.
            ``"auto"``: a step per parameter (and output element) from the step sweep of
            ``fdjax.sweep`` (a geometric ladder from 0.1·max(|x_i|, 1): ratio 4 and 14 steps
            in float64, ratio 2 and 22 steps in float32; 2·N·K evaluations in one batch),
            returning its best estimate (plain or Richardson). The return type does not
            change; for a scalar function ``fdjax.sweep(fun, *args)`` has the same estimates
            with their error estimates and diagnosis (sweep an output element,
            ``lambda x: fun(x)[i]``, for the rest).
        chunk_size: perturbed evaluations per vmapped chunk; default from ``memory_budget``.
        memory_budget: bytes for one chunk (default 256 MiB on CPU, 1 GiB on GPU/TPU).
        has_aux: ``fun`` returns ``(output, aux)``; the transform returns ``(jac, aux)``.
        devices: where the perturbed evaluations run: None (default) shards them over all
            of ``jax.devices()`` when there are several; an int k uses the first k
            (1: no sharding); or a sequence of ``jax.Device``.
        strategy: how the 2N (K·N) perturbed evaluations use f's structure. ``"auto"``
            (default) evaluates the rows leaf by leaf: rows that move one leaf batch only
            that leaf, and where the leaf's first use is linear (a dense layer's
            ``x @ W``: ``dot_general``) the product is computed once and each row adds its
            exact rank-1 change, so a row costs only the part of f after that product.
            ``"leaf"`` batches leaf by leaf without the rewrite; ``"dense"`` batches the
            whole of x in every row (one program: the throughput benchmark's workload).
            The values agree within FD round-off (eps·|f|/h); see docs/scaling.md.

    Integer and boolean leaves are not differentiated; their blocks are float0 zeros, as
    ``jax.jacfwd(..., allow_int=True)`` returns.

    Raises:
        ValueError, TypeError: on bad configuration or input, naming the argument.
        NonFiniteError: f is NaN/inf at x or at a perturbed point (outside a trace; inside
            the user's jit the NaN propagates into the affected entries instead).

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> J = fdjax.jacobian(lambda x: jnp.sin(x))(jnp.array([0.0, 1.0]))
        >>> bool(jnp.allclose(J, jnp.diag(jnp.cos(jnp.array([0.0, 1.0]))), atol=1e-9))
        True
    """
    return _make(
        fun,
        argnums,
        method,
        step,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        has_aux=has_aux,
        scalar=False,
        caller="fdjax.jacobian",
        devices=devices,
        strategy=strategy,
    )


def grad(
    fun: Callable[P, Any],
    argnums: int | Sequence[int] = 0,
    *,
    method: str | Stencil = "central",
    step: Any = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    has_aux: bool = False,
    devices: int | Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]
    strategy: Strategy = "auto",
) -> Callable[P, Any]:
    """FD gradient of a scalar function, with the structure of the differentiated argument(s).

    Mirrors ``jax.grad``: the returned function has ``fun``'s signature. All 2N perturbed
    evaluations (central; N for one-sided, plus f(x) once) run in one jit-compiled,
    vmapped, chunked batch.

    Args: see ``fdjax.jacobian``; ``fun`` must return a real scalar. With ``step="auto"``
    the gradient is the best estimate of the adaptive step sweep; ``fdjax.sweep`` with the
    same arguments returns the same values with their error estimates and ``Status`` flags.

    Integer and boolean leaves are not differentiated: their gradient is a float0 zero array,
    as ``jax.grad(..., allow_int=True)`` returns.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> g = fdjax.grad(lambda p: jnp.sum(p["w"] ** 2) + p["b"])({"w": jnp.ones(3), "b": 2.0})
        >>> [round(float(v), 6) for v in g["w"]], round(float(g["b"]), 6)
        ([2.0, 2.0, 2.0], 1.0)
        >>> g = fdjax.grad(lambda x: jnp.sum(jnp.log(x)), step="auto")(jnp.array([1e-3, 2.0]))
        >>> [round(float(v), 3) for v in g]
        [1000.0, 0.5]
    """
    return _make(
        fun,
        argnums,
        method,
        step,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        has_aux=has_aux,
        scalar=True,
        caller="fdjax.grad",
        devices=devices,
        strategy=strategy,
    )


# --------------------------------------------------------------------------------------------
# jvp / batched_jvp


@dataclasses.dataclass(frozen=True)
class _JvpBody:
    fun: Callable
    stencil: Stencil
    opts: Options
    caller: str

    def __call__(self, primals, tangents_flat, step):
        nargs = len(primals)
        fa = flatten_args(primals, tuple(range(nargs)), self.caller)

        def main(flat):
            return self.fun(*fa.call_args(flat))

        x = fa.x
        v = tangents_flat.astype(x.dtype)  # [K, N]
        vmax = jnp.max(jnp.abs(v), axis=1)
        xs = jnp.max(jnp.where(v != 0, jnp.abs(x)[None], 0), axis=1)
        if step is None:  # f's own precision where coarser than x's
            rel = self.stencil.default_step(max(eps_of(x.dtype), working_eps(self.fun, fa)[0]))
        else:
            rel = step
        h = rel * jnp.maximum(xs, 1) / jnp.where(vmax > 0, vmax, 1)
        k = v.shape[0]
        offs = jnp.asarray(self.stencil.offsets, x.dtype)
        index = jnp.tile(jnp.arange(k, dtype=jnp.int32), len(self.stencil.offsets))
        coeff = (offs[:, None] * h[None]).reshape(-1)
        if self.stencil.complex_step:
            coeff = jax.lax.complex(jnp.zeros_like(coeff), coeff)
        vals = _engine.evaluate(main, x, _engine.Directions(v), {"index": index, "coeff": coeff}, self.opts)
        nk = len(self.stencil.offsets)
        vals = jax.tree_util.tree_map(lambda a: a.reshape((nk, k) + a.shape[1:]), vals)
        f0 = main(x)
        d = combine(vals, jax.tree_util.tree_map(lambda a: a[None], f0), h, self.stencil)
        diag = {"f0_finite": all_finite(f0), "row_finite": _row_finite(vals), "h": h}
        return f0, d, diag


def _flatten_tangents(primals, tangents, caller, batched):
    p_paths = jax.tree_util.tree_structure(tuple(primals))
    t_struct = jax.tree_util.tree_structure(tuple(tangents))
    if p_paths != t_struct:
        raise ValueError(
            f"{caller}(tangents=...) must have the same pytree structure as primals: {t_struct} vs {p_paths}"
        )
    pl = jax.tree_util.tree_leaves(tuple(primals))
    tl = jax.tree_util.tree_leaves(tuple(tangents))
    flats, k = [], None
    for p, t in zip(pl, tl):
        p = jnp.asarray(p)
        t = np.asarray(t) if not isinstance(t, jax.Array) else t
        if batched and t.ndim < 1:
            raise ValueError(f"{caller}(tangents=...) leaves need a leading batch axis, got shape {t.shape}")
        lead = (t.shape[0],) if batched else ()
        if batched:
            k = t.shape[0] if k is None else k
            if t.shape[0] != k:
                raise ValueError(
                    f"{caller}(tangents=...) leaves disagree on the batch size: {k} vs {t.shape[0]}"
                )
        if tuple(t.shape) != lead + tuple(p.shape):
            raise ValueError(
                f"{caller}(tangents=...) leaf shape {tuple(t.shape)} does not match primal shape "
                f"{lead + tuple(p.shape)}"
            )
        if jnp.issubdtype(p.dtype, jnp.floating):
            flats.append(
                jnp.reshape(jnp.asarray(t, p.dtype), lead + (-1,))
                if batched
                else jnp.ravel(jnp.asarray(t, p.dtype))
            )
    if batched:
        return jnp.concatenate(flats, axis=1)
    return jnp.concatenate(flats)[None]


def _jvp_impl(
    fun, primals, tangents, method, step, *, chunk_size, memory_budget, batched, caller, devices=None
):
    _validate.function(fun, caller)
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(
            f"{caller}(primals=..., tangents=...) must be tuples or lists of positional arguments"
        )
    if len(primals) != len(tangents):
        raise ValueError(f"{caller}: primals has {len(primals)} arguments but tangents has {len(tangents)}")
    stencil = get_stencil(method, caller)
    check_step_static(step, caller)
    if step is not None and not isinstance(step, (int, float)):
        raise TypeError(
            f"{caller}(step=...) must be a positive float (one step per direction), got {type(step).__name__}"
        )
    opts = Options(chunk_size, memory_budget, devices).validate(caller)
    fa = flatten_args(tuple(primals), tuple(range(len(primals))), caller)
    primals = fa.args
    check_x_finite(fa, caller)
    v = _flatten_tangents(primals, tangents, caller, batched)
    f0, d, diag = call_jitted(_JvpBody(fun, stencil, opts, caller), primals, v, step)
    _raise_dir_nonfinite(caller, diag, stencil)
    if not batched:
        d = jax.tree_util.tree_map(lambda a: a[0], d)
    return f0, d


def _raise_dir_nonfinite(caller, diag, stencil):
    if is_traced(diag):
        return
    if not bool(diag["f0_finite"]):
        raise NonFiniteError(f"{caller}: the function returned a non-finite value at the primal point")
    rf = np.asarray(diag["row_finite"])
    if not rf.all():
        k, j = np.argwhere(~rf)[0]
        raise NonFiniteError(
            f"{caller}: the function returned a non-finite value at a perturbed point: tangent {int(j)} "
            f"with offset {stencil.offsets[k]:+g}·h (h = {float(np.asarray(diag['h'])[j]):.3g})"
        )


def jvp(
    fun: Callable,
    primals: Sequence[Any],
    tangents: Sequence[Any],
    *,
    method: str | Stencil = "central",
    step: float | None = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: int | Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]
) -> tuple[Any, Any]:
    """FD directional derivative: ``(fun(*primals), J·tangents)``, like ``jax.jvp``.

    The step along the tangent v is h = step·max(max_{i: v_i≠0}|x_i|, 1)/max|v|, so the
    largest coordinate move is the relative step. Integer primals are held fixed (their
    tangents are ignored; pass float0 or zeros).

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> y, t = fdjax.jvp(jnp.sin, (jnp.array(0.5),), (jnp.array(2.0),))
        >>> round(float(t), 6) == round(2 * float(jnp.cos(0.5)), 6)
        True
    """
    return _jvp_impl(
        fun,
        primals,
        tangents,
        method,
        step,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        batched=False,
        caller="fdjax.jvp",
        devices=devices,
    )


def batched_jvp(
    fun: Callable,
    primals: Sequence[Any],
    tangents: Sequence[Any],
    *,
    method: str | Stencil = "central",
    step: float | None = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: int | Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]
) -> tuple[Any, Any]:
    """Many FD directional derivatives in one engine call.

    ``tangents`` has the structure of ``primals`` with a leading axis of K directions on
    every leaf; returns ``(fun(*primals), jvps)`` where each output leaf gains a leading K.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> _, t = fdjax.batched_jvp(lambda x: jnp.sum(x**2), (jnp.ones(2),), (jnp.eye(2),))
        >>> [round(float(a), 6) for a in t]
        [2.0, 2.0]
    """
    return _jvp_impl(
        fun,
        primals,
        tangents,
        method,
        step,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        batched=True,
        caller="fdjax.batched_jvp",
        devices=devices,
    )
