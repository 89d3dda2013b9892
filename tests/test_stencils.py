import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fdjax
from fdjax._fd import METHODS, fornberg_weights

# Textbook tables (Fornberg 1988, Table 1): first derivative, central, accuracy 2/4/6.
CENTRAL = {
    2: {-1: Fraction(-1, 2), 1: Fraction(1, 2)},
    4: {-2: Fraction(1, 12), -1: Fraction(-2, 3), 1: Fraction(2, 3), 2: Fraction(-1, 12)},
    6: {
        -3: Fraction(-1, 60),
        -2: Fraction(3, 20),
        -1: Fraction(-3, 4),
        1: Fraction(3, 4),
        2: Fraction(-3, 20),
        3: Fraction(1, 60),
    },
}


@pytest.mark.parametrize("order", [2, 4, 6])
def test_central_weights_match_textbook(order):
    offsets = sorted(CENTRAL[order]) + [0]
    w = dict(zip(offsets, fornberg_weights(offsets, 1)))
    assert w.pop(0) == 0
    assert w == CENTRAL[order]


def test_second_derivative_and_one_sided_tables():
    assert fornberg_weights([-1, 0, 1], 2) == (1, -2, 1)
    assert fornberg_weights([-2, -1, 0, 1, 2], 2) == tuple(
        Fraction(v) for v in ("-1/12", "4/3", "-5/2", "4/3", "-1/12")
    )
    # one-sided second order: (-3 f0 + 4 f1 - f2) / 2h
    assert fornberg_weights([0, 1, 2], 1) == (Fraction(-3, 2), 2, Fraction(-1, 2))


@pytest.mark.parametrize(
    "name,accuracy,constant",
    [
        ("forward", 1, 0.5),
        ("backward", 1, -0.5),
        ("central", 2, 1 / 6),
        ("central4", 4, -1 / 30),
        ("central6", 6, 1 / 140),
        ("complex", 2, -1 / 6),
    ],
)
def test_builtin_orders_and_error_constants(name, accuracy, constant):
    s = METHODS[name]
    assert s.accuracy == accuracy
    assert s.error_constant == pytest.approx(constant)
    assert hash(s) == hash(METHODS[name])  # frozen, hashable: usable as a static jit argument


@pytest.mark.parametrize("name", ["forward", "backward", "central", "central4", "central6"])
def test_exact_on_polynomials_up_to_accuracy(name):
    s = METHODS[name]
    x = jnp.array([0.3, -1.2, 2.0])
    for degree in range(0, s.accuracy + 1):
        f = lambda v, d=degree: jnp.sum(v**d)
        g = fdjax.grad(f, method=s, step=0.1)(x)
        exact = degree * x ** (degree - 1) if degree else jnp.zeros_like(x)
        assert np.allclose(g, exact, rtol=1e-9, atol=1e-9), (name, degree)
    # ... and not exact one degree higher (the order is sharp).
    d = s.accuracy + 1
    g = fdjax.grad(lambda v: jnp.sum(v**d), method=s, step=0.1)(x)
    assert not np.allclose(g, d * x ** (d - 1), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["forward", "backward", "central", "central4", "central6", "complex"])
def test_observed_convergence_order(name):
    """Log-log slope of error vs h on a smooth function equals the stencil's order."""
    s = METHODS[name]
    x = jnp.array([0.7])
    f = lambda v: jnp.sum(jnp.exp(v) * jnp.sin(v))
    exact = float(jax.grad(f)(x)[0])
    hs = np.array([0.2, 0.1, 0.05, 0.025]) if s.accuracy < 6 else np.array([0.2, 0.1, 0.05])
    errs = [abs(float(fdjax.grad(f, method=s, step=float(h))(x)[0]) - exact) for h in hs]
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert slope == pytest.approx(s.accuracy, abs=0.25)


def test_from_offsets_error_constant_predicts_error():
    s = fdjax.Stencil.from_offsets([-1, 0, 2])  # non-symmetric, accuracy 2
    assert s.accuracy == 2
    h = 1e-3
    f = lambda v: jnp.sum(jnp.sin(v))
    x = jnp.array([0.4])
    err = float(fdjax.grad(f, method=s, step=h)(x)[0]) - np.cos(0.4)
    predicted = s.error_constant * h**2 * (-np.cos(0.4))  # f''' = -cos
    assert err == pytest.approx(predicted, rel=1e-2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-6, 6), min_size=2, max_size=6, unique=True), st.integers(1, 3))
@example([-1, 1], 1)
@example([0, 1, 2, 3], 3)
def test_fornberg_moments(offsets, d):
    """Weights reproduce d! for the d-th moment and 0 for the other low moments."""
    if d >= len(offsets):
        with pytest.raises(ValueError, match="derivative"):
            fornberg_weights(offsets, d)
        return
    w = fornberg_weights(offsets, d)
    for m in range(len(offsets)):
        moment = sum(wk * Fraction(s) ** m for s, wk in zip(offsets, w))
        assert moment == (Fraction(math.factorial(d)) if m == d else 0)


def test_bad_stencils():
    with pytest.raises(ValueError, match="distinct"):
        fornberg_weights([1, 1], 1)
    with pytest.raises(ValueError, match="derivative"):
        fdjax.Stencil.from_offsets([-1, 1], derivative=0)
