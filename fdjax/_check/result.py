"""``GradCheck``: the result of a gradient check, a pytree of arrays, formatted outside jit.

Its figures are grouped by what they describe: ``elements`` (``ElementChecks``, one entry
per element of the flat differentiated vector), ``directions`` (``DirectionChecks``, one
per direction of a directional check), ``leaves`` (``LeafChecks``, one per leaf); the
overall verdict and figures are fields of the ``GradCheck`` itself.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from . import format as _format


class GradientCheckError(AssertionError):
    """Raised by ``fdjax.assert_grad``: the check failed, or could not verify something.

    ``.result`` is the ``GradCheck``. The message's first line says what failed and where
    (leaves, worst elements) or, for an inconclusive check, what was not verified and what
    would resolve it; the check's table follows.
    """

    __module__ = "fdjax"  # the public name, as pytest and tracebacks print it

    def __init__(self, result: GradCheck):
        where = _format.failing_parts(result)
        head, _, table = result.summary().partition("\n")
        super().__init__(head + (f" — in {where}" if where else "") + "\n" + table)
        self.result = result


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ElementChecks:
    """Per element measured: ``GradCheck.elements``.

    Every field is an array with one entry per element stored: all N elements of the flat
    differentiated vector in ``"full"`` mode (in order: the leaves in
    ``GradCheck.leaf_names`` order, each row-major), only the elements measured in
    ``"subset"`` and ``"locate"`` mode, none in ``"directional"`` mode, so that a check of
    10⁷ parameters does not hold 15 arrays of 10⁷. ``index`` gives each entry's flat
    element; ``GradCheck.by_leaf(field)`` scatters a field into the leaves' shapes (NaN,
    or False for the flags, where nothing was measured). An entry that measured nothing
    (index -1) holds NaN and UNCHECKED.

    Attributes:
        analytic: the AD value (jax.grad, the VJP/JVP contracted with the cotangent, or the
            Hessian-vector product for ``order=2``). Always filled.
        numeric: the FD value, divided by the step actually taken.
        abs_error: |a − n|.
        rel_error: |a − n| / max(|a|, |n|).
        tolerance: margin · (truncation + roundoff + ad_rounding), the error model's bound.
        truncation: the error model's truncation term (Richardson, from h and 2h).
        roundoff: the error model's round-off term of the f values.
        ad_rounding: the error model's term for the rounding of the analytic value.
        step: the step h_i actually taken.
        slope_plus: the one-sided slope D+.
        slope_minus: the one-sided slope D−.
        kink: f is not smooth within ±2h (D+ and D− disagree beyond the model).
        subgradient: the analytic value lies between D− and D+ (± tolerance).
        status: int8 ``fdjax.CheckStatus`` codes: 0 unchecked, 1 pass, 2 fail,
            3 inconclusive.
        reason: int8 ``fdjax.Reason`` codes: why an element is inconclusive (0 otherwise).
        index: the flat index of each entry (``GradCheck.element_name(index)`` names it),
            -1 for an entry that measured nothing.

    An element that was escalated (re-measured at other steps before its verdict) reports
    the measurement its verdict came from: ``step`` says which.
    """

    analytic: Any
    numeric: Any
    abs_error: Any
    rel_error: Any
    tolerance: Any
    truncation: Any
    roundoff: Any
    ad_rounding: Any
    step: Any
    slope_plus: Any
    slope_minus: Any
    kink: Any
    subgradient: Any
    status: Any
    reason: Any
    index: Any


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DirectionChecks:
    """Per direction of a directional check: ``GradCheck.directions``.

    Every field is an array of length D, measured in every mode: ``num_directions`` random
    directions over all coordinates, then per leaf a random direction and one along the
    leaf's analytic gradient (not for ``check_jvp``), then the tangent given to ``check_jvp``.

    Attributes:
        analytic: a·v, the AD prediction for the displacement actually taken.
        numeric: the FD value along v.
        abs_error: |a − n|.
        rel_error: |a − n| / max(|a|, |n|).
        tolerance: the error model's bound, as for an element.
        step: the step taken along v.
        slope_plus: the one-sided slope D+ along v.
        slope_minus: the one-sided slope D− along v.
        subgradient: the analytic value lies between D− and D+ (± tolerance).
        status: int8 ``fdjax.CheckStatus`` codes, as for an element.
        reason: int8 ``fdjax.Reason`` codes, as for an element.
        kind: int ``fdjax.DirectionKind`` codes: random over all coordinates, random on one
            leaf, along the analytic gradient of one leaf, the user's tangent.
        leaf: the leaf the direction is restricted to, -1 when it is not one leaf.
        lo: first flat index of the direction's support.
        hi: one past the last flat index of its support.
    """

    analytic: Any
    numeric: Any
    abs_error: Any
    rel_error: Any
    tolerance: Any
    step: Any
    slope_plus: Any
    slope_minus: Any
    subgradient: Any
    status: Any
    reason: Any
    kind: Any
    leaf: Any
    lo: Any
    hi: Any


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LeafChecks:
    """Per leaf of the differentiated arguments: ``GradCheck.leaves``.

    Every field is an array of length L, in ``GradCheck.leaf_names`` order. The metrics come
    from the leaf's elements (``mode="full"``, ``"subset"``) or from the directions restricted
    to it (``"directional"``, ``"locate"``); they are NaN where nothing was measured or a value
    was not finite, never a 0 that reads as agreement.

    Attributes:
        norm_ratio: ‖a − n‖ / ‖a + n‖.
        max_rel_error: the largest |a − n| / max(|a|, |n|) over values above their tolerance.
        digits: −log10 of ‖a − n‖ / max(‖a‖, ‖n‖), clipped to the dtype's digits.
        sign_agreement: fraction of the measurements whose signs agree (|a| and |n| both
            within tolerance counts as agreeing).
        status: int8 ``fdjax.CheckStatus``: FAIL if a measurement on the leaf failed, else
            PASS if at least one passed (resolved, not a kink), else INCONCLUSIVE.
        reason: int8 ``fdjax.Reason``: why the leaf is inconclusive (0 otherwise).
        passed: ``status == PASS``.
        checked: elements and leaf-restricted directions decided (passed or failed).
        failed: of those, how many failed.
        inconclusive: measurements on the leaf that were inconclusive.
        kinks: of those, how many because f is not smooth there.
    """

    norm_ratio: Any
    max_rel_error: Any
    digits: Any
    sign_agreement: Any
    status: Any
    reason: Any
    passed: Any
    checked: Any
    failed: Any
    inconclusive: Any
    kinks: Any


@dataclasses.dataclass(frozen=True)
class GradCheck:
    """The result of ``fdjax.check_grad`` / ``check_jvp`` / ``check_vjp``.

    A registered pytree: every field below except the metadata is an array (or a group of
    arrays), so the result can be returned from ``jax.jit`` and ``jax.vmap``. ``str(result)``,
    ``summary()``, ``to_dict()`` and ``by_leaf()`` run outside jit. Field names are stable
    (reports and the CLI read them).

    Attributes:
        elements: ``ElementChecks``, per element measured (all N in ``"full"`` mode, the
            measured ones in ``"subset"``/``"locate"``, none in ``"directional"``): analytic,
            numeric, abs_error, rel_error, tolerance, truncation, roundoff, ad_rounding,
            step, slope_plus, slope_minus, kink, subgradient, status, reason, index.
        directions: ``DirectionChecks``, per direction (length D): analytic, numeric,
            abs_error, rel_error, tolerance, step, slope_plus, slope_minus, subgradient,
            status, kind, leaf, lo, hi.
        leaves: ``LeafChecks``, per leaf (length L): norm_ratio, max_rel_error, digits,
            sign_agreement, passed, checked, failed, kinks.
        norm_ratio: overall ‖a − n‖ / ‖a + n‖ (over the elements in ``"full"`` and
            ``"subset"`` mode, over the directions otherwise; likewise the next three).
        max_rel_error: overall largest |a − n| / max(|a|, |n|) above tolerance.
        digits: overall significant digits in agreement.
        sign_agreement: overall fraction of agreeing signs.
        status: int8 ``fdjax.CheckStatus`` of the check: INCONCLUSIVE when f(x) is not
            finite or f is not deterministic; else FAIL when any measurement failed; else
            PASS when every leaf passed; else INCONCLUSIVE.
        reason: int8 ``fdjax.Reason``: why the check is inconclusive (0 otherwise).
        passed: ``status == PASS``: every leaf had a resolved measurement that agreed,
            nothing failed.
        checked: elements and directions decided (passed or failed).
        failed: of those, how many failed.
        inconclusive: elements and directions that were inconclusive.
        kinks: of those, how many because f is not smooth there.
        deterministic: the repeated evaluations of f(x) agree within rounding and noise.
        f0_spread: max − min of the repeated f(x).
        value: f(x).
        noise: measured σ of f.
        nonfinite: a NaN/inf was met (in f or in the analytic derivative).
        nonfinite_index: the first flat element that met it, -1 if none.
        nonfinite_direction: the first direction that met it, -1 if none.
        nonfinite_offset: where: the offset in units of h (0 is f(x) itself; NaN: the
            analytic value).
        evaluations: f evaluations used (escalation included).
        escalated: measurements taken again at other steps before their verdict.
        escalation_evaluations: the f evaluations that cost.
        located: ``mode="locate"``: flat indices where bisection ended, padded with -1.
        caller: static, the function called, e.g. ``"fdjax.check_grad"``.
        kind: static, ``"grad"``, ``"jvp"`` or ``"vjp"``.
        mode: static, ``"full"``, ``"subset"``, ``"directional"`` or ``"locate"``.
        method: static, the stencil's name.
        order: static, 1 or 2 (the derivative checked).
        dtype: static, the dtype the check ran in.
        margin: static, the multiple of the predicted FD error allowed.
        leaf_names: static, the leaves' key paths, e.g. ``"['conv']['w']"``.
        leaf_shapes: static, the leaves' shapes.
        notes: static, what the check decided for itself, in words (the mode ``"auto"``
            chose, the precision it ran in, a fallback from batched evaluation).

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> r = fdjax.check_grad(lambda p: jnp.sum(jnp.sin(p["w"])), {"w": jnp.arange(3.0)})
        >>> bool(r.passed), r.leaf_names
        (True, ("['w']",))
        >>> r.elements.status.tolist(), r.leaves.checked.tolist()
        ([1, 1, 1], [5])
    """

    elements: ElementChecks
    directions: DirectionChecks
    leaves: LeafChecks
    norm_ratio: Any
    max_rel_error: Any
    digits: Any
    sign_agreement: Any
    status: Any
    reason: Any
    passed: Any
    checked: Any
    failed: Any
    inconclusive: Any
    kinks: Any
    deterministic: Any
    f0_spread: Any
    value: Any
    noise: Any
    nonfinite: Any
    nonfinite_index: Any
    nonfinite_direction: Any
    nonfinite_offset: Any
    evaluations: Any
    escalated: Any
    escalation_evaluations: Any
    located: Any
    caller: str = "fdjax.check_grad"
    kind: str = "grad"
    mode: str = "full"
    method: str = "central"
    order: int = 1
    dtype: str = "float64"
    margin: float = 10.0
    leaf_names: tuple = ()
    leaf_shapes: tuple = ()
    notes: tuple = ()

    # ----------------------------------------------------------------------------------
    # Structure helpers (outside jit)

    @property
    def size(self) -> int:
        return int(sum(math.prod(s) for s in self.leaf_shapes))

    @property
    def leaf_starts(self) -> tuple[int, ...]:
        starts, s = [], 0
        for shape in self.leaf_shapes:
            starts.append(s)
            s += math.prod(shape)
        return tuple(starts)

    def element_name(self, i: int) -> str:
        """``['conv']['w'][0, 1, 2, 2]``-style name of flat element i."""
        for name, shape, start in zip(self.leaf_names, self.leaf_shapes, self.leaf_starts, strict=False):
            size = math.prod(shape)
            if i < start + size:
                if not shape:
                    return name
                idx = np.unravel_index(i - start, shape)
                return f"{name}[{', '.join(str(int(j)) for j in idx)}]"
        raise IndexError(f"element {i} is out of range for {self.size} elements")

    def by_leaf(self, field: str = "status") -> dict[str, np.ndarray]:
        """A field of ``elements`` split into leaves: ``{leaf name: array of the leaf's shape}``.

        Args:
            field: the name of an ``ElementChecks`` field; default ``"status"``.

        Examples:
            >>> import jax.numpy as jnp, fdjax
            >>> r = fdjax.check_grad(lambda p: jnp.sum(p["w"] ** 2), {"w": jnp.ones((2, 2))})
            >>> r.by_leaf("analytic")["['w']"].tolist()
            [[2.0, 2.0], [2.0, 2.0]]
        """
        self._one("by_leaf()")
        if field not in _ELEMENT_FIELDS:
            raise ValueError(
                f"GradCheck.by_leaf(field=...) must be one of {list(_ELEMENT_FIELDS)}, got {field!r}"
            )
        el = _format.host(self, self.elements)
        values = np.asarray(getattr(el, field))
        if self.mode == "full":  # every element, in order
            arr = values
        else:  # the elements measured, scattered over all of them
            fill = (
                False
                if values.dtype == bool
                else -1
                if field == "index"
                else 0
                if values.dtype.kind in "iu"
                else np.nan
            )
            arr = np.full(self.size, fill, values.dtype)
            stored = el.index >= 0
            arr[el.index[stored]] = values[stored]
        return {
            name: arr[start : start + math.prod(shape)].reshape(shape)
            for name, shape, start in zip(self.leaf_names, self.leaf_shapes, self.leaf_starts, strict=False)
        }

    # ----------------------------------------------------------------------------------
    # Batches of checks (a check under ``jax.vmap``)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The batch axes of a result returned from ``jax.vmap`` (``()`` for one check)."""
        return tuple(int(d) for d in np.shape(self.status))

    def __getitem__(self, index: Any) -> GradCheck:
        """One check (or a sub-batch) of a batched result: ``result[i]``, like an array.

        Examples:
            >>> import jax, jax.numpy as jnp, fdjax
            >>> f = lambda w, s: jnp.sum(jnp.sin(s * w))
            >>> batched = jax.jit(jax.vmap(lambda s: fdjax.check_grad(f, jnp.ones(2), s, mode="full")))
            >>> r = batched(jnp.arange(1.0, 4.0))
            >>> r.batch_shape, bool(r[2].passed)
            ((3,), True)
        """
        if not self.batch_shape:
            raise TypeError(
                f"{self.caller}: GradCheck[{index!r}]: this result is one check, not a batch "
                "(only a result returned from jax.vmap can be indexed)"
            )
        return jax.tree_util.tree_map(lambda a: a[index], self)

    def _one(self, what: str) -> None:
        """Raise unless the result is one check (``what`` names the method called)."""
        if self.batch_shape and not _format.traced(self):
            raise ValueError(
                f"{self.caller}: GradCheck.{what} needs one check, but this result holds a batch of "
                f"shape {self.batch_shape} (from jax.vmap); pick one with result[i] or "
                f"result.summary(index=i)"
            )

    # ----------------------------------------------------------------------------------
    # Formatting (outside jit)

    def __str__(self) -> str:
        if _format.traced(self):
            return f"GradCheck(<traced>, mode={self.mode!r}, leaves={len(self.leaf_names)})"
        return self.summary()

    def summary(self, max_rows: int = 10, index: Any = None) -> str:
        """A readable table: header, one line per leaf, the worst elements and directions.

        A batched result (from ``jax.vmap``) gives one verdict line per check, or the table
        of the check ``index``.

        Args:
            max_rows: how many elements (and directions) to list, worst first.
            index: for a batched result, the check to show (an int or a tuple of ints).
        """
        if index is not None:
            return self[index].summary(max_rows)
        if self.batch_shape and not _format.traced(self):
            return _format.batch_summary(self)
        return _format.summary(self, max_rows)

    def to_dict(self, max_elements: int | None = None) -> dict:
        """A JSON-ready dict: schema, metadata, overall figures, leaves, checked elements, directions.

        Non-finite numbers become ``None`` (``fdjax._json``); ``"schema"`` is ``"fdjax.check/3"``.

        Args:
            max_elements: keep only this many checked elements (the worst by
                difference/tolerance); None keeps all of them.
        """
        self._one("to_dict()")
        return _format.to_dict(self, max_elements)


_ELEMENT_FIELDS = tuple(f.name for f in dataclasses.fields(ElementChecks))
_STATIC = (
    "caller",
    "kind",
    "mode",
    "method",
    "order",
    "dtype",
    "margin",
    "leaf_names",
    "leaf_shapes",
    "notes",
)
jax.tree_util.register_dataclass(
    GradCheck,
    data_fields=[f.name for f in dataclasses.fields(GradCheck) if f.name not in _STATIC],
    meta_fields=list(_STATIC),
)
