"""``GradCheck``: the result of a gradient check, a pytree of arrays, formatted outside jit."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from . import format as _format
from .fields import DIRECTION_FIELDS, ELEMENT_FIELDS, LEAF_FIELDS, META_FIELDS, OVERALL_FIELDS


class GradientCheckError(AssertionError):
    """Raised by ``fdjax.assert_grad``: the check failed. ``.result`` is the ``GradCheck``.

    The message's first line says what failed and where (leaves, worst elements); the
    check's table follows.
    """

    __module__ = "fdjax"  # the public name, as pytest and tracebacks print it

    def __init__(self, result: GradCheck):
        where = _format.failing_parts(result)
        head, _, table = result.summary().partition("\n")
        super().__init__(head + (f" — in {where}" if where else "") + "\n" + table)
        self.result = result


@dataclasses.dataclass(frozen=True)
class GradCheck:
    """The result of ``fdjax.check_grad`` / ``check_jvp`` / ``check_vjp``.

    A registered pytree: every field below except the metadata is an array, so the result
    can be returned from ``jax.jit``. ``str(result)``, ``summary()`` and ``to_dict()`` run
    outside jit. Field names are stable (reports and the CLI read them).

    Per element of the flat differentiated vector (length N, leaves in ``leaf_names``
    order, each leaf row-major; unchecked elements hold NaN):
        analytic: the AD value (jax.grad, the VJP/JVP contracted with the cotangent, or the
            Hessian-vector product for ``order=2``). Always filled.
        numeric: the FD value, divided by the step actually taken.
        abs_error, rel_error: |a − n| and |a − n| / max(|a|, |n|).
        tolerance: margin · (truncation + roundoff + ad_rounding), the error model's bound.
        truncation, roundoff, ad_rounding: the three terms of the error model.
        step: the step h_i actually taken.
        slope_plus, slope_minus: one-sided slopes D+ and D−.
        kink: f is not smooth within ±2h (D+ and D− disagree beyond the model).
        subgradient: the analytic value lies between D− and D+ (± tolerance).
        status: int8 code, ``fdjax.CheckStatus``: 0 unchecked, 1 pass, 2 fail, 3 kink,
            4 nonfinite.
    Per direction (directional checks; length D): ``dir_analytic`` (a·v for the step
        taken), ``dir_numeric``, ``dir_abs_error``, ``dir_rel_error``, ``dir_tolerance``,
        ``dir_step``, ``dir_slope_plus``, ``dir_slope_minus``, ``dir_subgradient``,
        ``dir_status``, ``dir_kind`` (``fdjax.DirectionKind``: random over all coordinates,
        random on one leaf, along the analytic gradient of one leaf, the user's tangent),
        ``dir_leaf`` (-1 when not one leaf), ``dir_lo``/``dir_hi`` (support in the flat vector).
    Per leaf (length L): ``leaf_norm_ratio`` ‖a−n‖/‖a+n‖, ``leaf_max_rel_error``,
        ``leaf_digits`` (−log10 of ‖a−n‖/max(‖a‖,‖n‖), clipped to the dtype's digits),
        ``leaf_sign_agreement`` (fraction; |a|,|n| both within tolerance counts as agreeing),
        ``leaf_passed``, ``leaf_checked``, ``leaf_failed``, ``leaf_kinks`` (counts of the
        leaf's elements and of the directions restricted to the leaf). Leaf metrics come from
        its elements (full, subset) or its directions (directional, locate).
    Overall: ``norm_ratio``, ``max_rel_error``, ``digits``, ``sign_agreement``, ``passed``
        (no failure, no non-finite value, deterministic), ``checked``, ``failed``, ``kinks``,
        ``deterministic``, ``f0_spread`` (max − min of the repeated f(x)), ``value`` (f(x)),
        ``noise`` (measured σ of f), ``nonfinite`` and where: ``nonfinite_index`` (flat
        element or -1), ``nonfinite_direction`` (-1 or direction row), ``nonfinite_offset``
        (offset in units of h; 0 is f(x); NaN: the analytic value), ``evaluations`` (f
        evaluations used), ``located`` (locate mode: flat indices found, -1 padded).
    Metadata (static): ``caller``, ``kind`` ("grad", "jvp", "vjp"), ``mode``, ``method``,
        ``order``, ``dtype``, ``margin``, ``leaf_names`` (key paths), ``leaf_shapes``.

    Examples:
        >>> import jax.numpy as jnp, fdjax
        >>> r = fdjax.check_grad(lambda p: jnp.sum(jnp.sin(p["w"])), {"w": jnp.arange(3.0)})
        >>> bool(r.passed), r.leaf_names
        (True, ("['w']",))
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
    dir_analytic: Any
    dir_numeric: Any
    dir_abs_error: Any
    dir_rel_error: Any
    dir_tolerance: Any
    dir_step: Any
    dir_slope_plus: Any
    dir_slope_minus: Any
    dir_subgradient: Any
    dir_status: Any
    dir_kind: Any
    dir_leaf: Any
    dir_lo: Any
    dir_hi: Any
    leaf_norm_ratio: Any
    leaf_max_rel_error: Any
    leaf_digits: Any
    leaf_sign_agreement: Any
    leaf_passed: Any
    leaf_checked: Any
    leaf_failed: Any
    leaf_kinks: Any
    norm_ratio: Any
    max_rel_error: Any
    digits: Any
    sign_agreement: Any
    passed: Any
    checked: Any
    failed: Any
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

    def leaves(self, field: str = "status") -> dict[str, np.ndarray]:
        """A per-element field split into leaves: ``{leaf name: array of the leaf's shape}``.

        Examples:
            >>> import jax.numpy as jnp, fdjax
            >>> r = fdjax.check_grad(lambda p: jnp.sum(p["w"] ** 2), {"w": jnp.ones((2, 2))})
            >>> r.leaves("analytic")["['w']"].tolist()
            [[2.0, 2.0], [2.0, 2.0]]
        """
        if field not in ELEMENT_FIELDS:
            raise ValueError(
                f"GradCheck.leaves(field=...) must be one of {list(ELEMENT_FIELDS)}, got {field!r}"
            )
        arr = self._host(getattr(self, field))
        return {
            name: arr[start : start + math.prod(shape)].reshape(shape)
            for name, shape, start in zip(self.leaf_names, self.leaf_shapes, self.leaf_starts, strict=False)
        }

    def _host(self, a) -> np.ndarray:
        if isinstance(a, jax.core.Tracer):
            raise TypeError(
                f"{self.caller}: the GradCheck holds traced values (inside jax.jit); return it "
                "from the jitted function and format it outside"
            )
        return np.asarray(a)

    # ----------------------------------------------------------------------------------
    # Formatting (outside jit)

    def __str__(self) -> str:
        if any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(self)):
            return f"GradCheck(<traced>, mode={self.mode!r}, leaves={len(self.leaf_names)})"
        return self.summary()

    def summary(self, max_rows: int = 10) -> str:
        """A readable table: header, one line per leaf, the worst elements and directions.

        Args:
            max_rows: how many elements (and directions) to list, worst first.
        """
        return _format.summary(self, max_rows)

    def to_dict(self, max_elements: int | None = None) -> dict:
        """A JSON-ready dict: metadata, overall figures, leaves, checked elements, directions.

        Args:
            max_elements: keep only this many checked elements (the worst by
                difference/tolerance); None keeps all of them.
        """
        return _format.to_dict(self, max_elements)


jax.tree_util.register_dataclass(
    GradCheck,
    data_fields=list(ELEMENT_FIELDS + DIRECTION_FIELDS + LEAF_FIELDS + OVERALL_FIELDS),
    meta_fields=list(META_FIELDS),
)
