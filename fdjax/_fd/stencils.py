"""Finite-difference stencils: offsets, weights, order and leading error constant."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from collections.abc import Sequence


Number = int | float | Fraction


def fornberg_weights(offsets: Sequence[Number], derivative: int = 1) -> tuple[Fraction, ...]:
    """Weights w_k with f^(d)(x) ≈ Σ w_k f(x + s_k h) / h^d (Fornberg, 1988).

    Exact rational arithmetic: integer or rational offsets give exact weights.

    Args:
        offsets: distinct stencil offsets s_k (in units of h).
        derivative: order d of the derivative, ``0 <= d < len(offsets)``.

    Returns:
        The weights, one per offset, as ``fractions.Fraction``.

    Raises:
        ValueError: on repeated offsets or a derivative order the offsets cannot reach.

    Examples:
        >>> [str(w) for w in fornberg_weights([-1, 0, 1], 2)]
        ['1', '-2', '1']
    """
    s = [Fraction(o) for o in offsets]
    n = len(s)
    if len(set(s)) != n:
        raise ValueError(f"fdjax.fornberg_weights(offsets=...) must be distinct, got {list(offsets)}")
    if not 0 <= derivative < n:
        raise ValueError(
            f"fdjax.fornberg_weights(derivative=...) must be in [0, {n - 1}] for {n} offsets, "
            f"got {derivative}"
        )
    m = derivative
    # c[k][j]: weight of node j for the k-th derivative using the nodes seen so far (x0 = 0).
    c = [[Fraction(0)] * n for _ in range(m + 1)]
    c[0][0] = Fraction(1)
    c1 = Fraction(1)
    for i in range(1, n):
        c2 = Fraction(1)
        for j in range(i):
            c3 = s[i] - s[j]
            c2 *= c3
            for k in range(min(i, m), -1, -1):
                prev = c[k - 1][i - 1] if k > 0 else Fraction(0)
                c[k][i] = c1 * (k * prev - s[i - 1] * c[k][i - 1]) / c2
            for k in range(min(i, m), -1, -1):
                prev = c[k - 1][j] if k > 0 else Fraction(0)
                c[k][j] = (s[i] * c[k][j] - k * prev) / c3
        c1 = c2
    return tuple(c[m])


def _error_terms(
    offsets: Sequence[Fraction], weights: Sequence[Fraction], derivative: int
) -> tuple[int, Fraction]:
    """First nonzero term of the Taylor remainder: (accuracy order p, constant C).

    Σ w_k f(x + s_k h)/h^d − f^(d)(x) = C h^p f^(d+p)(x) + O(h^(p+1)).
    """
    for m in range(derivative + 1, derivative + 40):
        moment = sum((w * s**m for s, w in zip(offsets, weights)), Fraction(0)) / math.factorial(m)
        if moment != 0:
            return m - derivative, moment
    raise ValueError("stencil is exact for all polynomials tried")  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class Stencil:
    """A finite-difference stencil: D ≈ Σ_k w_k f(x + s_k h) / h^d.

    Frozen and hashable, so it can be a static argument of a jitted function.

    Attributes:
        name: short name (``"central"``, ``"forward"``, ...).
        offsets: nonzero offsets s_k, in units of h (f(x) itself is evaluated once, separately).
        weights: the weight of each offset.
        center_weight: the weight of f(x) (offset 0); zero for central stencils.
        derivative: order d of the derivative approximated.
        accuracy: order p of the truncation error, O(h^p).
        error_constant: C in the truncation error C·h^p·f^(d+p)(x).
        complex_step: True for the complex step Im f(x + i·h)/h (then ``offsets == (1,)``).

    Examples:
        >>> Stencil.from_offsets([-2, -1, 1, 2]).weights
        (0.08333333333333333, -0.6666666666666666, 0.6666666666666666, -0.08333333333333333)
    """

    name: str
    offsets: tuple[float, ...]
    weights: tuple[float, ...]
    center_weight: float
    derivative: int
    accuracy: int
    error_constant: float
    complex_step: bool = False

    @classmethod
    def from_offsets(cls, offsets: Sequence[Number], derivative: int = 1, name: str | None = None) -> Stencil:
        """Build a stencil for any distinct offsets with Fornberg's weights.

        Args:
            offsets: distinct offsets in units of h; 0 may be included.
            derivative: derivative order d.
            name: optional name; defaults to ``"offsets(...)"``.
        """
        offsets = list(offsets)
        if derivative < 1:
            raise ValueError(f"fdjax.Stencil.from_offsets(derivative=...) must be >= 1, got {derivative}")
        weights = fornberg_weights(offsets, derivative)
        fr = [Fraction(o) for o in offsets]
        accuracy, const = _error_terms(fr, weights, derivative)
        center = sum((w for s, w in zip(fr, weights) if s == 0), Fraction(0))
        pairs = [(s, w) for s, w in zip(fr, weights) if s != 0 and w != 0]
        if name is None:
            name = "offsets(" + ",".join(str(o) for o in offsets) + ")"
        return cls(
            name=name,
            offsets=tuple(float(s) for s, _ in pairs),
            weights=tuple(float(w) for _, w in pairs),
            center_weight=float(center),
            derivative=derivative,
            accuracy=accuracy,
            error_constant=float(const),
            complex_step=False,
        )

    @property
    def uses_center(self) -> bool:
        """Whether f(x) enters the estimate (forward/backward stencils)."""
        return self.center_weight != 0.0

    @property
    def one_sided(self) -> bool:
        return all(s > 0 for s in self.offsets) or all(s < 0 for s in self.offsets)

    def default_step(self, eps: float) -> float:
        """Relative step balancing truncation and round-off: eps^(1/(p+d)).

        cbrt(eps) for the 2nd-order central first derivative, sqrt(eps) for forward/backward.
        The complex step has no subtractive cancellation; its step is tiny (eps²).
        """
        if self.complex_step:
            return eps**2
        return eps ** (1.0 / (self.accuracy + self.derivative))


def _complex_step() -> Stencil:
    return Stencil(
        name="complex",
        offsets=(1.0,),
        weights=(1.0,),
        center_weight=0.0,
        derivative=1,
        accuracy=2,
        error_constant=-1.0 / 6.0,
        complex_step=True,
    )


METHODS: dict[str, Stencil] = {
    "forward": Stencil.from_offsets([0, 1], name="forward"),
    "backward": Stencil.from_offsets([-1, 0], name="backward"),
    "central": Stencil.from_offsets([-1, 1], name="central"),
    "central4": Stencil.from_offsets([-2, -1, 1, 2], name="central4"),
    "central6": Stencil.from_offsets([-3, -2, -1, 1, 2, 3], name="central6"),
    "complex": _complex_step(),
}


def get_stencil(method: str | Stencil, caller: str = "fdjax", first_derivative: bool = False) -> Stencil:
    """Resolve ``method`` (a name in ``METHODS`` or a ``Stencil``) with a clear error; with
    ``first_derivative`` it must be a stencil of the first derivative."""
    if isinstance(method, Stencil):
        stencil = method
    elif isinstance(method, str) and method in METHODS:
        stencil = METHODS[method]
    else:
        raise ValueError(
            f"{caller}(method=...) must be one of {sorted(METHODS)} or an fdjax.Stencil, got {method!r}"
        )
    if first_derivative and stencil.derivative != 1:
        raise ValueError(
            f"{caller}(method=...) must be a first-derivative stencil, got derivative order "
            f"{stencil.derivative}"
        )
    return stencil
