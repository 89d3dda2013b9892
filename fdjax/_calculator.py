"""The single-parameter calculator: θ, J(θ), ε, J(θ±ε) → the FD gradient, as a worked example.

The arithmetic is exact decimal arithmetic on the numbers as written (``0.188999`` is the
decimal 0.188999, not the nearest binary float), so the steps print as a person would write
them: ``(0.188999 − 0.186001) / (2 × 0.001) = 0.002998 / 0.002 = 1.499``. The step a float64
program takes is another matter: ``(θ+ε) − θ`` in float64 is shown beside ε, and a step that
float64 loses or distorts is refused or warned about. The ε table for J(θ) = θ² is computed
in float64 throughout, where round-off is visible.

Every message and warning refers to an argument as ``NAME=...`` (``fdjax.calculate(NAME=...)``
as its subject) and to the method as ``fdjax.calculate(method='...')``; ``rename_arguments``
rewrites those references for a front end with other names (the command line's flags).

This module is pure Python (``decimal``, ``math``): ``fdjax calc`` needs no JAX.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

Number = int | float | str | Decimal

#: The loss values each method needs (argument names of ``calculate``); ε is always needed.
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

#: The points θ±ε each method evaluates.
_SIDES: dict[str, tuple[str, ...]] = {
    "central": ("plus", "minus"),
    "forward": ("plus",),
    "backward": ("minus",),
}
#: The losses each method subtracts, J_a − J_b.
_OPERANDS: dict[str, tuple[str, str]] = {
    "central": ("loss_plus", "loss_minus"),
    "forward": ("loss_plus", "loss"),
    "backward": ("loss", "loss_minus"),
}
_STEP_EXPR = {"plus": "(θ+ε) − θ", "minus": "θ − (θ−ε)"}

#: A float64 step further than this (relative) from ε is warned about.
STEP_RTOL = 1e-3

#: Schemas of the calculator's JSON documents (see ``fdjax._json`` for the others).
CALCULATION_SCHEMA = "fdjax.calculation/1"
EPSILON_TABLE_SCHEMA = "fdjax.epsilon-table/1"

_CONTEXT = decimal.Context(prec=40)  # division
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)  # + and −
_FLOAT_MAX = Decimal(repr(sys.float_info.max))
_FLOAT_TINY = Decimal("5e-324")
_MIN_DIGITS, _MAX_DIGITS = 3, 12


class CalculationWarning(UserWarning):
    """An input of ``fdjax.calculate`` that does not do what it seems to: a loss value the
    method does not use, or a step ε that float64 arithmetic at θ changes."""


def rename_arguments(text: str, names: Mapping[str, str]) -> str:
    """Rewrite this module's argument references (``fdjax.calculate(NAME=...)``, ``NAME=...``,
    ``fdjax.calculate(method='forward')``) with ``names``, e.g. the command line's flags.

    Examples:
        >>> rename_arguments("fdjax.calculate(epsilon=...) must be positive", {"epsilon": "--eps"})
        '--eps must be positive'
        >>> rename_arguments("fdjax.calculate(method='forward') needs loss=... (J(θ))",
        ...                  {"method": "--method", "loss": "--J"})
        '--method forward needs --J (J(θ))'
    """

    def call(m: re.Match) -> str:
        name, value = m.group(1), m.group(2)
        if name not in names:
            return m.group(0)
        return names[name] if value == "..." else f"{names[name]} {value.strip(chr(39))}"

    text = re.sub(r"fdjax\.\w+\((\w+)=('[^']*'|\.\.\.)\)", call, text)
    return re.sub(r"\b(\w+)=\.\.\.", lambda m: names.get(m.group(1), m.group(0)), text)


def _got(value: Any) -> str:
    """``repr(value)`` for a message, cut at 40 characters."""
    r = repr(value)
    return r if len(r) <= 40 else r[:37] + "..."


def _to_decimal(value: Any, name: str, caller: str) -> Decimal:
    """A float64-range number as the decimal it is written as (floats via their shortest repr)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{caller}({name}=...) must be a finite number, got {_got(value)}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip().replace("−", "-"))
        except decimal.InvalidOperation:
            raise ValueError(f"{caller}({name}=...) must be a finite number, got {_got(value)}") from None
    elif isinstance(value, int):
        d = Decimal(value)
    else:
        try:
            f = float(value)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"{caller}({name}=...) must be a finite number, got {_got(value)}") from None
        if not math.isfinite(f):
            raise ValueError(f"{caller}({name}=...) must be finite, got {_got(value)}")
        r = repr(f)
        d = Decimal(r[:-2] if r.endswith(".0") else r)  # 1.0 is written 1
    if not d.is_finite():
        raise ValueError(f"{caller}({name}=...) must be finite, got {_got(value)}")
    if not d.is_zero() and not _FLOAT_TINY <= d.copy_abs() <= _FLOAT_MAX:
        raise ValueError(
            f"{caller}({name}=...) must be 0 or between 5e-324 and 1.8e308 in magnitude "
            f"(the float64 range), got {_got(value)}"
        )
    return d


def _exact(d: Decimal) -> str:
    """A decimal exactly as it is (trailing zeros kept), plain unless tiny or huge."""
    if d.is_zero():
        d = d.copy_abs()
    if not d.is_zero() and not -6 <= d.adjusted() < 15:
        return f"{d:E}".replace("E+", "e").replace("E-", "e-")
    return f"{d:f}"


def _significant(d: Decimal, digits: int) -> str:
    """A decimal rounded to ``digits`` significant digits, trailing zeros kept.

    Examples:
        >>> [_significant(Decimal(d), n) for d, n in (("2", 3), ("1.4990", 4), ("9.9996", 4))]
        ['2.00', '1.499', '10.00']
        >>> _significant(Decimal("20100000000000"), 3), _significant(Decimal("0.00000012345"), 3)
        ('2.01e13', '1.23e-7')
    """
    if d.is_zero():
        return "0"
    q = d
    for _ in range(2):  # twice: rounding 9.9996 up to 10.00 gains a digit
        q = d.quantize(Decimal(1).scaleb(q.adjusted() - digits + 1), context=_CONTEXT)
    exponent = q.as_tuple().exponent
    assert isinstance(exponent, int)  # quantizing a finite d gives a finite q (or raises)
    if exponent > 0:  # 2.01e13, not 20100000000000
        return f"{q:E}".replace("E+", "e")
    return _exact(q)


def _float(d: Decimal, message: str) -> float:
    """``float(d)``, refusing a number beyond the float64 range with ``message.format(d)``."""
    f = float(d)
    if not math.isfinite(f):
        raise ValueError(message.format(_significant(d, 6)))
    return f


@dataclasses.dataclass(frozen=True)
class Calculation:
    """The result of ``fdjax.calculate``: every number of the worked example.

    Attributes:
        method: ``"central"``, ``"forward"`` or ``"backward"``.
        theta, loss, loss_plus, loss_minus: the inputs θ, J(θ), J(θ+ε), J(θ−ε) (None when
            not given; a value the method does not use is kept, and warned about).
        epsilon: the step ε as typed.
        theta_plus, theta_minus: θ+ε and θ−ε, exact, for the points the method evaluates
            (None when θ was not given or the method does not use the point).
        step_plus, step_minus: the steps a float64 program takes, (θ+ε) − θ and θ − (θ−ε)
            computed in float64 (None as for ``theta_plus``/``theta_minus``).
        numerator, denominator: the difference of losses and the step it is divided by (ε,
            or 2ε for central, as typed).
        gradient: numerator / denominator in exact decimal arithmetic, rounded once to a float.
        digits: the significant digits every computed number of the example is shown with.
        formula: the method's formula in symbols.
        worked: the formula with the numbers substituted, as one line.
        text: the display string of each number; ``text["others"]`` those of ``others``.
        others: the gradient by every other method the given values allow.
        warnings: what the inputs do not do as they seem to (also issued as
            ``CalculationWarning``).
    """

    method: str
    theta: float | None
    epsilon: float
    loss: float | None
    loss_plus: float | None
    loss_minus: float | None
    theta_plus: float | None
    theta_minus: float | None
    step_plus: float | None
    step_minus: float | None
    numerator: float
    denominator: float
    gradient: float
    digits: int
    formula: str
    worked: str
    text: dict[str, Any]
    others: dict[str, float]
    warnings: tuple[str, ...] = ()

    @property
    def points(self) -> tuple[tuple[float, float], ...]:
        """(x, J(x)) of each point the method uses, x in float64 as evaluated, by increasing x;
        empty when θ was not given. The secant of slope ``gradient`` passes through them."""
        if self.theta is None:
            return ()
        th = self.theta
        xs = {"plus": th + self.epsilon, "minus": th - self.epsilon, "loss": th}
        ys = {"plus": self.loss_plus, "minus": self.loss_minus, "loss": self.loss}
        keys = [*_SIDES[self.method], *(("loss",) if self.method != "central" else ())]
        return tuple(sorted((xs[k], ys[k]) for k in keys))  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: every number as a float, plus the display strings and warnings."""
        d: dict[str, Any] = {"schema": CALCULATION_SCHEMA}
        d.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        d["text"] = {k: dict(v) if isinstance(v, dict) else v for k, v in self.text.items()}
        d["others"] = dict(self.others)
        d["warnings"] = list(self.warnings)
        return d

    def summary(self) -> str:
        """The worked example, one quantity per line, then the warnings."""
        t = self.text
        lines = [f"method       {self.method}", f"formula      dJ/dθ ≈ {self.formula}"]
        for key in ("theta", "epsilon", "theta_plus", "theta_minus", *_used(self.method)):
            if key in t:
                label = {"theta_plus": "θ+ε", "theta_minus": "θ−ε"}.get(key, LABELS.get(key, key))
                lines.append(f"{label:<12} {t[key]}")
        lines += [
            f"numerator    {t['numerator']}",
            f"denominator  {t['denominator']}",
            f"gradient     {self.worked}",
        ]
        if "step" in t:
            lines.append(f"step taken   {t['step']} in float64, where the losses were presumably evaluated")
        if self.others:
            also = ", ".join(f"{m} {t['others'][m]}" for m in self.others)
            lines.append(f"other methods {also}")
        lines += [f"warning      {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _used(method: str) -> tuple[str, ...]:
    """The loss values the method uses, in display order."""
    return tuple(k for k in ("loss", "loss_plus", "loss_minus") if k in REQUIRED[method])


def _difference(method: str, v: dict[str, Decimal]) -> tuple[Decimal, Decimal, str, str]:
    """numerator, denominator (exact) and their written forms for one method."""
    f = {k: _exact(d) for k, d in v.items()}

    def paren(s: str) -> str:
        return f"({s})" if s.startswith("-") else s

    a, b = _OPERANDS[method]
    num = _EXACT.subtract(v[a], v[b])
    if method == "central":
        return num, _EXACT.multiply(2, v["epsilon"]), f"{f[a]} − {paren(f[b])}", f"(2 × {f['epsilon']})"
    return num, v["epsilon"], f"{f[a]} − {paren(f[b])}", f["epsilon"]


def _float64_steps(
    method: str, v: dict[str, Decimal], text: dict[str, Any], caller: str
) -> tuple[dict[str, float], list[tuple[str, float, float]]]:
    """The float64 steps (θ+ε) − θ / θ − (θ−ε) the method takes; refuses a zero step.

    Returns the steps by side, and (expression, step, relative difference from ε) of each
    step further than ``STEP_RTOL`` from ε.
    """
    th, e = float(v["theta"]), float(v["epsilon"])
    steps = {"plus": (th + e) - th, "minus": th - (th - e)}
    off = []
    for side in _SIDES[method]:
        expr, step = _STEP_EXPR[side], steps[side]
        if step == 0:
            raise ValueError(
                f"{caller}(epsilon=...) = {text['epsilon']} does not move θ = {text['theta']} in float64: "
                f"{expr} = 0, so the loss at θ{'+' if side == 'plus' else '−'}ε would be the loss at θ; "
                f"ε must be at least the float64 spacing at θ, {math.ulp(th):.3g} (in practice far larger)"
            )
        rel = step / e - 1
        if abs(rel) > STEP_RTOL:
            off.append((expr, step, rel))
    return {s: steps[s] for s in _SIDES[method]}, off


def calculate(
    theta: Number | None = None,
    *,
    epsilon: Number | None,
    loss: Number | None = None,
    loss_plus: Number | None = None,
    loss_minus: Number | None = None,
    method: str = "central",
) -> Calculation:
    """The FD gradient of one parameter from loss values, shown as a worked example.

    central: (J(θ+ε) − J(θ−ε)) / (2ε); forward: (J(θ+ε) − J(θ)) / ε;
    backward: (J(θ) − J(θ−ε)) / ε. Numbers are taken as the decimals they are written as
    (strings are exact, trailing zeros included; floats through their shortest repr) and the
    arithmetic is exact decimal arithmetic, so ``gradient`` is the decimal result rounded once
    to a float. The computed numbers are shown with one number of significant digits
    throughout (that of the numerator as typed, 3 to 12).

    With θ, the steps a float64 program takes, (θ+ε) − θ and θ − (θ−ε), are computed too:
    the losses were presumably evaluated at the float64 θ±ε. A step of 0 is refused; one
    more than ``STEP_RTOL`` (1e-3) from ε is warned about, with the gradient divided by the
    float64 step.

    Args:
        theta: the parameter θ (optional; shows θ±ε and checks the float64 step).
        epsilon: the step ε; positive, in the float64 range.
        loss: J(θ); used by forward and backward.
        loss_plus: J(θ+ε); used by central and forward.
        loss_minus: J(θ−ε); used by central and backward.
        method: ``"central"`` (default), ``"forward"`` or ``"backward"``.

    Returns:
        A ``Calculation`` with the gradient, θ±ε, the float64 steps, numerator, denominator,
        formula and warnings.

    Raises:
        ValueError: unknown method; a value the method needs is missing (each missing value is
            named); a value not finite or outside the float64 range; ε not positive; ε lost in
            float64 at θ ((θ+ε) − θ = 0); a gradient beyond the float64 range.
        TypeError: a value is not a number.

    Warns:
        CalculationWarning: a loss value the method does not use (it only enters ``others``),
            or a float64 step more than 1e-3 (relative) from ε. The same messages are in
            ``Calculation.warnings``.

    Examples:
        >>> import fdjax
        >>> c = fdjax.calculate(0.75, epsilon=0.001, loss_plus=0.188999, loss_minus=0.186001)
        >>> c.gradient
        1.499
        >>> print(c.worked)
        (0.188999 − 0.186001) / (2 × 0.001) = 0.002998 / 0.002 = 1.499
        >>> c.step_plus  # (θ+ε) − θ in float64
        0.0010000000000000009
    """
    caller = "fdjax.calculate"
    if not isinstance(method, str) or method not in REQUIRED:
        raise ValueError(f"{caller}(method=...) must be one of {sorted(REQUIRED)}, got {_got(method)}")
    given = {
        "theta": theta,
        "epsilon": epsilon,
        "loss": loss,
        "loss_plus": loss_plus,
        "loss_minus": loss_minus,
    }
    needs = ("epsilon", *REQUIRED[method])
    missing = [name for name in needs if given[name] is None]
    if missing:
        ref = {n: f"{n}=... ({LABELS[n]})" for n in needs}
        raise ValueError(
            f"{caller}(method={method!r}) needs {', '.join(ref[n] for n in needs)}; "
            f"missing: {', '.join(ref[n] for n in missing)}"
        )
    v = {name: _to_decimal(value, name, caller) for name, value in given.items() if value is not None}
    eps = v["epsilon"]
    if eps <= 0:
        raise ValueError(f"{caller}(epsilon=...) must be positive and finite, got {_got(epsilon)}")
    text: dict[str, Any] = {k: _exact(d) for k, d in v.items()}
    notes = [
        f"{caller}({name}=...) = {text[name]} is not used by the {method} difference {FORMULAS[method]}; "
        "it enters only the comparison with the other methods"
        for name in ("loss", "loss_plus", "loss_minus")
        if name in v and name not in REQUIRED[method]
    ]

    num, den, num_text, den_text = _difference(method, v)
    grad = _CONTEXT.divide(num, den)
    digits = min(max(len(num.as_tuple().digits), _MIN_DIGITS), _MAX_DIGITS)
    text["numerator"] = _significant(num, digits)
    text["denominator"] = _exact(den)
    text["gradient"] = _significant(grad, digits)
    worked = f"({num_text}) / {den_text} = {text['numerator']} / {text['denominator']} = {text['gradient']}"

    steps: dict[str, float] = {}
    if "theta" in v:
        steps, off = _float64_steps(method, v, text, caller)
        th, e = float(v["theta"]), float(eps)
        for side, sign in (("plus", 1), ("minus", -1)):
            if side in steps:
                exact = _EXACT.add(v["theta"], eps) if sign > 0 else _EXACT.subtract(v["theta"], eps)
                v[f"theta_{side}"] = exact
                text[f"theta_{side}"] = _exact(exact)
                fl = th + sign * e
                if Decimal(repr(fl)) != exact:
                    text[f"theta_{side}"] += f" (float64 {fl!r})"
        text["step"] = ", ".join(f"{_STEP_EXPR[s]} = {steps[s]!r}" for s in steps)
        if off:
            fl_den = Decimal(repr((th + e) - (th - e) if method == "central" else next(iter(steps.values()))))
            fl_grad = _significant(_CONTEXT.divide(num, fl_den), digits)
            sides = "; ".join(f"{expr} = {step!r}, {100 * rel:+.2g}% from ε" for expr, step, rel in off)
            notes.append(
                f"{caller}(epsilon=...) = {text['epsilon']} is not the step float64 takes "
                f"at θ = {text['theta']}: "
                f"{sides}. The losses were presumably evaluated at the float64 θ±ε, so dividing by ε "
                f"is off by as much; divided by the float64 step the gradient is {fl_grad}"
            )

    big = "beyond the float64 range (1.8e308); check ε and the losses"
    a, b = (f"{LABELS[n]} ({n}=...)" for n in _OPERANDS[method])
    floats = {
        "numerator": _float(num, f"{caller}: the numerator {a} − {b} = {{}} is {big}"),
        "denominator": _float(den, f"{caller}(epsilon=...) = {text['epsilon']} makes 2ε = {{}}, {big}"),
        "gradient": _float(
            grad, f"{caller}(epsilon=...) = {text['epsilon']} gives a gradient of {{}}, {big}"
        ),
    }
    others, others_text = {}, {}
    for m, m_needs in REQUIRED.items():
        if m != method and all(n in v for n in m_needs):
            n2, d2, _, _ = _difference(m, v)
            g2 = _CONTEXT.divide(n2, d2)
            others[m] = _float(
                g2, f"{caller}(epsilon=...) = {text['epsilon']} gives a {m} gradient of {{}}, {big}"
            )
            others_text[m] = _significant(g2, digits)
    text["others"] = others_text

    for note in notes:
        warnings.warn(note, CalculationWarning, stacklevel=2)

    def opt(name: str) -> float | None:
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
        step_plus=steps.get("plus"),
        step_minus=steps.get("minus"),
        numerator=floats["numerator"],
        denominator=floats["denominator"],
        gradient=floats["gradient"],
        digits=digits,
        formula=FORMULAS[method],
        worked=worked,
        text=text,
        others=others,
        warnings=tuple(notes),
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
            "schema": EPSILON_TABLE_SCHEMA,
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


def epsilon_table(theta: Number | None = None, epsilons: Sequence[Number] | None = None) -> EpsilonTable:
    """The classic ε table for J(θ) = θ²: central estimates against the true gradient 2θ.

    Computed in float64, so the smallest steps show round-off (the estimate's error stops
    shrinking and grows again).

    Args:
        theta: the point θ; default (or None) 1.
        epsilons: the steps; default 1e-1, 1e-2, …, 1e-7. Each positive and finite.

    Returns:
        An ``EpsilonTable``.

    Raises:
        ValueError: θ not finite, an ε not positive and finite, no ε given, or (|θ| + ε)²
            beyond the float64 range.
        TypeError: θ or an ε is not a number, or ``epsilons`` is not a sequence.

    Examples:
        >>> import fdjax
        >>> t = fdjax.epsilon_table(epsilons=[0.1, 0.01])
        >>> t.theta, [round(r["central"], 12) for r in t.rows]
        (1.0, [2.0, 2.0])
    """
    caller = "fdjax.epsilon_table"
    th = 1.0 if theta is None else float(_to_decimal(theta, "theta", caller))
    if epsilons is None:
        eps_list: tuple[Any, ...] = DEFAULT_EPSILONS
    else:
        try:
            if isinstance(epsilons, (str, bytes)):
                raise TypeError
            eps_list = tuple(epsilons)
        except TypeError:
            raise TypeError(
                f"{caller}(epsilons=...) must be a sequence of positive steps, got {_got(epsilons)}"
            ) from None
    if not eps_list:
        raise ValueError(f"{caller}(epsilons=...) must contain at least one step, got {_got(epsilons)}")
    if not math.isfinite(th * th):
        raise ValueError(
            f"{caller}(theta=...) must have θ² within the float64 range (|θ| < 1.3e154), got {_got(theta)}"
        )
    rows = []
    for e in eps_list:
        ed = _to_decimal(e, "epsilons", caller)
        if ed <= 0:
            raise ValueError(f"{caller}(epsilons=...) must all be positive and finite, got {_got(e)}")
        eps = float(ed)
        jm, j, jp = (th - eps) * (th - eps), th * th, (th + eps) * (th + eps)
        central = (jp - jm) / (2 * eps)
        if not all(math.isfinite(x) for x in (jm, jp, central)):
            raise ValueError(
                f"{caller}(epsilons=...) must keep (|θ| + ε)² within the float64 range at θ = {th:g}, "
                f"got {_got(e)}"
            )
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
