"""The single-parameter calculator: the issue's worked examples, exact decimals, validation."""

import json
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import fdjax


@pytest.mark.parametrize(
    "kwargs, gradient, text",
    [
        # θ=0.75, J=0.1875, ε=0.001, J+=0.188999, J−=0.186001, central → 1.499
        (
            dict(theta=0.75, loss=0.1875, epsilon=0.001, loss_plus=0.188999, loss_minus=0.186001),
            1.499,
            "1.499",
        ),
        # θ=1, J=1, ε=0.01, J+=1.0201, J−=0.9801: forward → 2.01, central → 2.00
        (
            dict(theta=1, loss=1, epsilon=0.01, loss_plus=1.0201, loss_minus=0.9801, method="forward"),
            2.01,
            "2.01",
        ),
        (
            dict(theta=1, loss=1, epsilon=0.01, loss_plus=1.0201, loss_minus=0.9801, method="central"),
            2.0,
            "2.00",
        ),
        (
            dict(theta=1, loss=1, epsilon=0.01, loss_plus=1.0201, loss_minus=0.9801, method="backward"),
            1.99,
            "1.99",
        ),
    ],
)
def test_worked_examples(kwargs, gradient, text):
    c = fdjax.calculate(**kwargs)
    assert c.gradient == gradient  # exact: decimal arithmetic rounded once
    assert c.text["gradient"] == text
    assert c.worked.endswith("= " + text)
    assert c.formula == fdjax._calculator.FORMULAS[c.method]


def test_first_example_shows_every_step():
    c = fdjax.calculate(0.75, loss=0.1875, epsilon=0.001, loss_plus=0.188999, loss_minus=0.186001)
    assert (c.theta_plus, c.theta_minus) == (0.751, 0.749)
    assert (c.numerator, c.denominator) == (0.002998, 0.002)
    assert c.worked == "(0.188999 − 0.186001) / (2 × 0.001) = 0.002998 / 0.002 = 1.499"
    s = str(c)
    for piece in ("0.751", "0.749", "0.002998", "0.002", "1.499", "(J(θ+ε) − J(θ−ε)) / (2ε)"):
        assert piece in s


def test_second_example_forward_and_others():
    c = fdjax.calculate(1, loss=1, epsilon=0.01, loss_plus=1.0201, loss_minus=0.9801, method="forward")
    assert c.worked == "(1.0201 − 1) / 0.01 = 0.0201 / 0.01 = 2.01"
    assert c.others == {"central": 2.0, "backward": 1.99}
    assert c.text["others"]["central"] == "2.00"


def test_strings_are_exact_and_to_dict_is_json():
    c = fdjax.calculate("1", epsilon="0.01", loss_plus="1.0201", loss_minus="0.9801")
    d = json.loads(json.dumps(c.to_dict()))
    assert d["gradient"] == 2.0 and d["method"] == "central" and d["theta_plus"] == 1.01
    assert d["loss"] is None


def test_theta_is_optional():
    c = fdjax.calculate(epsilon=0.5, loss_plus=2.25, loss_minus=0.25)
    assert c.gradient == 2.0 and c.theta_plus is None and "theta_plus" not in c.text
    assert not any(line.startswith("θ") for line in str(c).splitlines())


@pytest.mark.parametrize(
    "method, given_values, missing",
    [
        ("central", dict(loss_plus=1.0), ["J(θ−ε) (loss_minus=...)"]),
        ("central", dict(), ["J(θ+ε) (loss_plus=...)", "J(θ−ε) (loss_minus=...)"]),
        ("forward", dict(loss_plus=1.0, loss_minus=1.0), ["J(θ) (loss=...)"]),
        ("backward", dict(loss=1.0), ["J(θ−ε) (loss_minus=...)"]),
    ],
)
def test_missing_values_are_named(method, given_values, missing):
    with pytest.raises(ValueError, match=r"needs .*; missing: ") as e:
        fdjax.calculate(1.0, epsilon=0.1, method=method, **given_values)
    tail = str(e.value).split("missing: ")[1]
    assert tail == ", ".join(missing)


@pytest.mark.parametrize("eps", [0, -0.001, float("inf"), float("nan"), "-1", "inf"])
def test_epsilon_must_be_positive_and_finite(eps):
    with pytest.raises(ValueError, match=r"fdjax.calculate\(epsilon=...\) must be"):
        fdjax.calculate(1.0, epsilon=eps, loss_plus=1.0, loss_minus=0.5)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            dict(method="centered"),
            ValueError,
            r"method=...\) must be one of \['backward', 'central', 'forward'\]",
        ),
        (dict(loss_plus="abc"), ValueError, r"loss_plus=...\) must be a finite number, got 'abc'"),
        (dict(loss_plus=float("nan")), ValueError, r"loss_plus=...\) must be finite"),
        (dict(loss_plus=True), TypeError, r"loss_plus=...\) must be a finite number, got True"),
        (dict(loss_plus=[1.0]), TypeError, r"loss_plus=...\) must be a finite number"),
        (dict(theta="x"), ValueError, r"theta=...\) must be a finite number, got 'x'"),
    ],
)
def test_bad_values(kwargs, exc, match):
    args = dict(theta=1.0, epsilon=0.1, loss_plus=1.0, loss_minus=0.5)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        fdjax.calculate(args.pop("theta"), **args)


def test_epsilon_table_classic():
    t = fdjax.epsilon_table(1.0)
    assert [r["epsilon"] for r in t.rows] == [10.0**-k for k in range(1, 8)]
    assert t.true_gradient == 2.0
    for r in t.rows:
        assert r["loss"] == 1.0
        assert r["loss_plus"] == (1 + r["epsilon"]) ** 2
        assert r["abs_error"] == abs(r["central"] - 2.0)
    # exact in exact arithmetic: only round-off remains, and it grows as ε shrinks
    assert t.rows[0]["abs_error"] < 1e-14 < t.rows[-1]["abs_error"] < 1e-8
    d = json.loads(json.dumps(t.to_dict()))
    assert d["function"] == "J(θ) = θ²" and len(d["rows"]) == 7
    assert "2θ" in str(t)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(theta=float("inf")), r"fdjax.epsilon_table\(theta=...\) must be finite"),
        (dict(theta=1.0, epsilons=[]), r"epsilons=...\) must contain at least one step"),
        (dict(theta=1.0, epsilons=[0.1, -0.1]), r"epsilons=...\) must all be positive and finite, got -0.1"),
    ],
)
def test_epsilon_table_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
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
