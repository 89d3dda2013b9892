"""optax as a training loop uses it: its losses on a small model, the parameters after an
optimizer update (``adamw``: the update depends on the parameters through weight decay), and a
check of the loss inside a jitted train step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fdjax

from planted import ACTIVATIONS, EXPECTED, status

pytestmark = pytest.mark.parametrize("case", list(ACTIVATIONS))

X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) ** 3 + 0.2  # not symmetric: no gradient is 0 by symmetry
LABELS = jnp.array([0, 2, 1, 2])  # integer class labels: an int argument, never differentiated
TARGETS = jnp.linspace(-0.5, 0.5, 12).reshape(4, 3)
PARAMS = {"w1": jnp.sin(jnp.arange(15.0)).reshape(3, 5), "w2": jnp.cos(jnp.arange(15.0)).reshape(5, 3)}


def make_logits(act):
    def logits(params, x):
        return act(x @ params["w1"]) @ params["w2"]

    return logits


LOGITS = {case: make_logits(act) for case, act in ACTIVATIONS.items()}


def test_softmax_cross_entropy_with_integer_labels(case):
    logits = LOGITS[case]

    def loss(params, x, labels):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(params, x), labels))

    result = fdjax.check_grad(loss, PARAMS, X, LABELS, mode="full")
    assert status(result) == EXPECTED[case]
    assert result.size == 30


def test_l2_loss(case):
    logits = LOGITS[case]

    def loss(params, x, targets):
        return jnp.sum(optax.l2_loss(logits(params, x), targets))

    result = fdjax.check_grad(loss, PARAMS, X, TARGETS, mode="directional")
    assert status(result) == EXPECTED[case]


def test_loss_after_an_adamw_update(case):
    logits = LOGITS[case]

    def loss(params):
        return jnp.sum(optax.l2_loss(logits(params, X), TARGETS))

    opt = optax.adamw(learning_rate=0.1, weight_decay=0.5)
    opt_state = opt.init(PARAMS)
    g0 = jax.grad(loss)(PARAMS)  # the gradient of the step, fixed: only weight decay sees the params

    def update(params, opt_state):
        with jax.numpy_dtype_promotion("standard"):  # adam's bias correction: a float ** an int32 count
            return opt.update(g0, opt_state, params)[0]

    def loss_after_step(params, opt_state):
        return loss(optax.apply_updates(params, update(params, opt_state)))

    result = fdjax.check_grad(loss_after_step, PARAMS, opt_state, mode="directional")
    assert status(result) == EXPECTED[case]
    # the update does depend on the parameters: weight decay adds -lr·wd·params
    shifted = jax.tree_util.tree_map(lambda p: p + 1.0, PARAMS)
    diff = update(shifted, opt_state)["w1"] - update(PARAMS, opt_state)["w1"]
    np.testing.assert_allclose(diff, -0.05, rtol=1e-12)


def test_check_inside_a_jitted_train_step(case):
    logits = LOGITS[case]

    def loss(params, x, labels):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(params, x), labels))

    opt = optax.sgd(0.1)

    @jax.jit
    def train_step(params, opt_state, x, labels):
        check = fdjax.check_grad(loss, params, x, labels, mode="directional")
        grads = jax.grad(loss)(params, x, labels)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, check.passed, check.status

    params, _, passed, code = train_step(PARAMS, opt.init(PARAMS), X, LABELS)
    assert fdjax.CheckStatus(int(code)) == EXPECTED[case]
    assert bool(passed) == (EXPECTED[case] == fdjax.CheckStatus.PASS)
    assert float(loss(params, X, LABELS)) < float(loss(PARAMS, X, LABELS))  # the step did train
