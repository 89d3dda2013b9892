"""fdjax.check_grad / assert_grad / check_vjp / check_jvp: API, jit, diagnostics, bad input."""

import functools
import json
import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax import CheckStatus
from fdjax._check import jitter


def loss(p, x):
    return jnp.sum(jnp.tanh(x @ p["w"] + p["b"]) ** 2)


P = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(3, 4))), "b": jnp.linspace(-0.5, 0.5, 4)}
X = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)))


@jax.custom_vjp
def _bad_sin(x):
    return jnp.sin(x)


_bad_sin.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x) * 1.01,))


def bad_loss(p, x):
    return jnp.sum(_bad_sin(x @ p["w"] + p["b"]) ** 2)


#: The eager checks of ``loss`` and ``bad_loss`` at (P, X) run next to each other, on one xdist
#: worker (tests/conftest.py): they share fdjax's compiled bodies (the direction body serves
#: every mode).
PX = pytest.mark.xdist_group("check-PX")


@pytest.mark.parametrize(
    "mode, jit",
    [
        pytest.param("full", False, marks=PX),
        ("full", True),
        pytest.param("subset", False, marks=PX),
        ("directional", True),
        pytest.param("locate", False, marks=PX),
        ("locate", True),
    ],
)
def test_modes_with_and_without_jit(mode, jit):
    def run(p, x):
        return fdjax.check_grad(bad_loss, p, x, mode=mode)

    r = (jax.jit(run) if jit else run)(P, X)
    assert isinstance(r, fdjax.GradCheck)
    assert not bool(r.passed) and int(r.failed) > 0
    assert r.leaf_names == ("['b']", "['w']") and r.leaf_shapes == ((4,), (3, 4))
    assert np.asarray(r.leaves.passed).shape == (2,)
    # elements holds the measured ones only: all 16 in full mode, none in directional mode
    stored = {"full": 16, "subset": 16, "directional": 0, "locate": 2}[mode]
    index = np.asarray(r.elements.index)
    assert np.asarray(r.elements.analytic).shape == index.shape == (stored,)
    assert np.all((index >= -1) & (index < 16))
    if mode == "full":
        np.testing.assert_array_equal(index, np.arange(16))
    assert r.by_leaf("status")["['w']"].shape == (3, 4)
    assert "FAILED" in str(r)


@PX
def test_jit_result_matches_eager():
    eager = fdjax.check_grad(bad_loss, P, X)
    traced = jax.jit(lambda p, x: fdjax.check_grad(bad_loss, p, x))(P, X)
    e, t = eager.elements, traced.elements
    np.testing.assert_array_equal(np.asarray(e.status), np.asarray(t.status))
    # Two programs (the eager check's, compiled for compile time when small, and the user's
    # jit, optimized as XLA chooses) round f differently: their FD values agree within the
    # round-off term, and their tolerances within the few ulps of noise each measures.
    diff = np.abs(np.asarray(e.numeric) - np.asarray(t.numeric))
    roundoff = np.maximum(np.asarray(e.roundoff), np.asarray(t.roundoff))
    assert np.all(diff <= roundoff), (diff, roundoff)
    ratio = np.asarray(e.tolerance) / np.asarray(t.tolerance)
    assert np.all((ratio > 0.25) & (ratio < 4)), ratio
    assert str(traced).startswith("fdjax.check_grad: FAILED")


def test_groups_are_pytrees_through_vmap():
    f = lambda v: jnp.sum(jnp.sin(v) ** 2)  # noqa: E731
    xs = jnp.linspace(0.1, 1.0, 6).reshape(2, 3)
    r = jax.vmap(lambda v: fdjax.check_grad(f, v))(xs)
    groups = {"elements": "ElementChecks", "directions": "DirectionChecks", "leaves": "LeafChecks"}
    assert {g: type(getattr(r, g)).__name__ for g in groups} == groups
    assert r.elements.status.shape == (2, 3) and r.leaves.passed.shape == (2, 1) and r.passed.shape == (2,)
    assert r.directions.status.shape[0] == 2 and r.leaf_shapes == ((3,),)  # metadata stays static
    for i in range(2):
        one, eager = jax.tree.map(lambda a, i=i: a[i], r), fdjax.check_grad(f, xs[i])
        np.testing.assert_array_equal(one.elements.status, eager.elements.status)
        np.testing.assert_array_equal(one.directions.status, eager.directions.status)
        assert one.to_dict()["verdict"] == eager.to_dict()["verdict"]


def test_to_dict_schema_and_non_finite_numbers():
    @jax.custom_vjp
    def neg(x):
        return x

    neg.defvjp(lambda x: (x, None), lambda _, g: (-g,))
    # At 0 the central difference of a linear f is exact: a = −n, so ‖a + n‖ = 0.
    r = fdjax.check_grad(lambda v: jnp.sum(neg(v)), jnp.zeros(2))
    assert math.isinf(float(r.norm_ratio)) and math.isinf(float(r.leaves.norm_ratio[0]))
    d = r.to_dict()
    assert d["schema"] == "fdjax.check/3" and next(iter(d)) == "schema"
    assert d["norm_ratio"] is None and d["leaves"][0]["norm_ratio"] is None  # not "inf"
    assert d["passed"] is False and d["elements"]["rel_error"] == [2.0, 2.0]
    assert json.loads(json.dumps(d, allow_nan=False)) == d


@PX
def test_fields_metrics_and_names():
    r = fdjax.check_grad(bad_loss, P, X)
    el = jax.device_get(r.elements)
    a, n = el.analytic, el.numeric
    g = jax.grad(bad_loss)(P, X)
    np.testing.assert_allclose(a, np.concatenate([np.ravel(g["b"]), np.ravel(g["w"])]))
    np.testing.assert_allclose(el.abs_error, np.abs(a - n))
    np.testing.assert_allclose(el.rel_error, np.abs(a - n) / np.maximum(np.abs(a), np.abs(n)))
    # The FD value is the true derivative: the custom rule is 1 % too large.
    true = jax.grad(lambda p, x: jnp.sum(jnp.sin(x @ p["w"] + p["b"]) ** 2))(P, X)
    np.testing.assert_allclose(n, np.concatenate([np.ravel(true["b"]), np.ravel(true["w"])]), rtol=1e-7)
    start = r.leaf_starts[1]
    leaf = slice(start, start + 12)
    ratio = np.linalg.norm(a[leaf] - n[leaf]) / np.linalg.norm(a[leaf] + n[leaf])
    np.testing.assert_allclose(np.asarray(r.leaves.norm_ratio)[1], ratio, rtol=1e-9)
    assert 1.5 < float(np.asarray(r.leaves.digits)[1]) < 2.5  # 1 % agreement: two digits
    assert float(r.sign_agreement) == 1.0
    assert r.element_name(start + 5) == "['w'][1, 1]"
    assert r.by_leaf("analytic")["['w']"].shape == (3, 4)
    parts = el.truncation + el.roundoff + el.ad_rounding
    np.testing.assert_allclose(el.tolerance, r.margin * parts, rtol=1e-12)
    d = r.to_dict(max_elements=3)
    json.dumps(d)
    assert d["passed"] is False and len(d["elements"]["index"]) == 3 and d["leaves"][1]["name"] == "['w']"
    assert d["elements"]["status"][0] == "fail"


@PX
def test_summary_lists_leaves_and_worst_elements():
    r = fdjax.check_grad(bad_loss, P, X)
    text = r.summary(max_rows=4)
    assert "['w']" in text and "['b']" in text and "overall" in text
    assert "worst elements (4 of 16" in text
    assert "× the tolerance" in text and "truncation" in text and "round-off" in text
    assert str(r) == r.summary()


@PX
def test_assert_grad():
    assert bool(fdjax.assert_grad(loss, P, X).passed)
    with pytest.raises(fdjax.GradientCheckError, match=r"FAILED: .* disagree with jax.grad") as info:
        fdjax.assert_grad(bad_loss, P, X, mode="directional")
    assert isinstance(info.value, AssertionError) and not bool(info.value.result.passed)
    assert "['w']" in str(info.value)
    with pytest.raises(TypeError, match="cannot raise inside jax.jit"):
        jax.jit(lambda p: fdjax.assert_grad(loss, p, X).passed)(P)


def test_evaluation_counts():
    n, leaves, k = 16, 2, 5
    # 4 offsets per direction at h and at h/8, f(x) twice, 8 noise probes
    directions = 2 * 4 * (k + 2 * leaves) + 2 + 8
    r = fdjax.check_grad(loss, P, X, mode="directional", num_directions=k)
    assert int(r.evaluations) == 1 + directions
    r = fdjax.check_grad(loss, P, X, num_directions=k)  # plus 4 offsets per element and f(x) twice
    assert int(r.evaluations) == 1 + directions + 4 * n + 2


def test_nondeterministic_function_is_reported():
    def dropout_left_on(x):
        mask = np.random.default_rng().random(x.shape) > 0.5  # a new mask every trace
        return jnp.sum(jnp.where(mask, x, 0.0) ** 2)

    r = fdjax.check_grad(dropout_left_on, jnp.linspace(0.1, 1.0, 64))
    assert not bool(r.deterministic) and not bool(r.passed)
    assert "not deterministic" in str(r) and "dropout left on" in str(r)


def test_nondeterministic_per_evaluation():
    def noisy(x):
        z = jax.pure_callback(
            lambda: np.asarray(np.random.default_rng().normal(), np.float64),
            jax.ShapeDtypeStruct((), jnp.float64),
            vmap_method="sequential",
        )
        return jnp.sum(x**2) + 1e-3 * z

    r = fdjax.check_grad(noisy, jnp.ones(3))
    assert not bool(r.deterministic) and not bool(r.passed)


def test_nonfinite_named_with_element_and_offset():
    # x_2 sits on the boundary of f's domain: f is NaN at x − h·e_2 for every step, so element 2
    # is inconclusive (non-finite), named with its offset; the rest of the leaf is verified.
    x = jnp.asarray([1.0, 2.0, 0.5, 3.0])
    r = fdjax.check_grad(lambda v: jnp.sum(jnp.where(v >= 0.5, (v - 0.5) ** 2, jnp.nan)), x)
    assert bool(r.nonfinite) and bool(r.passed) and int(r.failed) == 0
    assert int(r.nonfinite_index) == 2 and float(r.nonfinite_offset) < 0
    assert int(r.elements.status[2]) == CheckStatus.INCONCLUSIVE
    assert int(r.elements.reason[2]) == fdjax.Reason.NONFINITE
    assert "non-finite: offset -" in str(r) and "nonfinite)" in str(r).splitlines()[0]
    r = fdjax.check_grad(lambda v: jnp.sum(jnp.sqrt(v - 5.0)), x)
    assert "non-finite value at the unperturbed point" in str(r)
    assert int(r.status) == CheckStatus.INCONCLUSIVE and int(r.reason) == fdjax.Reason.NONFINITE


def test_parameter_near_a_domain_boundary_is_checked_at_a_smaller_step():
    # x_2 = 1e-9: the default step (cbrt(eps)·max(|x|, 1) ≈ 6e-6) leaves log's domain; escalation
    # takes it again at steps relative to |x_2| and verifies it.
    x = jnp.asarray([1.0, 2.0, 1e-9, 3.0])
    r = fdjax.check_grad(lambda v: jnp.sum(jnp.log(v)), x, mode="full")
    assert bool(r.passed) and int(r.elements.status[2]) == CheckStatus.PASS
    assert float(r.elements.step[2]) < 1e-9 and int(r.escalated) >= 1
    assert float(r.elements.numeric[2]) == pytest.approx(1e9, rel=1e-6)
    bug = jax.custom_vjp(lambda v: jnp.sum(jnp.log(v)))
    bug.defvjp(lambda v: (jnp.sum(jnp.log(v)), v), lambda v, g: (g / v * jnp.asarray([1, 1, 1.01, 1]),))
    r = fdjax.check_grad(bug, x, mode="full")
    assert int(r.status) == CheckStatus.FAIL and int(r.elements.status[2]) == CheckStatus.FAIL


def test_nonfinite_analytic_value_named():
    @jax.custom_vjp
    def g(v):
        return jnp.sum(v**2)

    g.defvjp(lambda v: (g(v), v), lambda v, c: (c * (2 * v).at[1].set(jnp.nan),))
    r = fdjax.check_grad(g, jnp.ones(3))
    assert bool(r.nonfinite) and int(r.nonfinite_index) == 1 and math.isnan(float(r.nonfinite_offset))
    assert "the analytic derivative is non-finite at <root>[1]" in str(r)


def test_subset_sample_stable_when_other_leaves_change():
    def f(p):
        return sum(jnp.sum(jnp.sin(v)) for v in jax.tree_util.tree_leaves(p))

    p1 = {"a": jnp.linspace(0, 1, 50), "w": jnp.linspace(-1, 1, 200)}
    p2 = {"a": jnp.linspace(0, 1, 70), "c": jnp.ones(9), "w": jnp.linspace(-1, 1, 200)}
    r1 = fdjax.check_grad(f, p1, mode="subset", k=7, key=3)
    r2 = fdjax.check_grad(f, p2, mode="subset", k=7, key=3)
    s1 = r1.by_leaf("status")["['w']"] != CheckStatus.UNCHECKED
    s2 = r2.by_leaf("status")["['w']"] != CheckStatus.UNCHECKED
    assert s1.sum() == 7 and np.array_equal(s1, s2)
    r3 = fdjax.check_grad(f, p1, mode="subset", k=7, key=4)
    assert not np.array_equal(s1, r3.by_leaf("status")["['w']"] != CheckStatus.UNCHECKED)
    assert r1.by_leaf("status")["['a']"].astype(bool).sum() == 7


@PX
def test_subset_default_k_is_min_16_leaf_size():
    r = fdjax.check_grad(loss, P, X, mode="subset")
    # elements + the leaf's random and gradient directions
    assert [int(c) for c in np.asarray(r.leaves.checked)] == [4 + 2, 12 + 2]


def test_float32_steps_and_precision_float64():
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), P)
    x32 = X.astype(jnp.float32)
    r = fdjax.check_grad(loss, p32, x32)
    assert r.dtype == "float32" and bool(r.passed)
    w = np.asarray(p32["b"])
    expected = (w + np.cbrt(np.finfo(np.float32).eps) * np.maximum(np.abs(w), 1)) - w
    np.testing.assert_allclose(r.by_leaf("step")["['b']"], expected, rtol=1e-6)
    r64 = fdjax.check_grad(loss, p32, x32, precision="float64")
    assert r64.dtype == "float64" and bool(r64.passed)
    assert np.max(r64.elements.tolerance) < 1e-3 * np.min(r.elements.tolerance)


def test_precision_float64_needs_x64():
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=r"precision='float64'\) needs 64-bit JAX.*JAX_ENABLE_X64=1"):
            fdjax.check_grad(loss, P, X, precision="float64")


@pytest.mark.parametrize("method", ["forward"])
def test_other_stencils(method):
    assert bool(fdjax.check_grad(loss, P, X, method=method).passed)
    assert not bool(fdjax.check_grad(bad_loss, P, X, method=method).passed)


def test_step_auto_uses_the_sweep():
    r = fdjax.check_grad(loss, P, X, step="auto")
    assert bool(r.passed) and int(r.evaluations) > 20 * 16
    h = np.asarray(r.elements.step)
    assert np.all(h > 0) and not np.allclose(h, h[0])  # a step per element


def test_order2_compares_hessian_vector_product():
    r = fdjax.check_grad(loss, P, X, order=2)
    assert bool(r.passed) and r.order == 2
    a = np.asarray(r.elements.analytic)
    n = np.asarray(r.elements.numeric)
    np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-8)
    # Hv with a ±1 vector v: |Hv| is bounded by the row sums of |H|.
    from fdjax._pytree import flatten_args

    fa = flatten_args((P, X), 0, "t")
    H = jax.hessian(lambda z: loss(*fa.call_args(z)))(fa.x)
    assert np.all(np.abs(a) <= np.abs(np.asarray(H)).sum(1) + 1e-12)


def test_check_vjp_with_given_cotangent():
    def f(x):
        return {"s": jnp.sin(x), "p": x[:2] * x[1:3]}

    x = jnp.linspace(0.1, 1.0, 4)
    c = {"s": jnp.arange(4.0), "p": jnp.ones(2)}
    r = fdjax.check_vjp(f, (x,), c)
    assert bool(r.passed) and r.kind == "vjp" and r.leaf_names == ("<root>",)
    np.testing.assert_allclose(np.asarray(r.elements.analytic), jax.vjp(f, x)[1](c)[0])


def test_check_jvp_with_tangent_direction():
    x = jnp.linspace(0.1, 1.0, 4)
    r = fdjax.check_jvp(jnp.sin, (x,), (jnp.ones(4),), mode="directional")
    kinds = np.asarray(r.directions.kind)
    assert bool(r.passed) and 3 in kinds  # the tangent is one of the directions
    t = np.flatnonzero(kinds == 3)[0]
    assert np.asarray(r.directions.status)[t] == CheckStatus.PASS


def test_locate_one_wrong_element_of_a_1e6_leaf():
    n, bad = 1_000_000, 654_321

    @jax.custom_vjp
    def act(w):  # a cubic: cheaper than a transcendental at 10⁶ elements times ~650 evaluations
        return w + w**3 / 6

    act.defvjp(lambda w: (act(w), w), lambda w, g: ((g * (1 + w**2 / 2)).at[bad].multiply(1.5),))
    w = jnp.asarray(np.random.default_rng(0).normal(size=n))
    r = fdjax.check_grad(lambda p: jnp.sum(act(p["w"])) + 0.5 * jnp.sum(p["w"] ** 2), {"w": w}, mode="locate")
    budget = 32 * math.log2(n)
    again = int(r.escalation_evaluations)  # the failures measured again (the jitter test)
    print(
        f"\nlocate: 1 wrong element of N = {n}: {int(r.evaluations) - again} evaluations "
        f"(32·log2 N = {budget:.0f}), {again} more to measure the failures again"
    )
    assert int(r.evaluations) - again <= budget
    failures = int(np.sum(np.asarray(r.directions.status) == CheckStatus.FAIL)) + 1
    assert again <= jitter.JITTERS * (2 * failures + 3)  # f twice per base and failure, AD per base
    assert sorted({int(i) for i in np.asarray(r.located) if i >= 0}) == [bad]
    failed = np.asarray(r.elements.index)[np.asarray(r.elements.status) == CheckStatus.FAIL]
    assert failed.tolist() == [bad]
    assert r.by_leaf("status")["['w']"][bad] == CheckStatus.FAIL
    assert np.asarray(r.elements.status).size <= 8  # the elements measured, not 10⁶ of them
    assert "confirmed wrong: ['w'][654321]" in str(r)


def test_kink_status_excluded_from_verdict():
    r = fdjax.check_grad(lambda x: jnp.sum(jax.nn.relu(x)), jnp.asarray([-1.0, 0.0, 2.0]))
    assert bool(r.passed)  # the leaf has resolved passes; the kink is inconclusive, not a failure
    assert np.asarray(r.elements.status).tolist() == [
        CheckStatus.PASS,
        CheckStatus.INCONCLUSIVE,
        CheckStatus.PASS,
    ]
    assert int(r.elements.reason[1]) == fdjax.Reason.KINK and bool(r.elements.kink[1])
    assert "inconclusive (" in str(r).splitlines()[0] and "kink)" in str(r).splitlines()[0]
    assert bool(np.asarray(r.elements.subgradient)[1])


@functools.cache
def _relu_maxpool_cnn():
    """(p, cnn, wrong): a float32 ReLU/max-pool CNN loss, and the same loss with the gradient
    of one kernel element (['k'][1, 1, 0, 2], index 18) off by 5% of the largest one.

    Built once: every key checks the same function objects and reuses the compiled bodies."""
    k = jax.random.split(jax.random.key(0), 4)
    p = {
        "k": jax.random.normal(k[0], (3, 3, 1, 4), jnp.float32) * 0.5,
        "kb": jax.random.normal(k[1], (4,), jnp.float32) * 0.5,
        "w": jax.random.normal(k[2], (64, 5), jnp.float32) * 0.5,
    }
    x = jax.random.normal(k[3], (6, 8, 8, 1), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(6) % 5, 5, dtype=jnp.float32)

    def cnn(p):
        dims = ("NHWC", "HWIO", "NHWC")
        h = jax.lax.conv_general_dilated(x, p["k"], (1, 1), "SAME", dimension_numbers=dims)
        h = jax.nn.relu(h + p["kb"])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(h.reshape(6, -1) @ p["w"]) * y, -1))

    bad = 18  # ['k'][1, 1, 0, 2]
    shift = 0.05 * float(jnp.max(jnp.abs(jax.grad(cnn)(p)["k"])))

    @jax.custom_vjp
    def tap(w):
        return w

    def tap_bwd(_, g):
        return (g + jnp.where(jnp.arange(36) == bad, shift, 0.0).reshape(g.shape).astype(g.dtype),)

    tap.defvjp(lambda w: (w, None), tap_bwd)

    def wrong(p):
        return cnn({**p, "k": tap(p["k"])})

    return p, cnn, wrong


@pytest.mark.xdist_group("check-relu-maxpool-cnn")
@pytest.mark.parametrize("key", [0, 2])  # key 2: the bisection without fine steps lost the element
def test_locate_names_a_wrong_kernel_element_of_a_float32_relu_maxpool_cnn(key):
    """float32 steps are large: the directions and most bisection segments of a ReLU/max-pool
    CNN cross kinks at h. Judging them at h/8 (and retrying kinked segments there) must still
    name the one kernel element whose gradient is off by 5% of the largest one."""
    p, cnn, wrong = _relu_maxpool_cnn()
    r = fdjax.check_grad(wrong, p, mode="locate", key=key)
    assert not bool(r.passed)
    assert [int(i) for i in np.asarray(r.located) if i >= 0] == [18]
    assert "confirmed wrong: ['k'][1, 1, 0, 2]" in str(r)
    assert bool(fdjax.check_grad(cnn, p, mode="locate", key=key).passed)


def test_leaf_with_only_kinks_is_reported_as_not_verified():
    # |a| at a = 0: every measurement of leaf 'a' is a kink at every step tried: nothing in 'a'
    # was verified, so the check is INCONCLUSIVE (not a pass), naming 'a' and the reason.
    p = {"a": jnp.zeros(3), "b": jnp.ones(2)}

    def f(p):
        return jnp.sum(jnp.abs(p["a"])) + jnp.sum(p["b"] ** 2)

    r = fdjax.check_grad(f, p)
    assert not bool(r.passed) and int(r.status) == CheckStatus.INCONCLUSIVE
    assert int(r.reason) == fdjax.Reason.KINK and int(r.failed) == 0
    assert np.asarray(r.leaves.status).tolist() == [CheckStatus.INCONCLUSIVE, CheckStatus.PASS]
    text = str(r)
    assert "1 of 2 leaves not verified: ['a'] (kink)" in text
    assert [line.split()[-2:] for line in text.splitlines() if line.strip().startswith("['")][:2] == [
        ["inconclusive", "(kink)"],
        ["1.000", "ok"],
    ]
    with pytest.raises(fdjax.GradientCheckError, match="INCONCLUSIVE"):
        fdjax.assert_grad(f, p)  # the same check, compiled once
    fine = fdjax.check_grad(lambda p: jnp.sum(jnp.abs(p["a"] - 1.0)) + jnp.sum(p["b"] ** 2), p)
    assert bool(fine.passed) and "not verified" not in str(fine)


@pytest.mark.parametrize("bug", [1.0, 1.01])
def test_direction_crossing_a_kink_is_judged_at_the_fine_step(bug):
    """f(t) = g·t + J·max(t − 1.5h, 0) along one direction: the slope jump J lies inside
    ±2h (a kink at h) but outside ±2·FINE·h, so the fine measurement is judged: it passes
    the true slope g and fails g·1.01 instead of leaving the direction out."""
    from fdjax._check.model import check_offsets
    from fdjax._check.rows import FINE, Samples, measure_samples

    stencil = fdjax.METHODS["central"]
    g, jump, h = 2.0, 3.0, 1e-3
    offs = np.asarray(check_offsets(stencil) + tuple(FINE * o for o in check_offsets(stencil)))
    delta = offs * h
    F = g * delta + jump * np.maximum(delta - 1.5 * h, 0.0)
    a = g * bug
    s = Samples(
        F=jnp.asarray(F[:, None]),
        L=jnp.asarray(a * delta[:, None]),
        B=jnp.asarray(np.abs(a * delta)[:, None]),
        h=jnp.asarray([h]),
        q=jnp.ones(1),
        centers=jnp.zeros(2),
        valid=jnp.ones(1, bool),
        probes=jnp.zeros(0),
    )
    k = len(check_offsets(stencil))
    coarse = measure_samples(s._replace(F=s.F[:k], L=s.L[:k], B=s.B[:k]), 0.0, stencil, 10.0, 2.0**-52)
    assert bool(coarse.kink[0]) and int(coarse.status[0]) == CheckStatus.INCONCLUSIVE
    assert int(coarse.reason[0]) == fdjax.Reason.KINK
    m = measure_samples(s, 0.0, stencil, 10.0, 2.0**-52)
    assert not bool(m.kink[0])
    assert int(m.status[0]) == (CheckStatus.PASS if bug == 1.0 else CheckStatus.FAIL)
    assert float(m.numeric[0]) == pytest.approx(g, rel=1e-9)


# ------------------------------------------------------------------------------------------
# Bad input: every path a clear error naming the argument.


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (
            {"mode": "fast"},
            ValueError,
            r"fdjax.check_grad\(mode=...\) must be one of "
            r"\['auto', 'full', 'subset', 'directional', 'locate'\], got 'fast'",
        ),
        ({"method": "nope"}, ValueError, r"fdjax.check_grad\(method=...\) must be one of"),
        ({"method": "complex"}, ValueError, r"fdjax.check_grad\(method=...\) must be a real stencil"),
        (
            {"method": fdjax.Stencil.from_offsets([-1, 0, 1], derivative=2)},
            ValueError,
            r"first-derivative stencil",
        ),
        (
            {"mode": "subset", "k": 5},
            ValueError,
            r"fdjax.check_grad\(k=...\) must not exceed .* k=5 but leaf \['b'\] has 4",
        ),
        ({"k": 2}, ValueError, r"fdjax.check_grad\(k=...\) applies to mode='subset' only"),
        ({"mode": "subset", "k": 0}, ValueError, r"fdjax.check_grad\(k=...\) must be an int >= 1, got 0"),
        ({"order": 3}, ValueError, r"fdjax.check_grad\(order=...\) must be 1 or 2, got 3"),
        (
            {"precision": "float16"},
            ValueError,
            r"fdjax.check_grad\(precision=...\) must be None .* got 'float16'",
        ),
        (
            {"margin": 0.0},
            ValueError,
            r"fdjax.check_grad\(margin=...\) must be a positive finite number, got 0.0",
        ),
        ({"margin": float("nan")}, ValueError, r"fdjax.check_grad\(margin=...\)"),
        ({"num_directions": 0}, ValueError, r"fdjax.check_grad\(num_directions=...\) must be an int >= 1"),
        (
            {"max_located": 1.5},
            ValueError,
            r"fdjax.check_grad\(max_located=...\) must be an int >= 1, got 1.5",
        ),
        (
            {"step": -1e-3},
            ValueError,
            r"fdjax.check_grad\(step=...\) must be positive and finite, got -0.001",
        ),
        ({"step": "tiny"}, ValueError, r"fdjax.check_grad\(step=...\) must be .*\"auto\""),
        (
            {"step": "auto", "mode": "directional"},
            ValueError,
            r"fdjax.check_grad\(step='auto'\) needs mode='full'",
        ),
        (
            {"key": "seed"},
            TypeError,
            r"fdjax.check_grad\(key=...\) must be None, an int seed or a jax.random key, got 'seed'",
        ),
        ({"argnums": 5}, ValueError, r"fdjax.check_grad\(argnums=...\) refers to positional argument 5"),
        ({"chunk_size": 0}, ValueError, r"fdjax.check_grad\(chunk_size=...\) must be a positive int"),
    ],
)
def test_bad_configuration(kwargs, err, match):
    with pytest.raises(err, match=match):
        fdjax.check_grad(loss, P, X, **kwargs)


@PX
def test_bad_function_and_arguments():
    with pytest.raises(TypeError, match=r"fdjax.check_grad\(fun=...\) must be callable, got int"):
        fdjax.check_grad(3, P, X)
    with pytest.raises(
        TypeError,
        match=r"fdjax.check_grad requires a scalar-output function \(shape \(\)\), "
        r"got output \(5, 4\).*check_vjp",
    ):
        fdjax.check_grad(lambda p, x: jnp.tanh(x @ p["w"]), P, X)
    with pytest.raises(
        TypeError, match=r"fdjax.check_grad requires real floating-point outputs, got dtype int32"
    ):
        fdjax.check_grad(lambda x: jnp.sum(x).astype(jnp.int32), jnp.ones(3))
    with pytest.raises(
        ValueError,
        match=r"fdjax.check_grad: the differentiated argument contains non-finite values; "
        r"first at \['b'\]\[1\]",
    ):
        fdjax.check_grad(loss, {"w": P["w"], "b": P["b"].at[1].set(jnp.inf)}, X)
    with pytest.raises(ValueError, match=r"empty pytree"):
        fdjax.check_grad(lambda p: 0.0, {})
    with pytest.raises(TypeError, match=r"no floating-point leaves"):
        fdjax.check_grad(lambda i: jnp.float64(1.0), jnp.arange(3))
    r = fdjax.check_grad(loss, P, X)
    with pytest.raises(ValueError, match=r"GradCheck.by_leaf\(field=...\) must be one of"):
        r.by_leaf("bogus")


def test_bad_vjp_jvp_input():
    f = lambda x: jnp.sin(x)  # noqa: E731
    x = jnp.ones(3)
    with pytest.raises(
        ValueError,
        match=r"fdjax.check_vjp\(cotangents=...\) leaf shape \(4,\) does not match "
        r"the output leaf shape \(3,\)",
    ):
        fdjax.check_vjp(f, (x,), jnp.ones(4))
    with pytest.raises(
        ValueError,
        match=r"fdjax.check_vjp\(cotangents=...\) must have the structure of the function's output",
    ):
        fdjax.check_vjp(f, (x,), {"a": jnp.ones(3)})
    with pytest.raises(TypeError, match=r"fdjax.check_vjp\(primals=...\) must be a tuple or list"):
        fdjax.check_vjp(f, x)
    with pytest.raises(ValueError, match=r"fdjax.check_jvp\(primals=...\) must not be empty"):
        fdjax.check_jvp(f, ())
    with pytest.raises(
        ValueError,
        match=r"fdjax.check_jvp\(tangents=...\) leaf shape \(2,\) does not match the primal shape \(3,\)",
    ):
        fdjax.check_jvp(f, (x,), (jnp.ones(2),))
    with pytest.raises(TypeError, match=r"fdjax.check_jvp\(tangents=...\) must be a tuple or list"):
        fdjax.check_jvp(f, (x,), jnp.ones(3))
    with pytest.raises(ValueError, match=r"fdjax.check_jvp\(cotangents=...\) leaf shape"):
        fdjax.check_jvp(f, (x,), cotangents=jnp.ones((3, 1)))


# ------------------------------------------------------------------------------------------
# The error model on synthetic values (NumPy path: no compilation).

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fdjax._check.model import check_offsets, digits_of, measure, relative_error, rounding_bound  # noqa: E402
from fdjax._fd import METHODS  # noqa: E402

_coef = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(c1=_coef, c2=_coef, c3=_coef, c4=_coef, h=st.floats(1e-6, 1e-2), bug=st.floats(-1.0, 1.0))
@example(c1=1.0, c2=0.0, c3=0.0, c4=0.0, h=1e-5, bug=0.0)
@example(c1=0.0, c2=0.0, c3=0.0, c4=1.0, h=0.0078125, bug=0.0)
def test_error_model_on_polynomials(c1, c2, c3, c4, h, bug):
    """f(x + s·h) = c1·s·h + c2·(s·h)² + c3·(s·h)³ + c4·(s·h)⁴: the truth is c1. A correct
    analytic value never fails; one off by more than the tolerance fails unless it is at a
    kink; a cubic (smooth at every scale) is never a kink."""
    stencil = METHODS["central"]
    offs = check_offsets(stencil)
    t = np.asarray(offs) * h
    F = (c1 * t + c2 * t**2 + c3 * t**3 + c4 * t**4)[:, None]
    rho = rounding_bound(F, np.float64(0.0), 0.0, np.finfo(np.float64).eps, np)
    a = c1 + bug * (abs(c1) + 1.0)
    L = (a * t)[:, None]
    m = measure(
        F,
        np.float64(0.0),
        L,
        np.abs(L),
        np.asarray([h]),
        rho,
        stencil,
        offs,
        eps_ad=2.2e-16,
        margin=10.0,
        xp=np,
    )
    if bug == 0.0:
        assert m.status[0] != 2
    if c4 == 0.0:
        assert not m.kink[0]
    if abs(m.error[0]) > m.tolerance[0] and not m.kink[0]:
        assert m.status[0] == 2


@given(a=_coef, n=_coef)
def test_relative_error_and_digits(a, n):
    r = float(relative_error(np.float64(a), np.float64(n), np))
    assert 0.0 <= r <= 2.0 and r == float(relative_error(np.float64(n), np.float64(a), np))
    d = float(digits_of(np.float64(r), 2.2e-16, np))
    assert 0.0 <= d <= 15.7


def test_an_int_seed_is_the_key_it_names():
    """key=s (and the default, 0) is ``jax.random.key(s)``: the same key data, computed on the
    host, so the same directions and the same verdict values."""
    from fdjax._check.inputs import as_key

    for s in (0, 1, 7, 2**31 - 1):
        np.testing.assert_array_equal(as_key(s, "t"), jax.random.key_data(jax.random.key(s)))
    for s in (-1, 2**40):  # outside the host rule: the key itself
        assert jnp.issubdtype(as_key(s, "t").dtype, jax.dtypes.prng_key)
    f = lambda v: jnp.sum(jnp.sin(v) * v)  # noqa: E731
    v = jnp.linspace(-1.0, 2.0, 7)
    a = fdjax.check_grad(f, v, key=5, mode="directional")
    b = fdjax.check_grad(f, v, key=jax.random.key(5), mode="directional")
    c = fdjax.check_grad(f, v, key=6, mode="directional")
    np.testing.assert_array_equal(a.directions.numeric, b.directions.numeric)
    assert not np.array_equal(np.asarray(a.directions.numeric), np.asarray(c.directions.numeric))


def test_a_first_check_compiles_only_its_own_programs():
    """In a new process, a check compiles fdjax's programs and nothing else: no eager JAX
    operation on the host side (each would be one more program to compile, ~0.01-0.05 s)."""
    from subprocess_json import run_json

    code = textwrap.dedent(
        """
        import collections, json, jax, jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        seen = collections.Counter()
        x = jnp.linspace(-1.0, 2.0, 12).reshape(4, 3)
        p = {"w": jnp.ones((3, 2)) / 3, "b": jnp.asarray([0.3, -0.2])}
        big = jnp.linspace(-1.0, 1.0, 300).reshape(20, 15)  # auto: N > 256 predicts the time
        jax.block_until_ready((x, p, big))

        def listen(event, duration, **kw):
            if event.endswith("backend_compile_duration"):
                seen.update([kw.get("fun_name")])

        jax.monitoring.register_event_duration_secs_listener(listen)
        import fdjax
        f = lambda p: jnp.sum(jnp.tanh(x @ p["w"] + p["b"]) ** 2)
        out = {}
        for mode in ("full", "directional", "locate", "subset"):
            seen.clear()
            assert bool(fdjax.check_grad(f, p, mode=mode).passed), mode
            out[mode] = dict(seen)
        seen.clear()
        r = fdjax.check_grad(lambda w: jnp.sum(jnp.sin(w) * w[0]), big)
        assert bool(r.passed)
        out["auto"] = dict(seen)
        # data passed as an argument, with work on it alone: traced abstractly, never run
        # eagerly op by op (each operation a program of its own)
        g = lambda p, x: jnp.sum(jnp.tanh(x @ p["w"] + p["b"]) ** 2) + jnp.sum(jnp.cos(x @ x.T))
        data = jax.block_until_ready(x * 1.5)
        seen.clear()
        assert bool(fdjax.check_grad(g, p, data, mode="directional").passed)
        out["data argument"] = dict(seen)
        print(json.dumps(out))
        """
    )
    out = run_json(code)
    # full: the direction and element bodies; directional and locate (nothing to bisect) reuse
    # the direction body; subset: its own element body
    assert out == {
        "full": {"jit(_call)": 2},
        "directional": {},
        "locate": {},
        "subset": {"jit(_call)": 1},
        "auto": {"jit(_call)": 2},  # its time predicted from the lowered program: not compiled
        "data argument": {"jit(_call)": 1},
    }
