"""Gradient checking against AD: ``check_grad``, ``assert_grad``, ``check_jvp``, ``check_vjp``.

This module runs a check: its options are validated once into a ``CheckOptions`` (``inputs``),
the traced measurement bodies (``body``: the AD side and the engine batches of ``rows``,
bisection in ``locate``) run under cached jits, then the error model and the verdict
(``model``, ``aggregate``) make a ``GradCheck`` (``result``, formatted by ``format``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .aggregate import _Aggregate
from .body import _Config, _DirectionBody, _ElementBody, _LocateBody, no_elements
from .model import DEFAULT_MARGIN
from .result import GradCheck, GradientCheckError
from .inputs import (
    as_key,
    as_primals,
    check_cotangents,
    check_output,
    flatten_tangent,
    step_kind,
    subset_sizes,
    to_float64,
    validate_common,
)
from .._errors import check_x_finite
from .._engine import Options
from .._engine import call_jitted
from .._pytree import is_traced
from .._pytree import flatten_args
from .._fd import Stencil


Mode = Literal["full", "subset", "directional", "locate"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """The options of one check, as the public functions take them (hashable, static).

    Built once from the keyword arguments and passed down instead of a long argument list;
    ``_run`` validates it. ``k`` applies to ``mode="subset"``, ``num_directions`` to every
    mode, ``max_located`` to ``mode="locate"``.
    """

    mode: str = "full"
    method: str | Stencil = "central"
    k: int | None = None
    num_directions: int = 8
    max_located: int = 2
    order: int = 1
    precision: str | None = None
    margin: float = DEFAULT_MARGIN
    chunk_size: int | None = None
    memory_budget: int | None = None
    devices: Any = None


def _options(values: dict[str, Any]) -> CheckOptions:
    """The ``CheckOptions`` among a public function's arguments (its ``locals()``)."""
    names = [f.name for f in dataclasses.fields(CheckOptions)]
    return CheckOptions(**{name: values[name] for name in names if name in values})


def _run(
    caller: str,
    kind: str,
    fun: Callable,
    args: Sequence[Any],
    argnums: Any,
    options: CheckOptions,
    *,
    step: Any,
    key: Any,
    cotangents: Any = None,
    tangents: Any = None,
) -> GradCheck:
    o = options
    mode, k, order, precision = o.mode, o.k, o.order, o.precision
    stencil, margin, num_directions, max_located = validate_common(caller, fun, o)
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"{caller}(order=...) must be 1 or 2, got {order!r}")
    opts = Options(o.chunk_size, o.memory_budget, o.devices).validate(caller)
    kind_of_step = step_kind(step, mode, caller)
    key = as_key(key, caller)
    if precision == "float64":
        args = to_float64(tuple(args))
        cotangents = to_float64(cotangents)
        tangents = to_float64(tangents)
    fa = flatten_args(args, argnums, caller)
    check_x_finite(fa, caller)
    args = fa.args
    out = check_output(fun, args, caller, scalar=kind == "grad")
    subset_k = subset_sizes(fa, k, caller) if mode == "subset" else ()
    tangent = None
    if kind != "grad":
        cotangents = check_cotangents(cotangents, out, caller)
    if tangents is not None:
        tangent = flatten_tangent(args, tangents, caller)
    cfg = _Config(
        fun=fun,
        argnums=argnums,
        kind=kind,
        stencil=stencil,
        opts=opts,
        order=order,
        num_directions=num_directions,
        caller=caller,
        has_tangent=tangent is not None,
        step_kind=kind_of_step,
    )
    # The direction body does not depend on the mode (one compilation for every mode); the
    # element rows of full/subset and the bisection of locate are separate bodies.
    raw = call_jitted(_DirectionBody(cfg), args, step, key, cotangents, tangent)
    if mode in ("full", "subset"):
        part = call_jitted(
            _ElementBody(cfg, mode, subset_k), args, step, key, cotangents, raw["analytic"], raw["f0_ad"]
        )
    elif mode == "locate":
        part = call_jitted(
            _LocateBody(cfg, max_located, margin),
            args,
            step,
            key,
            cotangents,
            tangent,
            raw["analytic"],
            raw["d"],
        )
    else:
        part = no_elements(raw["d"], fa.size, raw["analytic"].dtype)
    raw = dict(raw, **{name: v for name, v in part.items() if name != "evaluations"})
    raw["evaluations"] = raw["evaluations"] + part["evaluations"]
    agg = _Aggregate(
        caller=caller,
        kind=kind,
        mode=mode,
        stencil=stencil,
        order=order,
        margin=margin,
        has_analytic=kind != "jvp" or mode == "full",
        leaf_names=tuple(fa.float_paths),
        leaf_shapes=tuple(tuple(int(d) for d in s) for s in fa.float_shapes),
    )
    if is_traced(raw):  # inside the user's jit: the verdict is traced too
        return agg(raw, jnp)
    with np.errstate(all="ignore"):  # NaN/inf are verdicts here, not warnings
        return agg(jax.device_get(raw), np)


def check_grad(
    fun: Callable,
    *args: Any,
    argnums: int | Sequence[int] = 0,
    mode: Mode = "full",
    method: str | Stencil = "central",
    step: Any = None,
    key: Any = None,
    k: int | None = None,
    num_directions: int = 8,
    max_located: int = 2,
    order: int = 1,
    precision: str | None = None,
    margin: float = DEFAULT_MARGIN,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: Any = None,
) -> GradCheck:
    """Check ``jax.grad(f, argnums)(*args)`` against finite differences, with an error model.

    Every f evaluation runs in a jit-compiled, vmapped, chunked engine batch; the call works
    inside ``jax.jit`` too (it returns a pytree of arrays). Modes:

    - ``"full"``: every element i, from f at x ± h_i·e_i and x ± 2h_i·e_i (4N evaluations for
      central: the 2h pair estimates the truncation error and finds kinks), plus the
      directional checks below; the one along each leaf's analytic gradient sums the
      evidence of the whole leaf (it catches a gradient scaled by 1 + 1e-2 in float32 where
      each element alone is too noisy).
    - ``"subset"``: ``k`` random elements per leaf (default min(16, leaf size)); each leaf's
      sample comes from its key path, so it does not change when other leaves change.
    - ``"directional"``: ``num_directions`` Rademacher directions over all coordinates, one
      random direction per leaf and one along each leaf's analytic gradient: O(K + leaves).
    - ``"locate"``: the directional check, then bisection of the (up to ``max_located``)
      worst failing directions down to single elements, confirmed element-wise:
      O(max_located · log2 N) evaluations.

    Each element or direction passes when |analytic − numeric| <= tolerance, with
    ``tolerance = margin·(T + R + E_ad)``: T = |e(2h) − e(h)|/(2^p − 1) the truncation
    error from the same batch (e = FD − analytic, p the stencil order), R = Σ|w_k|·ρ/h the
    round-off with ρ = max(eps·max|f|, 2σ) (σ: the noise of f, measured in the batch from
    f(x ± δ) with ulp-sized δ), and E_ad = 8·eps·Σ|w_k|·|a|·|δ_k|/h the analytic side's
    rounding. Where f is not smooth within ±2h (|4·S(h) − S(2h)| > |S(h)|/4 + 20ρ with
    S(h) = f(x+h) − 2f(x) + f(x−h)) the element is a *kink*: reported with both one-sided
    slopes and whether the analytic value is between them, and left out of the verdict.
    Directions are also measured at h/8 (8 evaluations each for central): a direction that
    crosses a kink within ±2h but not within ±h/4 (ReLU nets: a direction moves every unit)
    is judged at h/8 instead of being left out. A leaf whose measurements are all kinks is
    named as not verified. f(x) is evaluated in every batch and by the AD pass; if the
    values differ beyond rounding the result is marked not deterministic (dropout or an RNG
    left on) and fails without blaming the gradient. NaN/inf values are reported with the element and offset.

    Args:
        fun: scalar-valued function; ``fun(*args)`` must return a real scalar.
        *args: its positional arguments (pytrees of arrays).
        argnums: which argument(s) to differentiate; integer leaves are held fixed.
        mode: ``"full"``, ``"subset"``, ``"directional"`` or ``"locate"``.
        method: FD stencil: ``"central"`` (default), ``"central4"``, ``"central6"``,
            ``"forward"``, ``"backward"`` or a first-derivative ``fdjax.Stencil``.
        step: relative step (h_i = step·max(|x_i|, 1)), a float or a pytree matching the
            argument(s); default eps^(1/(p+1)) of the dtype (cbrt(eps) for central). Along a
            direction v on a support S the step is step·max(‖x_S‖, 1)/‖v_S‖ (float or default).
            ``"auto"`` (``mode="full"`` only): each element's step from the adaptive sweep
            (``fdjax.sweep``), then the same error model at that step.
        key: random key or int seed for subset samples and directions; default key(0).
        k: elements per leaf in ``"subset"`` mode.
        num_directions: random directions over all coordinates (directional, locate).
        max_located: segments followed by ``"locate"`` (at most this many wrong elements
            are located).
        order: 1, or 2 to check the second derivative: FD of ``jax.grad(f)`` contracted
            with a random Rademacher vector v against the AD Hessian-vector product Hv.
        precision: None (check in the arguments' dtype: float32 is checked in float32 with
            float32 steps and tolerances) or ``"float64"``: cast every floating argument to
            float64 first. Needs 64-bit JAX (``JAX_ENABLE_X64=1`` in the environment or
            ``jax.config.update("jax_enable_x64", True)`` at startup).
        margin: the multiple of the predicted FD error allowed (default 10).
        chunk_size: rows per vmapped chunk (default: from ``memory_budget``).
        memory_budget: bytes per chunk (default: 256 MiB on CPU, 1 GiB on accelerators).
        devices: where the engine's rows run, as in ``fdjax.grad``: None (every device),
            an int k (the first k; 1 turns sharding off) or a sequence of ``jax.Device``.

    Returns:
        A ``GradCheck``: per element, per leaf and overall figures, ``passed``, and a
        readable ``summary()``.

    Raises:
        ValueError, TypeError: on bad input (named argument, bad value, what is accepted),
            e.g. a non-scalar f, an unknown mode, ``k`` larger than a leaf.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> f = lambda p: jnp.sum(jnp.tanh(p["w"]) ** 2)
        >>> fdjax.check_grad(f, {"w": jnp.linspace(-1.0, 1.0, 5)}).passed.item()
        True
    """
    options = _options(locals())
    return _run("fdjax.check_grad", "grad", fun, args, argnums, options, step=step, key=key)


def assert_grad(fun: Callable, *args: Any, **kwargs: Any) -> GradCheck:
    """``check_grad`` that raises ``GradientCheckError`` (an AssertionError) when it fails.

    The message is the check's summary table. Call it outside ``jax.jit`` (e.g. in pytest).
    Takes the arguments of ``fdjax.check_grad`` and returns its result when it passes.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> _ = fdjax.assert_grad(lambda x: jnp.sum(jnp.exp(x)), jnp.ones(3))
    """
    __tracebackhide__ = True  # pytest: show the caller's line, not fdjax's
    result = check_grad(fun, *args, **kwargs)
    if is_traced(result.passed):
        raise TypeError(
            "fdjax.assert_grad cannot raise inside jax.jit (the verdict is traced); call "
            "fdjax.check_grad there and inspect `result.passed` outside"
        )
    if not bool(result.passed):
        raise GradientCheckError(result)
    return result


def check_vjp(
    fun: Callable,
    primals: Sequence[Any],
    cotangents: Any = None,
    *,
    mode: Mode = "full",
    method: str | Stencil = "central",
    step: Any = None,
    key: Any = None,
    k: int | None = None,
    num_directions: int = 8,
    max_located: int = 2,
    precision: str | None = None,
    margin: float = DEFAULT_MARGIN,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: Any = None,
) -> GradCheck:
    """Check the reverse-mode derivative (``jax.vjp``, custom_vjp rules) of a vector-valued f.

    With a cotangent c (given, or Gaussian from ``key``) the VJP Jᵀc is compared, per input
    element, with the FD derivative of ⟨c, f(x)⟩ — in ``"full"`` mode that is the FD
    Jacobian contracted with c; in directional modes the identity ⟨u, Jᵀc⟩ = ⟨Ju, c⟩ along
    random directions u. Error model, modes and result: as ``fdjax.check_grad``, whose
    keyword arguments this takes too.

    Args:
        fun: function of the primals returning an array or a pytree of real arrays.
        primals: tuple of positional arguments; all are differentiated.
        cotangents: pytree matching f's output (structure and shapes), or None for random.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> fdjax.check_vjp(lambda x: jnp.sin(x) * x, (jnp.arange(4.0),)).passed.item()
        True
    """
    primals = as_primals(primals, "fdjax.check_vjp")
    options = _options(locals())
    argnums = tuple(range(len(primals)))
    return _run(
        "fdjax.check_vjp", "vjp", fun, primals, argnums, options, step=step, key=key, cotangents=cotangents
    )


def check_jvp(
    fun: Callable,
    primals: Sequence[Any],
    tangents: Sequence[Any] | None = None,
    *,
    cotangents: Any = None,
    mode: Mode = "full",
    method: str | Stencil = "central",
    step: Any = None,
    key: Any = None,
    k: int | None = None,
    num_directions: int = 8,
    max_located: int = 2,
    precision: str | None = None,
    margin: float = DEFAULT_MARGIN,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: Any = None,
) -> GradCheck:
    """Check the forward-mode derivative (``jax.jvp``, custom_jvp rules) of a vector-valued f.

    The outputs are contracted with a cotangent c (given, or Gaussian from ``key``): per
    input element i, ⟨c, J·e_i⟩ from ``jax.jvp`` (``"full"``: N batched JVPs; ``"subset"``:
    k per leaf) is compared with the FD derivative of ⟨c, f(x)⟩; in directional modes
    ⟨c, J·u⟩ from ``jax.jvp`` along each direction u. ``tangents`` (one pytree like the
    primals), when given, is checked as one more direction. Error model, modes and result:
    as ``fdjax.check_grad``.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> fdjax.check_jvp(jnp.sin, (jnp.arange(3.0),), mode="directional").passed.item()
        True
    """
    primals = as_primals(primals, "fdjax.check_jvp")
    options = _options(locals())
    argnums = tuple(range(len(primals)))
    return _run(
        "fdjax.check_jvp",
        "jvp",
        fun,
        primals,
        argnums,
        options,
        step=step,
        key=key,
        cotangents=cotangents,
        tangents=tangents,
    )
