"""Gradient checking against AD: ``check_grad``, ``assert_grad``, ``check_jvp``, ``check_vjp``.

This module runs a check: its options are validated once into a ``CheckOptions`` (``inputs``),
the traced measurement bodies (``body``: the AD side and the engine batches of ``rows``,
bisection in ``locate``) run under cached jits, then the error model and the verdict
(``model``, ``aggregate``) make a ``GradCheck`` (``result``, formatted by ``format``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Literal, TypedDict, Unpack, cast, overload
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import host as _host
from .aggregate import _Aggregate
from .body import _Config, _DirectionBody, _ElementBody, _LocateBody, merge_parts, no_elements
from .model import DEFAULT_MARGIN, check_offsets
from .outcomes import CheckStatus
from .rows import measure_samples, probe_sigma
from .result import GradCheck, GradientCheckError
from .inputs import (
    apply_precision,
    as_key,
    as_primals,
    check_cotangents,
    check_output,
    flatten_tangent,
    step_kind,
    subset_sizes,
    validate_common,
    trace_output,
)
from .. import _validate
from .._calls import bind, check_collisions
from .._errors import check_x_finite
from .._engine import Options
from .._engine import call_jitted, predicted_seconds
from .._pytree import is_traced
from .._pytree import flatten_args
from .._fd import Stencil, eps_of


Mode = Literal["auto", "full", "subset", "directional", "locate"]
Precision = Literal["native", "float64"] | None


class CheckGradOptions(TypedDict, total=False):
    """The keyword options of ``check_grad`` and ``assert_grad`` (for type checkers)."""

    argnums: int | Sequence[int]
    has_aux: bool
    mode: Mode
    method: str | Stencil
    step: Any
    key: Any
    k: int | None
    num_directions: int
    max_located: int
    order: int
    precision: Precision
    margin: float
    chunk_size: int | None
    memory_budget: int | None
    devices: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """The options of one check, as the public functions take them (hashable, static).

    Built once from the keyword arguments and passed down instead of a long argument list;
    ``_run`` validates it. ``k`` applies to ``mode="subset"``, ``num_directions`` to every
    mode, ``max_located`` to ``mode="locate"``.
    """

    mode: str = "auto"
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
    has_aux: Any = False,
    kwargs: dict[str, Any] | None = None,
    cotangents: Any = None,
    tangents: Any = None,
) -> GradCheck:
    o = options
    _validate.function(fun, caller)
    fun, args, argnums = bind(fun, args, kwargs or {}, argnums, has_aux, caller)
    mode, k, order, precision = o.mode, o.k, o.order, o.precision
    stencil, margin, num_directions, max_located = validate_common(caller, fun, o)
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"{caller}(order=...) must be 1 or 2, got {order!r}")
    opts = Options(o.chunk_size, o.memory_budget, o.devices).validate(caller)
    if mode == "auto" and isinstance(step, str) and step == "auto":
        mode = "full"  # the adaptive step is found per element: only full mode has them all
    kind_of_step = step_kind(step, mode, caller)
    key = as_key(key, caller)
    args, cotangents, tangents, precision_label = apply_precision(
        precision, args, cotangents, tangents, caller
    )
    fa = flatten_args(args, argnums, caller)
    check_x_finite(fa, caller)
    args = fa.args
    out, eps_work, work_dtype = trace_output(fun, fa)  # f traced once: its output and precision
    check_output(out, caller, scalar=kind == "grad")
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
        eps_work=eps_work,
    )
    mode, auto_note = _auto_mode(mode, cfg, args, fa, opts)
    work_note = (
        f"f computes in {work_dtype} inside: its values and AD gradient are rounded at eps = {eps_work:.3g}, "
        "and the error model and the default steps follow it (finer differences are not resolvable here)"
        if eps_work
        else ""
    )
    notes = tuple(t for t in (auto_note, _precision_note(precision_label), work_note) if t)
    bodies = _Bodies(cfg, mode, subset_k, max_located, margin)
    raw = bodies(args, step, key, cotangents, tangent)
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
        notes=notes,
        eps_work=eps_work,
        eps_leaves=max((eps_of(d) for d in fa.float_dtypes), default=0.0),
    )
    if is_traced(raw):  # inside the user's jit: the verdict is traced too, without escalation
        # one jitted program: under an eager jax.vmap its hundreds of small operations would
        # otherwise be dispatched, and compiled, one by one
        return call_jitted(_TracedVerdict(dataclasses.replace(agg, notes=notes + (_TRACED_NOTE,))), raw)
    with np.errstate(all="ignore"):  # NaN/inf are verdicts here, not warnings
        raw = jax.device_get(raw)
        measured = agg.measure(raw, np)

        def rerun(new_cfg, directions_only):
            again = dataclasses.replace(bodies, cfg=new_cfg, mode="directional" if directions_only else mode)
            return jax.device_get(again(args, step, key, cotangents, tangent))

        dec = _host.consistency(agg, raw, measured, cfg, rerun)

        def call(body, items):
            return jax.device_get(
                call_jitted(body, args, step, key, cotangents, tangent, dec.raw["analytic"], items)
            )

        dec = _host.sweep(agg, _host.escalate(agg, dec, call), call)
        dec = _host.bases(agg, _host.jitter(agg, _host.segments(agg, dec, call), call), call)
        info = dict(dec.info)
        extra = info.pop("extra_evaluations", 0)
        raw = dict(dec.raw, evaluations=dec.raw["evaluations"] + extra)
        return agg(raw, np, dec.measured, info)


@dataclasses.dataclass(frozen=True)
class _TracedVerdict:
    """The verdict computed from traced batches (hashable: the jit cache key)."""

    agg: _Aggregate

    def __call__(self, raw) -> GradCheck:
        return self.agg(raw, jnp)


def _precision_note(label: str | None) -> str:
    return "" if not label or label == "native" else f"checked in {label}"


_TRACED_NOTE = "inside jax.jit: verdicts are the first step's (no escalation, no second look at batching)"

#: mode="auto" runs "full" when its predicted time is at most this many seconds.
AUTO_FULL_SECONDS = 2.0
#: ... and always for at most this many elements.
AUTO_FULL_ELEMENTS = 256


def _auto_mode(mode: str, cfg: _Config, args, fa, opts: Options) -> tuple[str, str]:
    """The mode ``"auto"`` runs, and a note saying why (``""`` for an explicit mode)."""
    if mode != "auto":
        return mode, ""
    n = fa.size
    rows = len(check_offsets(cfg.stencil)) * n
    if n <= AUTO_FULL_ELEMENTS:
        return "full", f"mode='auto' ran 'full' ({n:,} elements)"
    # traced from the leaves as they are: no eager ravel (two programs compiled in a new process)
    seconds = predicted_seconds(lambda fl: cfg.fun(*fa.call_floats(fl)), fa.float_leaves, rows, opts.devices)
    if seconds <= AUTO_FULL_SECONDS:
        return (
            "full",
            f"mode='auto' ran 'full' ({n:,} elements, {rows:,} evaluations, ≈ {seconds:.2g} s predicted)",
        )
    return "locate", (
        f"mode='auto' ran 'locate' (directional, then bisection of failing directions): 'full' would "
        f"take {rows:,} evaluations, ≈ {seconds:.2g} s predicted; pass mode='full' to run it"
    )


def _any_direction_fails(raw, cfg: _Config, margin: float) -> bool:
    """Whether a direction of the first batch fails (eagerly, on the host)."""
    d = jax.device_get(raw["d"])
    with np.errstate(all="ignore"):
        sigma = probe_sigma(d.probes, d.centers[0], np)
        eps = float(jnp.finfo(raw["analytic"].dtype).eps)
        meas = measure_samples(d, sigma, cfg.stencil, margin, eps, np, cfg.eps_work)
    return bool(np.any((meas.status == CheckStatus.FAIL) & d.valid))


@dataclasses.dataclass(frozen=True)
class _Bodies:
    """The first batches of a check: the direction body (every mode; its configuration does
    not include the mode, so one compilation serves every mode), then the element rows of
    full/subset or the bisection of locate; their raw values merged into one dict.

    Full and subset could run both in one program (one trace and compilation fewer: 0.02-0.06 s
    on a new small function), but the two programs' work would then be judged together for
    quick compilation: a float32 ReLU MLP whose two programs compile quickly (loops 1.3e7 and
    9.7e7) crossed the threshold as one (1.1e8) and compiled optimized: 1.9 s -> 2.5 s."""

    cfg: _Config
    mode: str
    subset_k: tuple[int, ...]
    max_located: int
    margin: float

    def __call__(self, args, step, key, cotangents, tangent) -> dict:
        cfg, mode = self.cfg, self.mode
        raw = call_jitted(_DirectionBody(cfg), args, step, key, cotangents, tangent)
        if mode in ("full", "subset"):
            part = call_jitted(
                _ElementBody(cfg, mode, self.subset_k),
                args,
                step,
                key,
                cotangents,
                raw["analytic"],
                raw["f0_ad"],
            )
        elif mode == "locate" and not is_traced(raw) and not _any_direction_fails(raw, cfg, self.margin):
            # nothing to bisect: the bisection body is not compiled at all
            part = no_elements(raw["d"], int(raw["analytic"].shape[0]), raw["analytic"].dtype)
        elif mode == "locate":
            part = call_jitted(
                _LocateBody(cfg, self.max_located, self.margin),
                args,
                step,
                key,
                cotangents,
                tangent,
                raw["analytic"],
                raw["d"],
            )
        else:
            part = no_elements(raw["d"], int(raw["analytic"].shape[0]), raw["analytic"].dtype)
        return merge_parts(raw, part)


@dataclasses.dataclass(frozen=True, eq=False)
class GradChecker:
    """``fdjax.check_grad(fun, **options)``: a function of f's arguments that checks
    ``jax.grad(fun)`` there. Positional arguments are f's (``argnums`` picks the
    differentiated ones); keyword arguments go to f untouched, never differentiated, so
    they may share a name with fdjax's options (``key=``, ``mode=``)."""

    caller: str
    fun: Callable
    argnums: Any
    has_aux: bool
    options: CheckOptions
    step: Any
    key: Any
    raise_unless_passed: bool = False
    allow_inconclusive: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> GradCheck:
        __tracebackhide__ = True  # pytest: show the caller's line, not fdjax's
        if not args:
            raise TypeError(
                f"{self.caller}(fun, **options)(*args, **kwargs) needs f's positional arguments "
                f"(at least the differentiated one), got none"
            )
        result = _run(
            self.caller,
            "grad",
            self.fun,
            args,
            self.argnums,
            self.options,
            step=self.step,
            key=self.key,
            has_aux=self.has_aux,
            kwargs=kwargs,
        )
        if self.raise_unless_passed:
            _raise_unless_passed(result, self.allow_inconclusive)
        return result

    def __repr__(self) -> str:
        name = getattr(self.fun, "__name__", type(self.fun).__name__)
        return f"{self.caller}({name}, mode={self.options.mode!r}, argnums={self.argnums!r}, ...)"


#: How to pass f's own arguments when one of them shares a name with an option.
_CALL_FORM = "fdjax.check_grad(f, **options)(*args, {name}=...)"


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The options of ``check_grad`` among ``values`` (its ``locals()``) not at their default."""
    defaults = _CHECK_GRAD_DEFAULTS
    return {n: v for n, v in values.items() if n in defaults and v is not defaults[n]}


@overload
def check_grad(fun: Callable[..., Any], /, **options: Unpack[CheckGradOptions]) -> GradChecker: ...
@overload
def check_grad(
    fun: Callable[..., Any], arg0: Any, /, *args: Any, **options: Unpack[CheckGradOptions]
) -> GradCheck: ...
def check_grad(
    fun: Callable,
    *args: Any,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    mode: Mode = "auto",
    method: str | Stencil = "central",
    step: Any = None,
    key: Any = None,
    k: int | None = None,
    num_directions: int = 8,
    max_located: int = 2,
    order: int = 1,
    precision: Precision = None,
    margin: float = DEFAULT_MARGIN,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: Any = None,
) -> GradCheck | GradChecker:
    """Check ``jax.grad(f, argnums)(*args)`` against finite differences, with an error model.

    Every f evaluation runs in a jit-compiled, vmapped, chunked engine batch; the call works
    inside ``jax.jit`` too (it returns a pytree of arrays). Modes:

    - ``"auto"`` (default): ``"full"`` when it is cheap (at most 256 elements, or a full
      check predicted to take at most ~2 s from XLA's cost analysis), otherwise
      ``"locate"``; ``result.mode`` is the mode that ran and ``result.notes`` says why.
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

    Each measurement (an element or a direction) ends PASS, FAIL or INCONCLUSIVE
    (``fdjax.CheckStatus``, with a ``fdjax.Reason``). It fails when |analytic − numeric| >
    tolerance, with ``tolerance = margin·(T + R + E_ad)``: T = |e(2h) − e(h)|/(2^p − 1) the
    truncation error from the same batch (e = FD − analytic, p the stencil order), R =
    Σ|w_k|·ρ/h the round-off with ρ = max(eps·max|f|, 2σ) (σ: the noise of f, measured in
    the batch from f(x ± δ) with ulp-sized δ), and E_ad = 8·eps·Σ|w_k|·|a|·|δ_k|/h the
    analytic side's rounding. It is inconclusive when that tolerance is not below half the
    values compared (agreement would prove nothing: *unresolved*), where f is not smooth
    within ±2h (|4·S(h) − S(2h)| > |S(h)|/4 + 20ρ with S(h) = f(x+h) − 2f(x) + f(x−h): a
    *kink*, reported with both one-sided slopes and whether the analytic value is between
    them) and where f is NaN/inf at a perturbed point. Directions are also measured at h/8
    (ReLU nets: a long direction crosses kinks).

    Before deciding, concerned measurements are *escalated*: a failure within 4× its
    tolerance, an unresolved, kinked or non-finite one, and a pass with a tolerance above
    1% of the values are measured again in one more batch at steps
    h/512 … 256h (and, for elements, a step relative to |x_i| with no floor); the most
    precise resolved measurement decides, and a marginal failure needs a second step to
    confirm it (``result.escalated``, ``result.escalation_evaluations``). A failure left
    standing is then tested along its own step: where the rule under test, averaged along
    the step as the stencil weighs it, agrees with the finite difference (f's slope changes
    within every step that resolves f: kinks denser than the step), it is a kink, not a
    failure (``result.notes`` says so).

    A leaf passes when one of its measurements passed and none failed; the check passes
    when every leaf passed. f(x) is evaluated twice in every batch and by the AD pass: if
    the same program gives different values f is not deterministic and the check is
    INCONCLUSIVE without blaming the gradient; a difference between programs is checked
    again with the rows evaluated one at a time (no ``vmap``): rounding keeps the batched
    values, an unfaithful batch is replaced (``result.notes``). Inside ``jax.jit`` the
    verdict is the first batches' (no escalation, no second look).

    Two call forms: ``check_grad(f, *args, **options)`` checks at ``args`` now;
    ``check_grad(f, **options)`` returns a function that checks at its arguments, keyword
    arguments included: ``check_grad(loss, mode="full")(params, batch, key=k)`` passes
    ``key=k`` to ``loss`` (never differentiated), where the first form would take it as
    fdjax's ``key`` (and says so: an option that is also an unbound parameter of f raises).

    Args:
        fun: scalar-valued function; ``fun(*args)`` must return a real scalar (or, with
            ``has_aux``, a pair ``(scalar, aux)``).
        *args: its positional arguments: pytrees, e.g. dicts of arrays, an ``equinox``
            module or a flax ``nnx.State``. In the differentiated ones, float arrays are
            checked (and Python floats in dicts, lists and tuples, as ``jax.grad`` does);
            integer, boolean and key arrays are held fixed; everything else (functions,
            strings, Python ints and bools, floats stored as a module's attribute such as
            ``eqx.nn.Dropout.p``) is held fixed and never traced, as ``eqx.filter_grad``
            does. Arguments not differentiated may be anything: their arrays are traced,
            the rest passed as is (a Python ``train=True`` flag stays a Python bool).
        argnums: which argument(s) to differentiate.
        has_aux: ``fun`` returns ``(output, aux)``, as for ``jax.grad(has_aux=True)``; the
            output is checked and aux ignored.
        mode: ``"auto"`` (default), ``"full"``, ``"subset"``, ``"directional"`` or ``"locate"``.
        method: FD stencil: ``"central"`` (default), ``"central4"``, ``"central6"``,
            ``"forward"``, ``"backward"`` or a first-derivative ``fdjax.Stencil``.
        step: relative step (h_i = step·max(|x_i|, 1)), a float or a pytree matching the
            argument(s); default eps^(1/(p+1)) of the dtype (cbrt(eps) for central; the eps of
            the float f computes in where that is coarser, as ``notes`` then says). Along a
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
        precision: which dtypes the check runs in. None (default): bfloat16 and float16
            leaves of every argument (and of cotangents and tangents) are cast to float32
            first, since a 16-bit check's tolerance (f's rounding, ~1e-2 relative) exceeds
            the gradients and could not tell a gradient from twice itself; float32 and
            float64 leaves are checked in their own dtype, with their own steps and
            tolerances. ``"native"``: every leaf in its own dtype, 16-bit ones too (each
            leaf's default step from its own eps; steps are taken in the leaf's dtype).
            ``"float64"``: every floating leaf cast to float64; needs 64-bit JAX
            (``JAX_ENABLE_X64=1`` in the environment or
            ``jax.config.update("jax_enable_x64", True)`` at startup).
        margin: the multiple of the predicted FD error allowed (default 10).
        chunk_size: rows per vmapped chunk (default: from ``memory_budget``).
        memory_budget: bytes per chunk (default: 256 MiB on CPU, 1 GiB on accelerators).
        devices: where the engine's rows run, as in ``fdjax.grad``: None (every device),
            an int k (the first k; 1 turns sharding off) or a sequence of ``jax.Device``.

    Returns:
        A ``GradCheck``: per element, per leaf and overall outcomes and figures,
        ``status`` (PASS, FAIL or INCONCLUSIVE) with its ``reason``, ``passed``, and a
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
    checker = GradChecker("fdjax.check_grad", fun, argnums, has_aux, options, step, key)
    if not args:
        return checker  # the transform form: see the overloads
    check_collisions(fun, len(args), {}, _given(locals()), "fdjax.check_grad", _CALL_FORM)
    return checker(*args)


@overload
def assert_grad(
    fun: Callable[..., Any], /, *, allow_inconclusive: bool = ..., **options: Unpack[CheckGradOptions]
) -> GradChecker: ...
@overload
def assert_grad(
    fun: Callable[..., Any],
    arg0: Any,
    /,
    *args: Any,
    allow_inconclusive: bool = ...,
    **options: Unpack[CheckGradOptions],
) -> GradCheck: ...
def assert_grad(
    fun: Callable, *args: Any, allow_inconclusive: bool = False, **kwargs: Any
) -> GradCheck | GradChecker:
    """``check_grad`` that raises ``GradientCheckError`` (an AssertionError) unless it passes.

    It raises on FAIL and, unless ``allow_inconclusive=True``, on INCONCLUSIVE (something
    could not be verified: the message says what and what would resolve it). Call it outside
    ``jax.jit`` (e.g. in pytest). Takes the arguments of ``fdjax.check_grad`` and returns
    its result when it does not raise; like it, ``assert_grad(fun, **options)`` with no
    positional argument returns a function of f's arguments (keyword ones included).

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> _ = fdjax.assert_grad(lambda x: jnp.sum(jnp.exp(x)), jnp.ones(3))
    """
    __tracebackhide__ = True  # pytest: show the caller's line, not fdjax's
    if not isinstance(allow_inconclusive, bool):
        raise TypeError(
            f"fdjax.assert_grad(allow_inconclusive=...) must be True or False, got {allow_inconclusive!r}"
        )
    checker = cast(GradChecker, check_grad(fun, **kwargs))
    checker = dataclasses.replace(
        checker, caller="fdjax.assert_grad", raise_unless_passed=True, allow_inconclusive=allow_inconclusive
    )
    if not args:
        return checker
    check_collisions(fun, len(args), {}, _given(kwargs), "fdjax.assert_grad", _CALL_FORM)
    return checker(*args)


def _raise_unless_passed(result: GradCheck, allow_inconclusive: bool) -> None:
    __tracebackhide__ = True
    if is_traced(result.passed):
        raise TypeError(
            "fdjax.assert_grad cannot raise inside jax.jit (the verdict is traced); call "
            "fdjax.check_grad there and inspect `result.passed` outside"
        )
    status = CheckStatus(int(result.status))
    if status == CheckStatus.FAIL or (status == CheckStatus.INCONCLUSIVE and not allow_inconclusive):
        raise GradientCheckError(result)


def check_vjp(
    fun: Callable,
    primals: Sequence[Any],
    cotangents: Any = None,
    *,
    has_aux: bool = False,
    mode: Mode = "auto",
    method: str | Stencil = "central",
    step: Any = None,
    key: Any = None,
    k: int | None = None,
    num_directions: int = 8,
    max_located: int = 2,
    precision: Precision = None,
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
        has_aux: ``fun`` returns ``(output, aux)``; the output is checked, aux ignored.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> fdjax.check_vjp(lambda x: jnp.sin(x) * x, (jnp.arange(4.0),)).passed.item()
        True
    """
    primals = as_primals(primals, "fdjax.check_vjp")
    options = _options(locals())
    argnums = tuple(range(len(primals)))
    return _run(
        "fdjax.check_vjp",
        "vjp",
        fun,
        primals,
        argnums,
        options,
        step=step,
        key=key,
        has_aux=has_aux,
        cotangents=cotangents,
    )


def check_jvp(
    fun: Callable,
    primals: Sequence[Any],
    tangents: Sequence[Any] | None = None,
    *,
    cotangents: Any = None,
    has_aux: bool = False,
    mode: Mode = "auto",
    method: str | Stencil = "central",
    step: Any = None,
    key: Any = None,
    k: int | None = None,
    num_directions: int = 8,
    max_located: int = 2,
    precision: Precision = None,
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
    primals), when given, is checked as one more direction. With ``has_aux=True`` f returns
    ``(output, aux)`` and aux is ignored. Error model, modes and result: as
    ``fdjax.check_grad``.

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
        has_aux=has_aux,
        cotangents=cotangents,
        tangents=tangents,
    )


#: The defaults of ``check_grad``'s options (``_given`` compares against them).
_CHECK_GRAD_DEFAULTS: dict[str, Any] = {
    name: p.default
    for name, p in inspect.signature(check_grad).parameters.items()
    if p.kind == p.KEYWORD_ONLY
}
