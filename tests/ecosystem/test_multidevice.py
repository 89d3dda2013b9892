"""Checks on two (forced host) devices: inside ``jax.pmap`` and ``jax.shard_map``, on inputs
sharded over a mesh (eagerly, and under ``jax.set_mesh``), with ``devices=1``, and the error
for an explicit ``devices=`` inside pmap.

The device count is fixed when JAX starts, so every scenario runs in ONE fresh interpreter
(``SCRIPT``), which prints its findings as one JSON line; the tests read them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import fdjax

from planted import ACTIVATIONS, EXPECTED
from subprocess_json import run_json

CASES = pytest.mark.parametrize("case", list(ACTIVATIONS))

SCRIPT = """
import json

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import fdjax
from planted import ACTIVATIONS
from planted_jvp import ACTIVATIONS_JVP

X = jnp.linspace(-1.0, 1.0, 24).reshape(8, 3) ** 3 + 0.2  # 8 rows: 4 per device
W = jnp.linspace(-0.8, 0.9, 6)
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("d",))
sharding = NamedSharding(mesh, P("d"))


def codes(status):
    return np.asarray(status).reshape(-1).tolist()


def attempt(thunk):
    try:
        return codes(thunk())
    except Exception as e:  # reported to the test, which names the scenario
        return f"{type(e).__name__}: {e}"


out = {"device_count": jax.device_count()}
for case, act in ACTIVATIONS.items():

    def loss(w, x):
        return jnp.sum(jnp.tanh(act(x @ w.reshape(3, 2))) ** 2)

    def check(w, x, **options):
        return fdjax.check_grad(loss, w, x, mode="directional", **options)

    res = out[case] = {}
    if case == "correct":  # the whole batched result (its verdicts are computed inside pmap)
        result = jax.pmap(lambda x: check(W, x))(X.reshape(2, 4, 3))
        res["pmap"] = codes(result.status)
        res["pmap printed"] = str(result)
    else:  # the status only: XLA drops the rest of the verdict (a third of the compile time)
        res["pmap"] = codes(jax.pmap(lambda x: check(W, x).status)(X.reshape(2, 4, 3)))
    local = jax.shard_map(lambda x: check(W, x).status[None], mesh=mesh, in_specs=P("d"), out_specs=P("d"))
    res["shard_map"] = codes(jax.jit(local)(X))  # eager shard_map runs the verdict op by op: minutes
    xs, ws = jax.device_put(X, sharding), jax.device_put(W, sharding)
    res["sharded"] = attempt(lambda: check(ws, xs).status)
    with jax.set_mesh(mesh):
        res["set_mesh"] = attempt(lambda: check(ws, xs).status)
    res["devices=1 check_grad"] = codes(check(W, X, devices=1).status)
    res["devices=1 check_vjp"] = codes(
        fdjax.check_vjp(lambda w: act(X @ w.reshape(3, 2)), (W,), mode="directional", devices=1).status
    )
    jvp_act = ACTIVATIONS_JVP[case]
    res["devices=1 check_jvp"] = codes(
        fdjax.check_jvp(lambda w: jvp_act(X @ w.reshape(3, 2)), (W,), mode="directional", devices=1).status
    )
    s = fdjax.sweep(loss, W, X, devices=1, reference=jax.grad(loss))
    agrees = np.asarray(s.true_error) <= 10 * np.asarray(s.error_estimate)
    res["devices=1 sweep agrees"] = bool(np.all(agrees))

try:
    jax.pmap(lambda x: check(W, x, devices=2).status)(X.reshape(2, 4, 3))
    out["pmap devices=2"] = None
except ValueError as e:
    out["pmap devices=2"] = str(e)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def found() -> dict:
    prelude = f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
    found = run_json(prelude + SCRIPT, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert found["device_count"] == 2
    return found


def verdicts(codes) -> list[fdjax.CheckStatus]:
    assert not isinstance(codes, str), codes  # the scenario raised: its message
    return [fdjax.CheckStatus(c) for c in codes]


@CASES
def test_inside_pmap(found, case):
    assert verdicts(found[case]["pmap"]) == [EXPECTED[case]] * 2


def test_inside_pmap_print_the_batched_result(found):
    printed = found["correct"]["pmap printed"].splitlines()  # print(result) of the batched result
    assert "a batch of 2 checks" in printed[0]
    assert printed[1].startswith("  [0] PASSED") and printed[2].startswith("  [1] PASSED")


@CASES
def test_inside_shard_map(found, case):
    assert verdicts(found[case]["shard_map"]) == [EXPECTED[case]] * 2


@CASES
def test_sharded_inputs_eagerly(found, case):
    assert verdicts(found[case]["sharded"]) == [EXPECTED[case]]


@CASES
def test_sharded_inputs_under_set_mesh(found, case):
    assert verdicts(found[case]["set_mesh"]) == [EXPECTED[case]]


@CASES
@pytest.mark.parametrize("check", ["check_grad", "check_vjp", "check_jvp"])
def test_one_device(found, case, check):
    assert verdicts(found[case][f"devices=1 {check}"]) == [EXPECTED[case]]


@CASES
def test_one_device_sweep(found, case):
    # the sweep has no verdict: its estimates agree with jax.grad only when the gradient is right
    assert found[case]["devices=1 sweep agrees"] == (EXPECTED[case] == fdjax.CheckStatus.PASS)


def test_explicit_devices_inside_pmap_is_an_error(found):
    message = found["pmap devices=2"]
    assert message is not None and "devices=2" in message and "devices=None" in message, message
