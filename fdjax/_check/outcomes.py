"""The outcomes a check records, one enumeration each (stored in results as small ints).

Every measurement (an element, a direction), every leaf and the check as a whole ends in
one of three outcomes, ``CheckStatus.PASS``, ``FAIL`` or ``INCONCLUSIVE``; an inconclusive
one carries a ``Reason``. ``UNCHECKED`` marks what a mode did not measure.
"""

from __future__ import annotations

import enum


class CheckStatus(enum.IntEnum):
    """The outcome of a check, of a leaf, or of one measurement (an element or a direction).

    ``GradCheck.status``, ``GradCheck.leaves.status``, ``GradCheck.elements.status`` and
    ``GradCheck.directions.status`` hold these codes (int8 arrays, so the result passes
    through ``jax.jit``); ``CheckStatus(code)`` names one, ``.label`` is its spelling in
    reports and JSON and ``.describe()`` says what it means. An ``INCONCLUSIVE`` outcome has
    a ``Reason`` beside it.
    """

    UNCHECKED = 0
    PASS = 1
    FAIL = 2
    INCONCLUSIVE = 3

    @property
    def label(self) -> str:
        """The spelling in tables and JSON: ``"pass"``, ``"fail"``, ``"inconclusive"``, ..."""
        return self.name.lower()

    def describe(self) -> str:
        """One sentence: what this outcome means."""
        return _STATUS_MESSAGES[self]


_STATUS_MESSAGES = {
    CheckStatus.UNCHECKED: "not measured (outside the subset, or not reached by bisection)",
    CheckStatus.PASS: "AD and finite differences agree within the error model's tolerance, and the "
    "tolerance is smaller than the values compared",
    CheckStatus.FAIL: "AD and finite differences disagree beyond the error model's tolerance",
    CheckStatus.INCONCLUSIVE: "finite differences could not decide (the reason says why)",
}


class Reason(enum.IntEnum):
    """Why a measurement, a leaf or a check is ``INCONCLUSIVE`` (``NONE`` otherwise).

    Stored beside the status (``GradCheck.reason``, ``leaves.reason``, ``elements.reason``,
    ``directions.reason``); ``.label`` is the spelling in reports and JSON, ``.describe()``
    one sentence, ``.remedy()`` what would resolve it.
    """

    NONE = 0
    UNRESOLVED = 1
    KINK = 2
    NONFINITE = 3
    NONDETERMINISTIC = 4
    NOT_MEASURED = 5

    @property
    def label(self) -> str:
        """The spelling in tables and JSON: ``"unresolved"``, ``"kink"``, ..."""
        return self.name.lower()

    def describe(self) -> str:
        """One sentence: why the outcome is inconclusive."""
        return _REASON_MESSAGES[self][0]

    def remedy(self) -> str:
        """One sentence: what would resolve it."""
        return _REASON_MESSAGES[self][1]


_REASON_MESSAGES = {
    Reason.NONE: ("", ""),
    Reason.UNRESOLVED: (
        "below finite-difference resolution: at every step tried the tolerance was as large as "
        "the values compared, or a disagreement seen at one step was not confirmed at another",
        "check in higher precision (precision='float64'), or rescale the parameters or the loss",
    ),
    Reason.KINK: (
        "f is not smooth at any step tried (the one-sided slopes differ, or f's slope varies inside the "
        "step): only a subgradient, or the mean slope over the step, can be checked",
        "check at a point away from the kink (ReLU at 0, max ties, clip bounds), or in float64 where a "
        "smaller step resolves f",
    ),
    Reason.NONFINITE: (
        "f was NaN/inf at the perturbed points of every step tried",
        "check at a point inside f's domain, or pass a smaller step=",
    ),
    Reason.NONDETERMINISTIC: (
        "f returned different values for the same input in the same program",
        "fix the random key (or pass deterministic=True / inference mode) so that f is a function",
    ),
    Reason.NOT_MEASURED: (
        "nothing was measured here (outside the subset, or every direction was empty)",
        "use mode='full' or a larger k=",
    ),
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
