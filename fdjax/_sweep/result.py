"""``StepSweep``: the result of ``fdjax.sweep``, a pytree of arrays with host-side views."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from . import format as _sweep_format
from .._fd import Status


@dataclasses.dataclass(frozen=True)
class Layout:
    """Static description of the differentiated argument(s): enough to rebuild pytrees."""

    treedef: Any
    is_float: tuple[bool, ...]
    shapes: tuple[tuple[int, ...], ...]  # every leaf
    paths: tuple[str, ...]  # float leaves, ravel order
    single: bool
    size: int

    @classmethod
    def of(cls, fa) -> Layout:
        return cls(
            fa.treedef,
            fa.is_float,
            tuple(tuple(np.shape(v)) for v in fa.leaves),
            fa.float_paths,
            len(fa.argnums) == 1 and fa._single,
            fa.size,
        )

    def name(self, i: int) -> str:
        """'params['w'][2, 3]'-style name of flat coordinate i."""
        start = 0
        float_shapes = [s for s, f in zip(self.shapes, self.is_float, strict=True) if f]
        for path, shape in zip(self.paths, float_shapes, strict=True):
            size = math.prod(shape)
            if i < start + size:
                if not shape:
                    return path
                return f"{path}[{', '.join(str(int(j)) for j in np.unravel_index(i - start, shape))}]"
            start += size
        raise IndexError(i)

    def tree(self, flat: np.ndarray):
        """A flat [N] vector back to the argument's structure (integer leaves: float0 zeros)."""
        leaves, start = [], 0
        for f, shape in zip(self.is_float, self.shapes, strict=True):
            if f:
                n = math.prod(shape)
                leaves.append(np.asarray(flat[start : start + n]).reshape(shape))
                start += n
            else:
                leaves.append(np.zeros(shape, dtype=jax.dtypes.float0))
        tree = jax.tree_util.tree_unflatten(self.treedef, leaves)
        return tree[0] if self.single else tree


_PER_PARAMETER = (
    "step",
    "estimate",
    "error_estimate",
    "order",
    "status",
    "level",
    "noise",
    "reference",
    "true_error",
)


@dataclasses.dataclass(frozen=True)
class StepSweep:
    """The result of ``fdjax.sweep``: a pytree of arrays (passes through ``jax.jit``).

    M parameters (coordinates, or directions) were checked on a ladder of K steps.

    Attributes:
        index: [M] flat coordinate (or direction number) of each row.
        steps: [M, K] the steps h_k actually taken.
        estimates: [M, K] the FD estimate D_k at each step.
        differences: [M, K] Δ_k = D_k − D_{k+1} (NaN for the last step).
        orders: [M, K] observed order p_k = log2|Δ_{k−1}/Δ_k| / log2(h_{k−1}/h_k), where both
            differences exceed the noise (else NaN).
        roundoff: [M, K] ρ_k, the round-off bound of D_k.
        significant: [M, K] Δ_k exceeds the noise of D_k and D_{k+1}.
        true_errors: [M, K] |D_k − reference| (None without ``reference``).
        step: [M] the chosen step h* (the smallest step entering the chosen estimate).
        estimate: [M] the best estimate (plain or Richardson, whichever has the smaller
            estimated error).
        error_estimate: [M] its error estimate (truncation + round-off bound).
        order: [M] observed order p̂ over the last asymptotic window (NaN if none).
        status: [M] ``fdjax.Status`` bit flags (int32).
        level: [M] Richardson level of the estimate (0: plain; ℓ: order p + ℓ·q).
        noise: [M] measured noise bound of the weighted sum of function values (0 when
            not measurable; the eps·|f| model is used then).
        slopes: [M, 2] one-sided slopes ((f(x) − f(x−h))/h, (f(x+h) − f(x))/h) at the
            kink-test step (NaN for stencils without both ±h).
        reference: [M] the reference derivative (None without ``reference``).
        true_error: [M] |estimate − reference| (None without ``reference``).
        method: stencil name; kind: ``"coordinates"`` or ``"directions"``.
        relative_steps: the relative ladder (h_k = relative_steps[k]·max(|x_i|, scale);
            ``steps`` has the steps taken, stretched near 0 for the default ladder).
        evaluations: function evaluations made (perturbed points plus f(x)).
        precision: what ran (``precision=`` of ``fdjax.sweep``): ``"native"``,
            ``"float32 (bfloat16 leaves cast up)"`` or ``"float64"``.
    """

    index: jax.Array
    steps: jax.Array
    estimates: jax.Array
    differences: jax.Array
    orders: jax.Array
    roundoff: jax.Array
    significant: jax.Array
    true_errors: jax.Array | None
    step: jax.Array
    estimate: jax.Array
    error_estimate: jax.Array
    order: jax.Array
    status: jax.Array
    level: jax.Array
    noise: jax.Array
    slopes: jax.Array
    reference: jax.Array | None
    true_error: jax.Array | None
    method: str = "central"
    kind: str = "coordinates"
    relative_steps: tuple[float, ...] = ()
    evaluations: int = 0
    layout: Layout | None = None
    precision: str = "native"

    # ---- reading the result (outside jit)

    def __len__(self) -> int:
        return int(np.shape(self.index)[0])

    @property
    def names(self) -> list[str]:
        """A readable name per row: ``"x[3]"``, ``"params['w'][0, 1]"`` or ``"direction 2"``."""
        idx = np.asarray(self.index)
        if self.kind == "directions" or self.layout is None:
            return [f"direction {int(i)}" for i in idx]
        return [self.layout.name(int(i)) for i in idx]

    def flags(self, i: int) -> Status:
        """The ``Status`` flags of row i."""
        return Status(int(np.asarray(self.status)[i]))

    @property
    def ok(self) -> np.ndarray:
        """[M] bool: a trusted estimate (CONVERGED) and no KINK."""
        s = np.asarray(self.status)
        return (s & Status.CONVERGED).astype(bool) & ~(s & Status.KINK).astype(bool)

    def to_tree(self, field: str = "estimate"):
        """A per-parameter field laid out like the differentiated argument(s).

        Coordinates not in the sweep are NaN (0 for ``status``/``level``); integer leaves are
        float0 zeros, as in ``jax.grad(..., allow_int=True)``.

        Args:
            field: one of ``"estimate"``, ``"error_estimate"``, ``"step"``, ``"status"``,
                ``"order"``, ``"level"``, ``"noise"``, ``"reference"``, ``"true_error"``.
        """
        if field not in _PER_PARAMETER:
            raise ValueError(
                f"StepSweep.to_tree(field=...) must be one of {list(_PER_PARAMETER)}, got {field!r}"
            )
        if self.kind == "directions" or self.layout is None:
            raise ValueError("StepSweep.to_tree: a sweep along directions has no per-coordinate layout")
        values = getattr(self, field)
        if values is None:
            raise ValueError(f"StepSweep.to_tree({field!r}): the sweep was run without reference=")
        values = np.asarray(values)
        fill = 0 if values.dtype.kind in "iu" else np.nan
        flat = np.full(self.layout.size, fill, values.dtype)
        flat[np.asarray(self.index)] = values
        return self.layout.tree(flat)

    def table(self, i: int = 0) -> str:
        """The ladder of row i as a text table: h, D(h), Δ, observed order, ρ, true error."""
        return _sweep_format.ladder_table(self, i)

    def summary(self, max_rows: int = 20) -> str:
        """A per-parameter text table (first ``max_rows`` rows) with status counts."""
        return _sweep_format.summary(self, max_rows)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"StepSweep(method={self.method!r}, {self.kind}={len(self)}, "
            f"steps={len(self.relative_steps)}, evaluations={self.evaluations})"
        )

    def to_dict(self) -> dict:
        """Everything as JSON-ready Python types (NaN/inf become None, flags become names)."""
        return _sweep_format.to_dict(self)


_META = ("method", "kind", "relative_steps", "evaluations", "layout", "precision")
jax.tree_util.register_dataclass(
    StepSweep,
    data_fields=[f.name for f in dataclasses.fields(StepSweep) if f.name not in _META],
    meta_fields=list(_META),
)
