"""The single-parameter calculator: θ, J(θ), ε, J(θ±ε) → the FD gradient, as a worked example.

The arithmetic is exact decimal arithmetic on the numbers as written (``0.188999`` is the
decimal 0.188999, not the nearest binary float), so the steps print as a person would write
them: ``(0.188999 − 0.186001) / (2 × 0.001) = 0.002998 / 0.002 = 1.499``. The ε table for
J(θ) = θ² is the opposite lesson: it is computed in float64, where round-off is visible.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
from decimal import Decimal
from typing import Any
from collections.abc import Sequence

__all__ = ["calculate", "epsilon_table", "Calculation", "EpsilonTable", "REQUIRED", "LABELS", "FORMULAS"]

Number = int | float | str | Decimal

#: The values each method needs (argument names of ``calculate``).
REQUIRED: dict[str, tuple[str, ...]] = {
    "central": ("loss_plus", "loss_minus"),
    "forward": ("loss", "loss_plus"),
    "backward": ("loss", "loss_minus"),
}

#: How each value is written in a worked example.
LABELS: dict[str, str] = {
    "theta": "θ",
    "loss": "J(θ)",
    "epsilon": "ε",
    "loss_plus": "J(θ+ε)",
    "loss_minus": "J(θ−ε)",
}

#: The formula of each method.
FORMULAS: dict[str, str] = {
    "central": "(J(θ+ε) − J(θ−ε)) / (2ε)",
    "forward": "(J(θ+ε) − J(θ)) / ε",
    "backward": "(J(θ) − J(θ−ε)) / ε",
}

_CONTEXT = decimal.Context(prec=40)
_DISPLAY_DIGITS = 12


def _to_decimal(value: Any, name: str, caller: str) -> Decimal:
    """A finite number as the decimal it is written as (floats via their shortest repr)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{caller}({name}=...) must be a finite number, got {value!r}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip().replace("−", "-"))
        except decimal.InvalidOperation:
            raise ValueError(f"{caller}({name}=...) must be a finite number, got {value!r}") from None
    else:
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{caller}({name}=...) must be a finite number, got {value!r}") from None
        if not math.isfinite(f):
            raise ValueError(f"{caller}({name}=...) must be finite, got {value!r}")
        d = Decimal(repr(f))
    if not d.is_finite():
        raise ValueError(f"{caller}({name}=...) must be finite, got {value!r}")
    return d


def format_decimal(d: Decimal, min_decimals: int = 0) -> str:
    """Plain decimal notation with at most 12 significant digits (scientific when tiny or huge).

    Example:
        >>> format_decimal(Decimal("0.0029980"))
        '0.002998'
        >>> format_decimal(Decimal("2"), min_decimals=2)
        '2.00'
    """
    if d.is_zero():
        return "0" + ("." + "0" * min_decimals if min_decimals else "")
    d = _CONTEXT.plus(d)
    if d.adjusted() >= _DISPLAY_DIGITS:
        d = d.quantize(Decimal(1).scaleb(d.adjusted() - _DISPLAY_DIGITS + 1), context=_CONTEXT)
    else:
        d = d.quantize(Decimal(1).scaleb(min(d.adjusted() - _DISPLAY_DIGITS + 1, 0)), context=_CONTEXT)
    d = d.normalize(_CONTEXT)
    if d.adjusted() < -6 or d.adjusted() >= 15:
        return f"{d:E}".replace("E+", "e").replace("E-", "e-")
    text = f"{d:f}"
    decimals = len(text.partition(".")[2])
    if decimals < min_decimals:
        text = (text if "." in text else text + ".") + "0" * (min_decimals - decimals)
    return text


def _paren(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


@dataclasses.dataclass(frozen=True)
class Calculation:
    """The result of ``fdjax.calculate``: every number of the worked example.

    Attributes:
        method: ``"central"``, ``"forward"`` or ``"backward"``.
        theta, loss, loss_plus, loss_minus: the inputs θ, J(θ), J(θ+ε), J(θ−ε) (None when
            not given).
        epsilon: the step ε.
        theta_plus, theta_minus: θ+ε and θ−ε (None when θ was not given).
        numerator, denominator: the difference of losses and the step it is divided by.
        gradient: numerator / denominator.
        formula: the method's formula in symbols.
        worked: the formula with the numbers substituted, as one line.
        others: the gradient by every other method the given values allow.
    """

    method: str
    theta: float | None
    epsilon: float
    loss: float | None
    loss_plus: float | None
    loss_minus: float | None
    theta_plus: float | None
    theta_minus: float | None
    numerator: float
    denominator: float
    gradient: float
    formula: str
    worked: str
    text: dict[str, str]
    others: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: every number as a float, plus the display strings."""
        return {
            "method": self.method,
            "theta": self.theta,
            "epsilon": self.epsilon,
            "loss": self.loss,
            "loss_plus": self.loss_plus,
            "loss_minus": self.loss_minus,
            "theta_plus": self.theta_plus,
            "theta_minus": self.theta_minus,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "gradient": self.gradient,
            "formula": self.formula,
            "worked": self.worked,
            "text": dict(self.text),
            "others": dict(self.others),
        }

    def summary(self) -> str:
        """The worked example, one quantity per line."""
        t = self.text
        lines = [f"method       {self.method}", f"formula      dJ/dθ ≈ {self.formula}"]
        for key in ("theta", "epsilon", "theta_plus", "theta_minus", "loss", "loss_plus", "loss_minus"):
            if key in t:
                label = {"theta_plus": "θ+ε", "theta_minus": "θ−ε"}.get(key, LABELS.get(key, key))
                lines.append(f"{label:<12} {t[key]}")
        lines += [
            f"numerator    {t['numerator']}",
            f"denominator  {t['denominator']}",
            f"gradient     {self.worked}",
        ]
        if self.others:
            also = ", ".join(f"{m} {t['others'][m]}" for m in self.others)
            lines.append(f"other methods {also}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _difference(method: str, v: dict[str, Decimal]) -> tuple[Decimal, Decimal, str, str]:
    """numerator, denominator and their written forms for one method."""
    f = {k: format_decimal(d) for k, d in v.items()}
    eps = v["epsilon"]
    if method == "central":
        num = _CONTEXT.subtract(v["loss_plus"], v["loss_minus"])
        return num, 2 * eps, f"{f['loss_plus']} − {_paren(f['loss_minus'])}", f"2 × {f['epsilon']}"
    if method == "forward":
        num = _CONTEXT.subtract(v["loss_plus"], v["loss"])
        return num, eps, f"{f['loss_plus']} − {_paren(f['loss'])}", f["epsilon"]
    num = _CONTEXT.subtract(v["loss"], v["loss_minus"])
    return num, eps, f"{f['loss']} − {_paren(f['loss_minus'])}", f["epsilon"]


def calculate(
    theta: Number | None = None,
    *,
    epsilon: Number,
    loss: Number | None = None,
    loss_plus: Number | None = None,
    loss_minus: Number | None = None,
    method: str = "central",
) -> Calculation:
    """The FD gradient of one parameter from loss values, shown as a worked example.

    central: (J(θ+ε) − J(θ−ε)) / (2ε); forward: (J(θ+ε) − J(θ)) / ε;
    backward: (J(θ) − J(θ−ε)) / ε. Numbers are taken as the decimals they are written as
    (strings are exact; floats through their shortest repr) and the arithmetic is exact
    decimal arithmetic, so ``gradient`` is the decimal result rounded once to a float.

    Args:
        theta: the parameter θ (optional; only used to show θ+ε and θ−ε).
        epsilon: the step ε; positive and finite.
        loss: J(θ); needed by forward and backward.
        loss_plus: J(θ+ε); needed by central and forward.
        loss_minus: J(θ−ε); needed by central and backward.
        method: ``"central"`` (default), ``"forward"`` or ``"backward"``.

    Returns:
        A ``Calculation`` with the gradient, θ±ε, numerator, denominator and formula.

    Raises:
        ValueError: unknown method, ε not positive and finite, a value the method needs is
            missing (each missing value is named), or a value is not finite.
        TypeError: a value is not a number.

    Example:
        >>> import fdjax
        >>> c = fdjax.calculate(0.75, epsilon=0.001, loss_plus=0.188999, loss_minus=0.186001)
        >>> c.gradient
        1.499
        >>> print(c.worked)
        (0.188999 − 0.186001) / (2 × 0.001) = 0.002998 / 0.002 = 1.499
    """
    caller = "fdjax.calculate"
    if method not in REQUIRED:
        raise ValueError(f"{caller}(method=...) must be one of {sorted(REQUIRED)}, got {method!r}")
    given = {"theta": theta, "loss": loss, "loss_plus": loss_plus, "loss_minus": loss_minus}
    missing = [name for name in REQUIRED[method] if given[name] is None]
    if missing:
        need = " and ".join(f"{LABELS[n]} ({n}=...)" for n in REQUIRED[method])
        miss = ", ".join(f"{LABELS[n]} ({n}=...)" for n in missing)
        raise ValueError(f"{caller}(method={method!r}) needs {need}; missing: {miss}")
    eps = _to_decimal(epsilon, "epsilon", caller)
    if eps <= 0:
        raise ValueError(f"{caller}(epsilon=...) must be positive and finite, got {epsilon!r}")
    v = {"epsilon": eps}
    for name, value in given.items():
        if value is not None:
            v[name] = _to_decimal(value, name, caller)

    text = {k: format_decimal(d) for k, d in v.items()}
    if "theta" in v:
        v["theta_plus"] = _CONTEXT.add(v["theta"], eps)
        v["theta_minus"] = _CONTEXT.subtract(v["theta"], eps)
        text["theta_plus"] = format_decimal(v["theta_plus"])
        text["theta_minus"] = format_decimal(v["theta_minus"])

    num, den, num_text, den_text = _difference(method, v)
    grad = _CONTEXT.divide(num, den)
    text["numerator"] = format_decimal(num)
    text["denominator"] = format_decimal(den)
    text["gradient"] = format_decimal(grad, min_decimals=2)
    den_shown = f"({den_text})" if " " in den_text else den_text
    worked = f"({num_text}) / {den_shown} = {text['numerator']} / {text['denominator']} = {text['gradient']}"

    others, others_text = {}, {}
    for m, needs in REQUIRED.items():
        if m != method and all(n in v for n in needs):
            n2, d2, _, _ = _difference(m, v)
            g2 = _CONTEXT.divide(n2, d2)
            others[m] = float(g2)
            others_text[m] = format_decimal(g2, min_decimals=2)
    text["others"] = others_text  # type: ignore[assignment]

    def opt(name):
        return float(v[name]) if name in v else None

    return Calculation(
        method=method,
        theta=opt("theta"),
        epsilon=float(eps),
        loss=opt("loss"),
        loss_plus=opt("loss_plus"),
        loss_minus=opt("loss_minus"),
        theta_plus=opt("theta_plus"),
        theta_minus=opt("theta_minus"),
        numerator=float(num),
        denominator=float(den),
        gradient=float(grad),
        formula=FORMULAS[method],
        worked=worked,
        text=text,
        others=others,
    )


#: ε of the classic table: 1e-1 … 1e-7.
DEFAULT_EPSILONS: tuple[float, ...] = tuple(10.0**-k for k in range(1, 8))


@dataclasses.dataclass(frozen=True)
class EpsilonTable:
    """Central differences of J(θ) = θ² at one θ for a range of ε, in float64.

    Attributes:
        theta: the point θ.
        true_gradient: 2θ.
        rows: one dict per ε with ``epsilon``, ``loss_minus``, ``loss``, ``loss_plus``,
            ``central``, ``true_gradient`` and ``abs_error`` (|central − 2θ|).
    """

    theta: float
    true_gradient: float
    rows: tuple[dict[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "function": "J(θ) = θ²",
            "theta": self.theta,
            "true_gradient": self.true_gradient,
            "rows": [dict(r) for r in self.rows],
        }

    def summary(self) -> str:
        """The table as aligned text."""
        cols = ("J(θ−ε)", "J(θ)", "J(θ+ε)", "central")
        head = f"{'ε':>8}  " + "  ".join(f"{c:>20}" for c in cols) + f"  {'2θ':>8}  {'|error|':>9}"
        lines = [f"J(θ) = θ² at θ = {self.theta:g} (float64)", head]
        for r in self.rows:
            lines.append(
                f"{r['epsilon']:>8.0e}  {r['loss_minus']:>20.15g}  {r['loss']:>20.15g}  "
                f"{r['loss_plus']:>20.15g}"
                f"  {r['central']:>20.15g}  {r['true_gradient']:>8g}  {r['abs_error']:>9.2e}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def epsilon_table(theta: Number, epsilons: Sequence[Number] | None = None) -> EpsilonTable:
    """The classic ε table for J(θ) = θ²: central estimates against the true gradient 2θ.

    Computed in float64, so the smallest steps show round-off (the estimate's error stops
    shrinking and grows again).

    Args:
        theta: the point θ; finite.
        epsilons: the steps; default 1e-1, 1e-2, …, 1e-7. Each positive and finite.

    Returns:
        An ``EpsilonTable``.

    Raises:
        ValueError: θ not finite, an ε not positive and finite, or no ε given.

    Example:
        >>> import fdjax
        >>> t = fdjax.epsilon_table(1.0, [0.1, 0.01])
        >>> [round(r["central"], 12) for r in t.rows]
        [2.0, 2.0]
    """
    caller = "fdjax.epsilon_table"
    th = float(_to_decimal(theta, "theta", caller))
    eps_list = DEFAULT_EPSILONS if epsilons is None else tuple(epsilons)
    if not eps_list:
        raise ValueError(f"{caller}(epsilons=...) must contain at least one step, got {epsilons!r}")
    rows = []
    for e in eps_list:
        ed = _to_decimal(e, "epsilons", caller)
        if ed <= 0:
            raise ValueError(f"{caller}(epsilons=...) must all be positive and finite, got {e!r}")
        eps = float(ed)
        jm, j, jp = (th - eps) ** 2, th**2, (th + eps) ** 2
        central = (jp - jm) / (2 * eps)
        rows.append(
            {
                "epsilon": eps,
                "loss_minus": jm,
                "loss": j,
                "loss_plus": jp,
                "central": central,
                "true_gradient": 2 * th,
                "abs_error": abs(central - 2 * th),
            }
        )
    return EpsilonTable(theta=th, true_gradient=2 * th, rows=tuple(rows))
