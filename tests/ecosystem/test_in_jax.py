"""Checks called inside JAX transforms, as a training loop calls them: ``jax.jit`` (the same
verdict as eagerly), both branches of ``lax.cond``, each step of ``lax.scan``, and
``jax.vmap`` (a batched ``GradCheck``: indexing, one verdict line per check, ``to_dict`` of
one check only)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import fdjax

from planted import ACTIVATIONS, EXPECTED, status

pytestmark = pytest.mark.parametrize("case", list(ACTIVATIONS))

X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) ** 3 + 0.2  # not symmetric: no gradient is 0 by symmetry
XS = jnp.stack([X, X[::-1] * 0.7, X * 1.3 - 0.1])  # three batches, for scan and vmap
PARAMS = {"w1": jnp.sin(jnp.arange(12.0)).reshape(3, 4), "w2": jnp.cos(jnp.arange(4.0))}  # 16 parameters


def make_loss(act):
    def loss(params, x):
        return jnp.sum((act(x @ params["w1"]) @ params["w2"] - 0.5) ** 2)

    return loss


#: one loss per activation, shared by every test (fdjax caches compiled programs per function)
LOSSES = {case: make_loss(act) for case, act in ACTIVATIONS.items()}


def check(case, x):
    return fdjax.check_grad(LOSSES[case], PARAMS, x, mode="directional")


def test_inside_jit_same_verdict_as_eager(case):
    eager = check(case, X)
    jitted = jax.jit(lambda x: check(case, x))(X)
    assert status(eager) == status(jitted) == EXPECTED[case]
    assert bool(jitted.passed) == (EXPECTED[case] == fdjax.CheckStatus.PASS)
    assert any("inside jax.jit" in note for note in jitted.notes)
    assert jitted.leaf_names == eager.leaf_names


def test_inside_cond_both_branches(case):
    @jax.jit
    def either(pred, x):
        return jax.lax.cond(pred, lambda x: check(case, x).status, lambda x: check(case, 0.8 * x).status, x)

    assert status_of(either(True, X)) == status_of(either(False, X)) == EXPECTED[case]


def test_inside_scan_a_check_per_step(case):
    def step(total, x):
        result = check(case, x)
        return total + result.value, result.status

    total, statuses = jax.lax.scan(step, jnp.zeros(()), XS)
    assert statuses.shape == (3,)
    assert [status_of(s) for s in statuses] == [EXPECTED[case]] * 3
    assert float(total) == pytest.approx(sum(float(LOSSES[case](PARAMS, x)) for x in XS))


def test_inside_vmap_a_batched_result(case):
    # jit(vmap(...)): the same batched result as an eager vmap, whose traced verdict runs op by op
    # and compiles each primitive on its own the first time (~15 s; tests/test_check.py has one)
    r = jax.jit(jax.vmap(lambda x: check(case, x)))(XS)
    assert r.batch_shape == (3,)
    assert [status(r[i]) for i in range(3)] == [EXPECTED[case]] * 3
    verdict = "PASSED" if EXPECTED[case] == fdjax.CheckStatus.PASS else "FAILED"
    one = r[1]
    assert one.batch_shape == () and one.summary().startswith(f"fdjax.check_grad: {verdict}")
    assert r.summary(index=1) == one.summary()
    lines = r.summary().splitlines()
    assert "a batch of 3 checks" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["[0]", "[1]", "[2]"]
    assert all(verdict in line for line in lines[1:4])
    assert one.to_dict()["status"] == EXPECTED[case].label
    with pytest.raises(ValueError, match=r"result\[i\]"):
        r.to_dict()
    with pytest.raises(TypeError, match="one check, not a batch"):
        one[0]


def status_of(code) -> fdjax.CheckStatus:
    return fdjax.CheckStatus(int(code))
