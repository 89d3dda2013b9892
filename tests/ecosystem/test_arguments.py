"""The arguments people pass to a loss: Python flags and strings (never traced), ``has_aux`` on
every check, the sweep and ``fdjax.grad``, f's own keyword arguments through the transform
form, the errors when f's parameters collide with fdjax's options, and what is and is not
differentiated in a tree (integer arrays, functions, strings, Python floats)."""

from __future__ import annotations

import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax

from planted import ACTIVATIONS, EXPECTED, status
from planted_jvp import ACTIVATIONS_JVP

CASES = pytest.mark.parametrize("case", list(ACTIVATIONS))

X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) ** 3 + 0.2  # not symmetric: no gradient is 0 by symmetry
W = jnp.linspace(-0.8, 0.9, 6)  # 6 parameters, used as a (3, 2) matrix
PASSES = {case: EXPECTED[case] == fdjax.CheckStatus.PASS for case in ACTIVATIONS}


def hidden(act, w, x):
    return act(x @ w.reshape(3, 2))


def plain_loss(act):
    def loss(w, x):
        return jnp.sum(hidden(act, w, x) ** 2)

    return loss


#: one loss per activation, shared by the tests that need no other signature
LOSSES = {case: plain_loss(act) for case, act in ACTIVATIONS.items()}


def close_to_ad(fd, ad) -> bool:
    return bool(np.allclose(fd, ad, rtol=1e-6, atol=1e-9))


# ------------------------------------------------------------------------------------------
# Python values among f's arguments


@CASES
def test_python_flag_stays_a_python_bool(case):
    act = ACTIVATIONS[case]

    def loss(w, x, train):
        h = hidden(act, w, x)
        if train:  # Python control flow: a traced flag would raise TracerBoolConversionError here
            h = h * jnp.array([1.0, -0.5])
        return jnp.sum(h**2)

    result = fdjax.check_grad(loss, W, X, True, mode="directional")
    assert status(result) == EXPECTED[case]
    assert float(result.value) == pytest.approx(float(loss(W, X, True)))  # the train=True branch


@CASES
def test_string_argument_selects_the_activation(case):
    activations = types.SimpleNamespace(tanh=ACTIVATIONS[case], identity=lambda h: h)

    def loss(w, x, name):
        return jnp.sum(getattr(activations, name)(x @ w.reshape(3, 2)) ** 2)

    result = fdjax.check_grad(loss, W, X, "tanh", mode="directional")
    assert status(result) == EXPECTED[case]
    assert float(result.value) == pytest.approx(float(loss(W, X, "tanh")))


# ------------------------------------------------------------------------------------------
# has_aux everywhere


def with_aux(fun):
    def f(*args):
        out = fun(*args)
        return out, {"out": out, "note": "aux may hold anything"}

    return f


@CASES
def test_has_aux_check_grad(case):
    result = fdjax.check_grad(with_aux(LOSSES[case]), W, X, has_aux=True, mode="directional")
    assert status(result) == EXPECTED[case]
    assert float(result.value) == pytest.approx(float(LOSSES[case](W, X)))


@CASES
@pytest.mark.parametrize("kind", ["vjp", "jvp"])
def test_has_aux_check_vjp_and_jvp(case, kind):
    act = (ACTIVATIONS if kind == "vjp" else ACTIVATIONS_JVP)[case]

    def f(w):
        h = hidden(act, w, X)
        return h, {"sum": jnp.sum(h), "note": "aux may hold anything"}

    check = fdjax.check_vjp if kind == "vjp" else fdjax.check_jvp
    result = check(f, (W,), has_aux=True, mode="full")
    assert status(result) == EXPECTED[case]
    assert result.kind == kind


@CASES
def test_has_aux_sweep(case):
    loss = LOSSES[case]
    result = fdjax.sweep(with_aux(loss), W, X, has_aux=True, reference=jax.grad(loss))
    # the sweep has no verdict: its estimates agree with jax.grad within their error
    # estimates when the gradient is right, and are 100 error estimates off when it is not
    agree = np.asarray(result.true_error) <= 10 * np.asarray(result.error_estimate) + 1e-12
    assert bool(np.all(agree)) == PASSES[case]
    if not PASSES[case]:
        assert np.all(np.asarray(result.true_error) > 100 * np.asarray(result.error_estimate))


@CASES
def test_has_aux_grad(case):
    loss = LOSSES[case]

    def f(w, x):
        out = loss(w, x)
        return out, {"out": out, "hidden": hidden(ACTIVATIONS[case], w, x)}

    g, aux = fdjax.grad(f, has_aux=True)(W, X)
    g_ad, aux_ad = jax.grad(f, has_aux=True)(W, X)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(close_to_ad, aux, aux_ad))
    assert close_to_ad(g, g_ad) == PASSES[case]
    assert close_to_ad(g, jax.grad(LOSSES["correct"])(W, X))  # FD does not see the planted bug


@pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason="fdjax.grad(has_aux=True) traces aux through jit: a str in aux is 'not a valid JAX type', "
    "where jax.grad(has_aux=True) returns it (repro: /tmp/eco_repros/grad_has_aux_non_array_aux.py)",
)
def test_has_aux_grad_with_a_string_in_aux():
    g, aux = fdjax.grad(with_aux(LOSSES["correct"]), has_aux=True)(W, X)
    assert aux["note"] == "aux may hold anything"
    assert close_to_ad(g, jax.grad(LOSSES["correct"])(W, X))


def test_has_aux_needs_a_pair():
    with pytest.raises(TypeError, match="has_aux"):
        fdjax.check_grad(LOSSES["correct"], W, X, has_aux=True, mode="directional")
    with pytest.raises(TypeError, match="has_aux"):
        fdjax.check_grad(lambda w, x: (LOSSES["correct"](w, x),) * 3, W, X, has_aux=True)


# ------------------------------------------------------------------------------------------
# f's own keyword arguments, and names shared with fdjax's options


def loss_with_key(w, x, *, key):
    """A loss whose noise is drawn from ``key`` (a keyword argument named like fdjax's option)."""
    noise = jax.random.normal(key, (x.shape[0], 2), dtype=x.dtype)
    return jnp.sum((jnp.tanh(x @ w.reshape(3, 2)) + 0.1 * noise) ** 2)


@CASES
def test_keyword_arguments_through_the_transform_form(case):
    act = ACTIVATIONS[case]

    def loss(w, x, *, key):
        noise = jax.random.normal(key, (x.shape[0], 2), dtype=x.dtype)
        return jnp.sum((hidden(act, w, x) + 0.1 * noise) ** 2)

    result = fdjax.check_grad(loss, mode="full")(W, X, key=jax.random.key(3))
    assert status(result) == EXPECTED[case]
    assert result.size == 6  # the key is f's, not differentiated and not fdjax's option


def test_option_name_collision_says_use_the_transform_form():
    with pytest.raises(TypeError, match=r"'key'.*fdjax\.check_grad\(f, \*\*options\)\(\*args, key=\.\.\.\)"):
        fdjax.check_grad(loss_with_key, W, X, key=jax.random.key(3))


def test_required_parameter_named_like_an_option():
    def loss(w, x, mode):
        return jnp.sum(jnp.tanh(x @ w.reshape(3, 2)) ** 2) * (2.0 if mode == "train" else 1.0)

    with pytest.raises(TypeError, match=r"'mode'.*not given"):
        fdjax.check_grad(loss, W, X)
    # and the way out it names: f's own mode through the transform form
    assert bool(fdjax.check_grad(loss, mode="directional")(W, X, mode="train").passed)


@CASES
def test_assert_grad_transform_form(case):
    checker = fdjax.assert_grad(LOSSES[case], mode="directional")
    if PASSES[case]:
        assert bool(checker(W, X).passed)
    else:
        with pytest.raises(fdjax.GradientCheckError, match="FAILED") as info:
            checker(W, X)
        assert status(info.value.result) == fdjax.CheckStatus.FAIL


# ------------------------------------------------------------------------------------------
# What is differentiated in a tree


@CASES
def test_int_function_and_string_leaves_are_held_fixed(case):
    def loss(p, x):
        scale = p["repeat"].astype(x.dtype)  # an int array leaf: held fixed
        h = p["act"](x @ p["w"].reshape(3, 2)) * scale  # a function leaf
        return jnp.sum(h**2) if p["name"] == "squares" else jnp.sum(h)  # a string leaf

    tree = {"w": W, "repeat": jnp.array([2, 3]), "act": ACTIVATIONS[case], "name": "squares"}
    result = fdjax.check_grad(loss, tree, X, mode="directional")
    assert status(result) == EXPECTED[case]
    assert result.leaf_names == ("['w']",)

    if not PASSES[case]:
        return
    g = fdjax.grad(loss)(tree, X)
    assert g["repeat"].dtype == jax.dtypes.float0 and g["repeat"].shape == (2,)  # as jax.grad(allow_int=True)
    assert g["act"] is None and g["name"] is None  # as eqx.filter_grad
    ad = jax.grad(lambda w, n: loss({**tree, "w": w, "repeat": n}, X), argnums=(0, 1), allow_int=True)(
        W, tree["repeat"]
    )
    assert ad[1].dtype == jax.dtypes.float0
    assert close_to_ad(g["w"], ad[0])


class Scaled(eqx.Module):
    w: jax.Array
    scale: float = 0.7  # a hyperparameter: equinox never differentiates it


@CASES
def test_python_float_in_a_dict_is_differentiated_but_not_as_a_module_attribute(case):
    act = ACTIVATIONS[case]

    def loss(tree, x):
        p, m = tree["dict"], tree["module"]
        return jnp.sum(hidden(act, p["w"], x * p["scale"]) ** 2) + jnp.sum(hidden(act, m.w, x * m.scale) ** 2)

    tree = {"dict": {"w": W, "scale": 0.7}, "module": Scaled(W[::-1])}
    result = fdjax.check_grad(loss, tree, X, mode="directional")
    assert status(result) == EXPECTED[case]
    assert result.leaf_names == ("['dict']['scale']", "['dict']['w']", "['module'].w")
    if PASSES[case]:
        fd = fdjax.grad(loss)(tree, X)
        assert fd["module"].scale is None and eqx.filter_grad(loss)(tree, X)["module"].scale is None
        ad = jax.grad(lambda p: loss({**tree, "dict": p}, X))(tree["dict"])  # the float, as jax.grad has it
        assert close_to_ad(fd["dict"]["scale"], ad["scale"]) and close_to_ad(fd["dict"]["w"], ad["w"])
