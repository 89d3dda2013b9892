"""The outcomes a check records, one enumeration each (stored in results as small ints)."""

from __future__ import annotations

import enum


class CheckStatus(enum.IntEnum):
    """The outcome of one measurement of a check: an element or a direction.

    ``GradCheck.elements.status`` and ``GradCheck.directions.status`` hold these codes (int8 arrays, so
    the result passes through ``jax.jit``); ``CheckStatus(code)`` names one, ``.label`` is
    its spelling in reports and JSON and ``.describe()`` says what it means.
    """

    UNCHECKED = 0
    PASS = 1
    FAIL = 2
    KINK = 3
    NONFINITE = 4

    @property
    def label(self) -> str:
        """The spelling in tables and JSON: ``"pass"``, ``"fail"``, ``"nonfinite"``, ..."""
        return self.name.lower()

    def describe(self) -> str:
        """One sentence: what this outcome means."""
        return _STATUS_MESSAGES[self]


_STATUS_MESSAGES = {
    CheckStatus.UNCHECKED: "not measured (outside the subset, or not reached by bisection)",
    CheckStatus.PASS: "AD and finite differences agree within the error model's tolerance",
    CheckStatus.FAIL: "AD and finite differences disagree beyond the error model's tolerance",
    CheckStatus.KINK: "f is not smooth at the step's scale (one-sided slopes differ); left out",
    CheckStatus.NONFINITE: "f or the analytic derivative was NaN/inf where the measurement needed it",
}


class DirectionKind(enum.IntEnum):
    """What a direction of a directional check points along (``GradCheck.directions.kind``)."""

    RANDOM = 0
    RANDOM_LEAF = 1
    GRADIENT_LEAF = 2
    TANGENT = 3

    @property
    def label(self) -> str:
        """The spelling in tables and JSON: ``"random"``, ``"random (leaf)"``, ..."""
        return _KIND_LABELS[self]

    def describe(self) -> str:
        """One sentence: what this direction is."""
        return _KIND_MESSAGES[self]


_KIND_LABELS = {
    DirectionKind.RANDOM: "random",
    DirectionKind.RANDOM_LEAF: "random (leaf)",
    DirectionKind.GRADIENT_LEAF: "gradient (leaf)",
    DirectionKind.TANGENT: "tangent",
}
_KIND_MESSAGES = {
    DirectionKind.RANDOM: "a random direction over every differentiated coordinate",
    DirectionKind.RANDOM_LEAF: "a random direction restricted to one pytree leaf",
    DirectionKind.GRADIENT_LEAF: "along the analytic gradient, restricted to one leaf",
    DirectionKind.TANGENT: "the tangent the caller passed (check_jvp)",
}
