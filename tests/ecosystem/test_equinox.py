"""equinox modules as people pass them: whole modules (with function, string and bool
fields), ``eqx.partition`` halves, BatchNorm state with ``has_aux``, Dropout with a key."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax

from planted import ACTIVATIONS, EXPECTED, status

pytestmark = pytest.mark.parametrize("case", list(ACTIVATIONS))

X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) ** 3 + 0.2  # not symmetric: no gradient is 0 by symmetry


def mlp(case):
    return eqx.nn.MLP(3, 1, 6, 2, activation=ACTIVATIONS[case], key=jax.random.key(0))


def mlp_loss(model, x):
    return jnp.sum(jax.vmap(model)(x) ** 2)


def test_mlp_module_passed_directly(case):
    model = mlp(case)  # its activation is a function leaf, in_size an int field
    result = fdjax.check_grad(mlp_loss, model, X, mode="full")
    assert status(result) == EXPECTED[case]
    assert result.leaf_names[0] == ".layers[0].weight" and len(result.leaf_names) == 6
    if case == "correct":  # fdjax.grad mirrors eqx.filter_grad: non-arrays get None
        fd = fdjax.grad(mlp_loss)(model, X)
        ad = eqx.filter_grad(mlp_loss)(model, X)
        assert fd.activation is None and ad.activation is None
        for a, b in zip(jax.tree_util.tree_leaves(fd), jax.tree_util.tree_leaves(ad), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_conv_module(case):
    conv = eqx.nn.Conv2d(1, 2, 3, key=jax.random.key(1))
    image = jnp.sin(jnp.arange(36.0)).reshape(1, 6, 6)
    act = ACTIVATIONS[case]

    def loss(conv, image):
        return jnp.mean(act(conv(image)) ** 2)

    result = fdjax.check_grad(loss, conv, image, mode="full")
    assert status(result) == EXPECTED[case]
    assert set(result.leaf_names) == {".weight", ".bias"}


def test_partition_static_half_as_argument(case):
    params, static = eqx.partition(mlp(case), eqx.is_inexact_array)

    def loss(params, static, x):
        return mlp_loss(eqx.combine(params, static), x)

    result = fdjax.check_grad(loss, params, static, X, mode="directional")
    assert status(result) == EXPECTED[case]


def test_batchnorm_state_with_has_aux(case):
    act = ACTIVATIONS[case]
    layer, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(3, axis_name="batch", mode="batch")  # a str leaf

    def loss(layer, state, x):
        out, new_state = jax.vmap(layer, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, state)
        return jnp.sum(act(out * jnp.arange(1.0, 4.0)) ** 2), new_state

    result = fdjax.check_grad(loss, layer, state, X, has_aux=True, mode="full")
    assert status(result) == EXPECTED[case]
    assert set(result.leaf_names) == {".weight", ".bias"}


def test_dropout_with_a_fixed_key_through_the_transform_form(case):
    act = ACTIVATIONS[case]
    dropout = eqx.nn.Dropout(0.3)  # p = 0.3 is a float attribute: held fixed, as eqx does
    linear = eqx.nn.Linear(3, 4, key=jax.random.key(2))

    def loss(model, x, *, key):
        linear, dropout = model
        keys = jax.random.split(key, x.shape[0])
        h = jax.vmap(lambda xi, k: dropout(act(linear(xi)), key=k))(x, keys)
        return jnp.sum(h**2)

    # key= goes to the loss: the transform form keeps fdjax's options apart from f's arguments
    result = fdjax.check_grad(loss, mode="full")((linear, dropout), X, key=jax.random.key(5))
    assert status(result) == EXPECTED[case]
    assert not any("p" in name.split(".")[-1] for name in result.leaf_names)
    assert fdjax.grad(loss)((linear, dropout), X, key=jax.random.key(5))[1].p is None
