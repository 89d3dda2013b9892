"""flax models as people check them: nnx modules split into parameters and the rest, passed
whole, holding ``nnx.Rngs`` for Dropout; linen BatchNorm with ``mutable`` (``has_aux``),
linen Dropout with a fixed key, and with a key drawn afresh on every trace (INCONCLUSIVE).

nnx models are in float64 (``param_dtype``); linen ones in flax's default float32, since
linen's BatchNorm cannot run float64 under the strict dtype promotion of these tests.
"""

from __future__ import annotations

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import fdjax

from planted import ACTIVATIONS, EXPECTED, status

CASES = pytest.mark.parametrize("case", list(ACTIVATIONS))

X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) ** 3 + 0.2  # not symmetric: no gradient is 0 by symmetry
X32 = X.astype(jnp.float32)


# ------------------------------------------------------------------------------------------
# nnx


class NnxMLP(nnx.Module):
    """Linear → BatchNorm → activation → Dropout → Linear (31 parameters, 10 batch stats)."""

    def __init__(self, act, *, rngs: nnx.Rngs):
        f64 = dict(param_dtype=jnp.float64)
        self.act = act
        self.l1 = nnx.Linear(
            3, 5, use_bias=False, rngs=rngs, **f64
        )  # a bias before BatchNorm has no gradient
        # flax 0.12 keeps BatchNorm's mean and var in float32 whatever the dtypes: dtype= casts them
        self.bn = nnx.BatchNorm(5, dtype=jnp.float64, rngs=rngs, **f64)
        self.drop = nnx.Dropout(0.3, rngs=rngs)  # holds the "dropout" stream: a key and a counter
        self.l2 = nnx.Linear(5, 1, rngs=rngs, **f64)

    def __call__(self, x):
        return self.l2(self.drop(self.act(self.bn(self.l1(x)))))


def nnx_model(case, *, train: bool):
    model = NnxMLP(ACTIVATIONS[case], rngs=nnx.Rngs(0, dropout=1))
    if train:  # dropout on, drawing from the model's stream; BatchNorm still on its running averages
        model.train()
        model.bn.use_running_average = True
    else:
        model.eval()
    return model


def nnx_loss(model, x):
    return jnp.sum(model(x) ** 2)


@CASES
def test_nnx_split_state(case):
    graphdef, params, rest = nnx.split(nnx_model(case, train=False), nnx.Param, ...)

    def loss(params, rest, x):
        return nnx_loss(nnx.merge(graphdef, params, rest), x)

    result = fdjax.check_grad(loss, params, rest, X, mode="full")
    assert status(result) == EXPECTED[case]
    assert len(result.leaf_names) == 5 and all(name.endswith(".value") for name in result.leaf_names)
    assert not any("mean" in name or "var" in name for name in result.leaf_names)


@CASES
def test_nnx_module_passed_directly(case):
    model = nnx_model(case, train=False)
    result = fdjax.check_grad(nnx_loss, model, X, mode="directional")
    assert status(result) == EXPECTED[case]
    # What we found: an nnx module is a pytree in flax 0.12, and the check takes every float
    # leaf of it, BatchNorm's running mean and var (BatchStat, float32) included, as jax.grad
    # of a pytree does (nnx.grad differentiates nnx.Param only). In eval mode the loss does
    # depend on them, so they are checked like parameters, in their own float32, and the
    # verdict covers them too. To check the parameters only, pass nnx.state(model, nnx.Param)
    # or split (test_nnx_split_state). The Dropout stream's key and counter are held fixed.
    # With the bug planted, .bn.var's own directions read as a kink (INCONCLUSIVE) in this
    # mode instead of FAIL; the check still FAILs on the other leaves
    # (/tmp/eco_repros/mixed_dtype_leaf_kink.py).
    assert set(result.leaf_names) == {
        ".bn.bias.value",
        ".bn.mean.value",
        ".bn.scale.value",
        ".bn.var.value",
        ".l1.kernel.value",
        ".l2.bias.value",
        ".l2.kernel.value",
    }
    assert result.leaf_shapes[result.leaf_names.index(".bn.mean.value")] == (5,)


@CASES
def test_nnx_rngs_and_dropout_held_fixed(case):
    model = nnx_model(case, train=True)
    leaves = jax.tree_util.tree_leaves(model)
    assert any(jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) for leaf in leaves)  # a key leaf
    count = int(model.drop.rngs.count[...])

    result = fdjax.check_grad(nnx_loss, model, X, mode="directional")
    assert status(result) == EXPECTED[case]  # the mask drawn from a fixed stream state is fixed
    assert not any("rngs" in name for name in result.leaf_names)
    assert int(model.drop.rngs.count[...]) == count  # the check did not advance the user's stream
    # dropout was on: the same model in eval mode computes something else
    in_eval = nnx.merge(*nnx.split(model))
    in_eval.eval()
    assert float(result.value) != pytest.approx(float(jax.jit(nnx_loss)(in_eval, X)))


# ------------------------------------------------------------------------------------------
# linen


class LinenMLP(nn.Module):
    """Dense → BatchNorm → activation → Dropout → Dense (31 parameters, 10 batch stats)."""

    act: object

    @nn.compact
    def __call__(self, x, *, train: bool, dropout: bool):
        h = nn.BatchNorm(use_running_average=not train)(nn.Dense(5, use_bias=False)(x))
        h = nn.Dropout(0.3, deterministic=not dropout)(self.act(h))
        return nn.Dense(1)(h)


def linen(case):
    model = LinenMLP(ACTIVATIONS[case])
    return model, model.init(jax.random.key(0), X32, train=False, dropout=False)


@CASES
def test_linen_batchnorm_mutable_with_has_aux(case):
    model, variables = linen(case)

    def loss(params, batch_stats, x):
        out, updates = model.apply(
            {"params": params, "batch_stats": batch_stats},
            x,
            train=True,
            dropout=False,
            mutable=["batch_stats"],
        )
        return jnp.sum(out**2), updates

    result = fdjax.check_grad(
        loss, variables["params"], variables["batch_stats"], X32, has_aux=True, mode="directional"
    )
    assert status(result) == EXPECTED[case]
    assert result.dtype == "float32" and len(result.leaf_names) == 5
    assert not any("mean" in name or "var" in name for name in result.leaf_names)
    _, updates = jax.jit(loss)(variables["params"], variables["batch_stats"], X32)  # aux: the new stats
    assert not np.allclose(updates["batch_stats"]["BatchNorm_0"]["mean"], 0.0)


def linen_dropout_loss(model, params, batch_stats, x, key):
    out = model.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=False, dropout=True, rngs={"dropout": key}
    )
    return jnp.sum(out**2)


@CASES
def test_linen_dropout_with_a_fixed_key(case):
    model, variables = linen(case)

    def loss(params, x, key):
        return linen_dropout_loss(model, params, variables["batch_stats"], x, key)

    result = fdjax.check_grad(loss, variables["params"], X32, jax.random.key(7), mode="directional")
    assert status(result) == EXPECTED[case]
    assert bool(result.deterministic)


def test_linen_dropout_with_a_key_drawn_on_every_trace():
    model, variables = linen("correct")
    seeds = itertools.count()

    def loss(params, x):  # a new mask each time fdjax (or jax.grad) traces the loss
        return linen_dropout_loss(model, params, variables["batch_stats"], x, jax.random.key(next(seeds)))

    result = fdjax.check_grad(loss, variables["params"], X32, mode="directional")
    assert status(result) == fdjax.CheckStatus.INCONCLUSIVE
    assert fdjax.Reason(int(result.reason)) == fdjax.Reason.NONDETERMINISTIC
    assert not bool(result.deterministic) and int(result.failed) == 0  # the gradient is not blamed
    head = result.summary().splitlines()[0]
    assert "not deterministic" in head and "fix the random key" in head, head
