"""The single-parameter calculator: the issue's worked examples, exact decimals, the float64
step, warnings for unused inputs, consistent significant digits, validation."""

import json
import math
import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import fdjax
from fdjax import CalculationWarning
from fdjax._calculator import FORMULAS, rename_arguments

# θ=1, J=1, ε=0.01, J+=1.0201, J−=0.9801 (J(θ) = θ²): each method given only what it uses.
SECOND = dict(theta=1, loss=1, epsilon=0.01, loss_plus=1.0201, loss_minus=0.9801)
USED = {
    "central": ("loss_plus", "loss_minus"),
    "forward": ("loss", "loss_plus"),
    "backward": ("loss", "loss_minus"),
}


def only_used(values, method):
    return {k: v for k, v in values.items() if k in ("theta", "epsilon", *USED[method])}


def significant_digits(text):
    """Significant digits of a display string ('0.0400' → 3, '2.01e13' → 3)."""
    mantissa = text.lstrip("-").split("e")[0].replace(".", "")
    return len(mantissa.lstrip("0"))


@pytest.mark.parametrize(
    "kwargs, gradient, text",
    [
        # θ=0.75, ε=0.001, J+=0.188999, J−=0.186001, central → 1.499
        (dict(theta=0.75, epsilon=0.001, loss_plus=0.188999, loss_minus=0.186001), 1.499, "1.499"),
        # θ=1, J=1, ε=0.01, J+=1.0201, J−=0.9801: forward → 2.01, central → 2.00, backward → 1.99
        (dict(only_used(SECOND, "forward"), method="forward"), 2.01, "2.01"),
        (dict(only_used(SECOND, "central"), method="central"), 2.0, "2.00"),
        (dict(only_used(SECOND, "backward"), method="backward"), 1.99, "1.99"),
    ],
)
def test_worked_examples(kwargs, gradient, text):
    c = fdjax.calculate(**kwargs)
    assert c.gradient == gradient  # exact: decimal arithmetic rounded once
    assert c.text["gradient"] == text
    assert c.worked.endswith("= " + text)
    assert c.formula == FORMULAS[c.method]
    assert c.warnings == () and "warning" not in str(c) and c.to_dict()["warnings"] == []


def test_first_example_shows_every_step():
    c = fdjax.calculate(0.75, epsilon=0.001, loss_plus=0.188999, loss_minus=0.186001)
    assert (c.theta_plus, c.theta_minus) == (0.751, 0.749)
    assert (c.numerator, c.denominator) == (0.002998, 0.002)
    assert c.worked == "(0.188999 − 0.186001) / (2 × 0.001) = 0.002998 / 0.002 = 1.499"
    s = str(c)
    for piece in ("0.751", "0.749", "0.002998", "0.002", "1.499", "(J(θ+ε) − J(θ−ε)) / (2ε)"):
        assert piece in s
    assert c.step_plus == (0.75 + 0.001) - 0.75 and c.step_minus == 0.75 - (0.75 - 0.001)
    assert "step taken   (θ+ε) − θ = 0.0010000000000000009, θ − (θ−ε) = 0.0010000000000000009 in float64" in s
    assert "losses were presumably evaluated" in s


def test_second_example_forward_and_others():
    with pytest.warns(CalculationWarning, match=r"loss_minus=\.\.\.\) = 0.9801 is not used by the forward"):
        c = fdjax.calculate(**SECOND, method="forward")
    assert c.worked == "(1.0201 − 1) / 0.01 = 0.0201 / 0.01 = 2.01"
    assert c.others == {"central": 2.0, "backward": 1.99}
    assert c.text["others"] == {"central": "2.00", "backward": "1.99"}


# ------------------------------------------------------------------------------- unused inputs


@pytest.mark.parametrize(
    "method, unused",
    [("forward", "loss_minus"), ("backward", "loss_plus"), ("central", "loss")],
)
def test_unused_inputs_warn(method, unused):
    args = dict(only_used(SECOND, method), **{unused: 0.5})
    message = rf"fdjax.calculate\({unused}=\.\.\.\) = 0.5 is not used by the {method} difference"
    with pytest.warns(CalculationWarning, match=message) as record:
        c = fdjax.calculate(**args, method=method)
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller
    assert len(c.warnings) == 1 and c.warnings[0] == str(record[0].message)
    assert "it enters only the comparison with the other methods" in c.warnings[0]
    assert f"warning      {c.warnings[0]}" in str(c)
    assert json.loads(json.dumps(c.to_dict()))["warnings"] == [c.warnings[0]]
    # the value is kept (it enters `others`) but does not change the method's gradient
    assert getattr(c, unused) == 0.5 and len(c.others) == 2
    quiet = fdjax.calculate(**only_used(SECOND, method), method=method)
    assert c.gradient == quiet.gradient and c.worked == quiet.worked


def test_every_unused_input_is_named():
    with pytest.warns(CalculationWarning) as record:
        c = fdjax.calculate(epsilon=0.5, loss=1, loss_plus=2.25, loss_minus=0.25, method="central")
    assert [str(w.message).split(")")[0] for w in record] == ["fdjax.calculate(loss=..."]
    with pytest.warns(CalculationWarning) as record:
        c = fdjax.calculate(epsilon=0.5, loss=1, loss_plus=2.25, loss_minus=0.25, method="forward")
    assert len(record) == len(c.warnings) == 1 and "loss_minus=...) = 0.25" in c.warnings[0]


# ------------------------------------------------------------------------- only the used points


@pytest.mark.parametrize(
    "method, shown, hidden",
    [
        ("forward", ("θ+ε", "J(θ)", "J(θ+ε)"), ("θ−ε", "J(θ−ε)")),
        ("backward", ("θ−ε", "J(θ)", "J(θ−ε)"), ("θ+ε", "J(θ+ε)")),
        ("central", ("θ+ε", "θ−ε", "J(θ+ε)", "J(θ−ε)"), ("J(θ) ",)),
    ],
)
def test_only_the_points_the_method_uses_are_shown(method, shown, hidden):
    with pytest.warns(CalculationWarning):  # one of the three losses is unused
        c = fdjax.calculate(**SECOND, method=method)
    labels = [line[:13] for line in str(c).splitlines()]
    for label in shown:
        assert f"{label:<12} " in labels
    for label in hidden:
        assert f"{label:<12} " not in labels
    assert (c.theta_plus is None) == (method == "backward")
    assert (c.theta_minus is None) == (method == "forward")
    assert (c.step_plus is None) == (method == "backward") and (c.step_minus is None) == (method == "forward")
    assert ("theta_minus" in c.text) == (method != "forward") and ("theta_plus" in c.text) == (
        method != "backward"
    )
    # the points for a chart: used ones only, in float64, and the secant passes through them
    pts = c.points
    assert len(pts) == 2 and pts[0][0] < pts[1][0]
    assert math.isclose((pts[1][1] - pts[0][1]) / (pts[1][0] - pts[0][0]), c.gradient, rel_tol=1e-12)
    expected = {"forward": [(1.0, 1.0), (1 + 0.01, 1.0201)], "backward": [(1 - 0.01, 0.9801), (1.0, 1.0)]}
    assert list(pts) == expected.get(method, [(1 - 0.01, 0.9801), (1 + 0.01, 1.0201)])


def test_theta_is_optional():
    c = fdjax.calculate(epsilon=0.5, loss_plus=2.25, loss_minus=0.25)
    assert c.gradient == 2.0 and c.theta_plus is None and "theta_plus" not in c.text
    assert c.step_plus is None and c.points == () and "step taken" not in str(c)
    assert not any(line.startswith("θ") for line in str(c).splitlines())


# ------------------------------------------------------------------------ significant digits


def test_one_number_of_significant_digits_per_example():
    with pytest.warns(CalculationWarning):
        c = fdjax.calculate(**SECOND, method="central")
    # 1.0201 − 0.9801 = 0.0400 as typed: three significant digits everywhere
    assert c.digits == 3
    assert c.worked == "(1.0201 − 0.9801) / (2 × 0.01) = 0.0400 / 0.02 = 2.00"
    assert [c.text["numerator"], c.text["gradient"], *c.text["others"].values()] == [
        "0.0400",
        "2.00",
        "2.01",
        "1.99",
    ]
    c = fdjax.calculate(0.75, epsilon=0.001, loss_plus=0.188999, loss_minus=0.186001, method="central")
    assert c.digits == 4 and c.text["gradient"] == "1.499"
    # trailing zeros typed in a string count: 1.02010 − 0.98010 = 0.04000
    c = fdjax.calculate(epsilon="0.01", loss_plus="1.02010", loss_minus="0.98010")
    assert c.digits == 4 and c.text["gradient"] == "2.000"
    # a non-terminating quotient is rounded to the example's digits, not to twelve
    c = fdjax.calculate(epsilon="0.003", loss_plus="1.001", loss_minus="1")
    assert c.digits == 3 and c.text["numerator"] == "0.00100" and c.text["gradient"] == "0.167"
    # huge results in scientific notation, so trailing zeros never pose as digits
    c = fdjax.calculate(epsilon="1e-12", loss="1", loss_plus="1.0201", method="forward")
    assert c.text["gradient"] == "2.01e10"


@given(
    values=st.lists(st.integers(-(10**7), 10**7).map(lambda k: Decimal(k) / 10**5), min_size=3, max_size=3),
    eps=st.integers(1, 10**5).map(lambda k: Decimal(k) / 10**6),
    method=st.sampled_from(["central", "forward", "backward"]),
)
@example(values=[Decimal("1"), Decimal("1.0201"), Decimal("0.9801")], eps=Decimal("0.01"), method="central")
def test_significant_digits_are_consistent(values, eps, method):
    j, jp, jm = (str(v) for v in values)
    args = dict(epsilon=str(eps), **{k: v for k, v in (("loss", j), ("loss_plus", jp), ("loss_minus", jm))})
    with pytest.warns(CalculationWarning):
        c = fdjax.calculate(**args, method=method)
    assert 3 <= c.digits <= 12
    for text in (c.text["numerator"], c.text["gradient"], *c.text["others"].values()):
        assert text == "0" or significant_digits(text) == c.digits, (text, c.digits)
    assert float(c.text["gradient"]) == pytest.approx(c.gradient, rel=10 ** (1 - c.digits), abs=1e-300)


# ------------------------------------------------------------------------------ float64 steps


@pytest.mark.parametrize(
    "method, eps, expr",
    [
        ("forward", 1e-300, r"\(θ\+ε\) − θ = 0"),
        ("central", 1e-300, r"\(θ\+ε\) − θ = 0"),
        ("backward", "1e-300", r"θ − \(θ−ε\) = 0"),
        ("central", 1e-16, r"\(θ\+ε\) − θ = 0"),  # 1 − 1e-16 ≠ 1 (finer spacing below 1) but 1 + 1e-16 = 1
        ("backward", 5e-17, r"θ − \(θ−ε\) = 0"),
    ],
)
def test_a_step_float64_loses_is_refused(method, eps, expr):
    match = rf"fdjax.calculate\(epsilon=\.\.\.\) = {eps} does not move θ = 1 in float64: {expr}"
    match += ".*ε must be at least the float64 spacing at θ"
    with pytest.raises(ValueError, match=match):
        fdjax.calculate(**only_used(dict(SECOND, epsilon=eps), method), method=method)


def test_a_step_float64_distorts_is_warned_about():
    msg = (
        r"fdjax.calculate\(epsilon=\.\.\.\) = 1e-15 is not the step float64 takes at θ = 1: "
        r"\(θ\+ε\) − θ = 1.1102230246251565e-15, \+11% from ε\. The losses were presumably evaluated "
        r"at the float64 θ±ε, so dividing by ε is off by as much; "
        r"divided by the float64 step the gradient is 1.81e13"
    )
    with pytest.warns(CalculationWarning, match=msg):
        c = fdjax.calculate(1, epsilon=1e-15, loss=1, loss_plus=1.0201, method="forward")
    assert c.step_plus == (1 + 1e-15) - 1 == 1.1102230246251565e-15
    assert c.gradient == 2.01e13  # still the formula with ε as typed, as the worked example shows
    assert "step taken   (θ+ε) − θ = 1.1102230246251565e-15 in float64" in str(c)
    assert c.to_dict()["step_plus"] == c.step_plus and len(c.to_dict()["warnings"]) == 1


def test_central_steps_both_sides():
    # at θ = 1 the spacing below is half the spacing above: the sides differ, one warning names both
    match = r"\(θ\+ε\) − θ = 2.220446049250313e-16, -26% from ε; "
    match += r"θ − \(θ−ε\) = 3.3306690738754696e-16, \+11% from ε"
    with pytest.warns(
        CalculationWarning, match=match + r".* divided by the float64 step the gradient is 1.08e12"
    ):
        c = fdjax.calculate(1, epsilon=3e-16, loss_plus="1.0006", loss_minus="1.0000")
    assert (c.step_plus, c.step_minus) == ((1 + 3e-16) - 1, 1 - (1 - 3e-16))


def test_small_step_differences_are_shown_not_warned():
    # (1 + 1e-13) − 1 is 8e-4 below 1e-13: under the 1e-3 threshold, shown but no warning
    c = fdjax.calculate(1, epsilon=1e-13, loss=1, loss_plus=1.0000000000002, method="forward")
    assert c.step_plus == (1 + 1e-13) - 1 and c.warnings == ()
    assert f"(θ+ε) − θ = {(1 + 1e-13) - 1!r}" in str(c)


def test_theta_pm_eps_shows_the_float64_point_when_it_differs():
    c = fdjax.calculate(0.1, epsilon=0.2, loss_plus=1.0201, loss_minus=0.9801)
    assert c.text["theta_plus"] == "0.3 (float64 0.30000000000000004)" and c.text["theta_minus"] == "-0.1"
    # exact decimals, not twelve digits: θ+ε is never shown as θ
    c = fdjax.calculate(1, epsilon=1e-13, loss=1, loss_plus=1, method="forward")
    assert c.text["theta_plus"].startswith("1.0000000000001")


# ------------------------------------------------------------------------------- exact decimals


def test_strings_are_exact_and_to_dict_is_json():
    c = fdjax.calculate("1", epsilon="0.01", loss_plus="1.0201", loss_minus="0.9801")
    d = json.loads(json.dumps(c.to_dict()))
    assert d["gradient"] == 2.0 and d["method"] == "central" and d["theta_plus"] == 1.01
    assert d["loss"] is None and d["warnings"] == [] and d["digits"] == 3
    assert d["text"]["others"] == {}


def test_numbers_as_typed():
    c = fdjax.calculate("−0.5", epsilon=Decimal("0.10"), loss_plus=10**3, loss_minus=1.0)
    assert c.text["theta"] == "-0.5" and c.text["epsilon"] == "0.10"  # Unicode minus; trailing zero kept
    assert c.text["loss_plus"] == "1000" and c.text["loss_minus"] == "1"  # 1.0 is written 1
    assert c.worked == "(1000 − 1) / (2 × 0.10) = 999 / 0.20 = 5.00e3"


@pytest.mark.parametrize(
    "method, given_values, missing",
    [
        ("central", dict(loss_plus=1.0), ["loss_minus=... (J(θ−ε))"]),
        ("central", dict(), ["loss_plus=... (J(θ+ε))", "loss_minus=... (J(θ−ε))"]),
        ("forward", dict(loss_plus=1.0, loss_minus=1.0), ["loss=... (J(θ))"]),
        ("backward", dict(loss=1.0), ["loss_minus=... (J(θ−ε))"]),
        ("backward", dict(loss=1.0, epsilon=None), ["epsilon=... (ε)", "loss_minus=... (J(θ−ε))"]),
    ],
)
def test_missing_values_are_named(method, given_values, missing):
    args = {"epsilon": 0.1, **given_values}
    with pytest.raises(
        ValueError, match=rf"fdjax.calculate\(method='{method}'\) needs epsilon=\.\.\. \(ε\), .*; missing: "
    ) as e:
        fdjax.calculate(1.0, method=method, **args)
    tail = str(e.value).split("missing: ")[1]
    assert tail == ", ".join(missing)


@pytest.mark.parametrize(
    "eps, match",
    [
        (0, "must be positive and finite, got 0"),
        (-0.001, "must be positive and finite, got -0.001"),
        ("-1", "must be positive and finite, got '-1'"),
        (float("inf"), "must be finite, got inf"),
        (float("nan"), "must be finite, got nan"),
        ("inf", "must be finite, got 'inf'"),
        (
            "1e-400",
            r"must be 0 or between 5e-324 and 1.8e308 in magnitude \(the float64 range\), got '1e-400'",
        ),
    ],
)
def test_epsilon_must_be_positive_and_finite(eps, match):
    with pytest.raises(ValueError, match=rf"fdjax.calculate\(epsilon=...\) {match}"):
        fdjax.calculate(1.0, epsilon=eps, loss_plus=1.0, loss_minus=0.5)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            dict(method="centered"),
            ValueError,
            r"method=...\) must be one of \['backward', 'central', 'forward'\], got 'centered'",
        ),
        (dict(method=None), ValueError, r"method=...\) must be one of .*, got None"),
        (dict(method=["central"]), ValueError, r"method=...\) must be one of .*, got \['central'\]"),
        (dict(loss_plus="abc"), ValueError, r"loss_plus=...\) must be a finite number, got 'abc'"),
        (dict(loss_plus=float("nan")), ValueError, r"loss_plus=...\) must be finite, got nan"),
        (dict(loss_plus=Decimal("NaN")), ValueError, r"loss_plus=...\) must be finite, got Decimal\('NaN'\)"),
        (dict(loss_plus=True), TypeError, r"loss_plus=...\) must be a finite number, got True"),
        (dict(loss_plus=[1.0]), TypeError, r"loss_plus=...\) must be a finite number, got \[1.0\]"),
        (dict(loss_plus=1j), TypeError, r"loss_plus=...\) must be a finite number, got 1j"),
        (dict(loss_minus="1e400"), ValueError, r"loss_minus=...\) must be 0 or between .* got '1e400'"),
        (dict(loss_minus=10**400), ValueError, r"loss_minus=...\) must be 0 or .* range\), got 10+\.\.\.$"),
        (dict(theta="x"), ValueError, r"theta=...\) must be a finite number, got 'x'"),
        (dict(theta=float("-inf")), ValueError, r"theta=...\) must be finite, got -inf"),
        (
            dict(theta=None, epsilon=5e-324, loss_plus=1e300, loss_minus=-1e300),
            ValueError,
            r"epsilon=...\) = 5e-324 gives a gradient of 2.00000e623, beyond the float64 range \(1.8e308\)",
        ),
        (
            dict(loss_plus=1.7e308, loss_minus=-1.7e308),
            ValueError,
            r": the numerator J\(θ\+ε\) \(loss_plus=...\) − J\(θ−ε\) \(loss_minus=...\) = 3.40000e308 is",
        ),
        (
            dict(theta=None, epsilon=1.7e308),
            ValueError,
            r"epsilon=...\) = 1.7e308 makes 2ε = 3.40000e308, beyond the float64 range",
        ),
    ],
)
def test_bad_values(kwargs, exc, match):
    args = dict(theta=1.0, epsilon=0.1, loss_plus=1.0, loss_minus=0.5)
    args.update(kwargs)
    with pytest.raises(exc, match=r"fdjax.calculate" + (match if match[0] == ":" else r"\(" + match)):
        fdjax.calculate(args.pop("theta"), **args)


def test_messages_rename_to_command_line_flags():
    flags = {"theta": "--theta", "epsilon": "--eps", "loss": "--J", "loss_plus": "--J-plus"}
    flags.update(loss_minus="--J-minus", method="--method")
    with pytest.raises(ValueError) as e:
        fdjax.calculate(1, epsilon=None, loss=1, method="forward")
    assert rename_arguments(str(e.value), flags) == (
        "--method forward needs --eps (ε), --J (J(θ)), --J-plus (J(θ+ε)); "
        "missing: --eps (ε), --J-plus (J(θ+ε))"
    )
    with pytest.warns(CalculationWarning):
        c = fdjax.calculate(1, epsilon=0.01, loss=1, loss_plus=1.0201, loss_minus=0.5, method="forward")
    assert rename_arguments(c.warnings[0], flags).startswith(
        "--J-minus = 0.5 is not used by the forward difference"
    )
    with pytest.raises(ValueError) as e:
        fdjax.calculate(1, epsilon=1e-300, loss=1, loss_plus=1, method="forward")
    assert rename_arguments(str(e.value), flags).startswith("--eps = 1e-300 does not move θ = 1 in float64")
    assert rename_arguments("fdjax.epsilon_table(theta=...) must be finite", {}) == (
        "fdjax.epsilon_table(theta=...) must be finite"  # names without a mapping are left alone
    )


def test_the_calculator_does_not_import_jax():
    """`fdjax calc` starts fast: the calculator is pure Python (decimal, math)."""
    code = (
        "import sys, fdjax; fdjax.calculate(1, epsilon=1, loss_plus=1, loss_minus=0); fdjax.epsilon_table(); "
        "print(sorted({'jax', 'numpy'} & set(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ ε table


@pytest.mark.parametrize("args", [(), (None,), (1.0,), ("1",)])
def test_epsilon_table_classic(args):
    t = fdjax.epsilon_table(*args)  # θ defaults to 1
    assert t.theta == 1.0 and t.true_gradient == 2.0
    assert [r["epsilon"] for r in t.rows] == [10.0**-k for k in range(1, 8)]
    for r in t.rows:
        assert r["loss"] == 1.0
        assert r["loss_plus"] == (1 + r["epsilon"]) ** 2
        assert r["abs_error"] == abs(r["central"] - 2.0)
    # exact in exact arithmetic: only round-off remains, and it grows as ε shrinks
    assert t.rows[0]["abs_error"] < 1e-14 < t.rows[-1]["abs_error"] < 1e-8
    d = json.loads(json.dumps(t.to_dict()))
    assert d["function"] == "J(θ) = θ²" and len(d["rows"]) == 7
    assert "2θ" in str(t) and "at θ = 1 " in str(t)


def test_epsilon_table_takes_any_iterable_of_steps():
    t = fdjax.epsilon_table(2, (e for e in ("0.5", Decimal("0.25"))))
    assert [r["central"] for r in t.rows] == [4.0, 4.0]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(theta=float("inf")), ValueError, r"fdjax.epsilon_table\(theta=...\) must be finite, got inf"),
        (dict(theta="x"), ValueError, r"fdjax.epsilon_table\(theta=...\) must be a finite number, got 'x'"),
        (dict(theta=1e200), ValueError, r"theta=...\) must have θ² within the float64 range .* got 1e\+200"),
        (dict(epsilons=[]), ValueError, r"epsilons=...\) must contain at least one step, got \[\]"),
        (dict(epsilons=[0.1, -0.1]), ValueError, r"epsilons=...\) must all be positive and finite, got -0.1"),
        (dict(epsilons=[0.1, 0]), ValueError, r"epsilons=...\) must all be positive and finite, got 0"),
        (dict(epsilons=[float("nan")]), ValueError, r"epsilons=...\) must be finite, got nan"),
        (
            dict(epsilons=[1e200]),
            ValueError,
            r"epsilons=...\) must keep \(\|θ\| \+ ε\)² within .* got 1e\+200",
        ),
        (dict(epsilons="0.1"), TypeError, r"epsilons=...\) must be a sequence of positive steps, got '0.1'"),
        (dict(epsilons=0.1), TypeError, r"epsilons=...\) must be a sequence of positive steps, got 0.1"),
        (dict(epsilons=[None]), TypeError, r"epsilons=...\) must be a finite number, got None"),
    ],
)
def test_epsilon_table_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fdjax.epsilon_table(**kwargs)


@given(
    theta=st.integers(-(10**6), 10**6).map(lambda k: Decimal(k) / 1000),
    eps=st.integers(1, 10**5).map(lambda k: Decimal(k) / 10**6),
)
@example(theta=Decimal("0.75"), eps=Decimal("0.001"))
def test_central_is_exact_for_quadratics(theta, eps):
    """With exact decimal arithmetic, the central difference of θ² is exactly 2θ."""
    c = fdjax.calculate(
        str(theta), epsilon=str(eps), loss_plus=str((theta + eps) ** 2), loss_minus=str((theta - eps) ** 2)
    )
    assert c.gradient == float(2 * theta)
    assert float(c.text["gradient"]) == float(2 * theta)  # and its display, to the example's digits
