"""16-bit floats: checks and sweeps cast bfloat16/float16 up to float32 unless told otherwise.

A check run in bfloat16 has tolerances (f's rounding, ~1e-2 relative) larger than the
gradients: it cannot tell a gradient from twice itself. ``precision=None`` (the default)
therefore casts 16-bit leaves to float32; ``"native"`` keeps every leaf's dtype and takes
each leaf's steps in that dtype, so a {bfloat16, float32} tree is measured with the
displacement f actually sees.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax._fd import relative_step_vector, taken_step
from fdjax._fd import get_stencil
from fdjax._pytree import apply_precision, flatten_args

HALF = [jnp.bfloat16, jnp.float16]
EPS = {jnp.bfloat16: 2.0**-7, jnp.float16: 2.0**-10}


@functools.cache
def _softplus(scale: float):
    """softplus with a custom_vjp whose gradient is ``scale`` times the true one.

    Cached (as ``_mlp``, ``_mixed_f`` and the module-level functions below): the same function
    object in every test, so checks that run the same program (16-bit leaves cast up to the
    same float32 shapes) reuse fdjax's compiled bodies instead of compiling them again."""

    @jax.custom_vjp
    def sp(x):
        return jax.nn.softplus(x)

    def fwd(x):
        return sp(x), x

    def bwd(x, g):
        return (scale * g * jax.nn.sigmoid(x),)

    sp.defvjp(fwd, bwd)
    return sp


_X = np.linspace(-1.0, 1.0, 12).reshape(3, 4)


@functools.cache
def _mlp(scale: float):
    """mean(softplus(W·X + b)) over a 3×4 input: f ≈ 0.8, gradients ~0.1."""
    sp = _softplus(scale)

    def loss(p):
        x = jnp.asarray(_X, p["w"].dtype)
        return jnp.mean(sp(p["w"] @ x + p["b"][:, None]))

    return loss


def _params(dtype):
    w = jnp.asarray(np.linspace(-0.8, 0.9, 6).reshape(2, 3), dtype)
    return {"w": w, "b": jnp.asarray([0.3, -0.2], dtype)}


# --------------------------------------------------------------------------------------------
# precision=None: 16-bit leaves are checked in float32
#
# Tests marked with one xdist_group run next to each other, on one worker (tests/conftest.py):
# after the cast to float32 the bfloat16 and float16 parametrizations run the same programs.


@pytest.mark.xdist_group("lowp-mlp")
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("dtype", HALF)
def test_wrong_rule_in_16_bit_fails_by_default(dtype, jit):
    p = _params(dtype)
    check = lambda p: fdjax.check_grad(_mlp(2.0), p)  # noqa: E731
    r = jax.jit(check)(p) if jit else check(p)
    assert r.dtype == "float32"  # float32 ran, not the 16-bit dtype
    assert f"checked in float32 ({jnp.dtype(dtype).name} leaves cast up)" in r.notes
    assert not bool(r.passed)
    assert int(r.failed) > 0
    # a 2x gradient: |a - n| / max(|a|, |n|) = 1/2, measured in float32 to ~3 digits
    assert float(r.max_rel_error) == pytest.approx(0.5, abs=5e-3)


@pytest.mark.parametrize("dtype", HALF)
def test_wrong_rule_in_16_bit_native_does_not_pass(dtype):
    # In the 16-bit dtype itself the check must not PASS a 2x gradient: it fails, or it
    # says it could not decide; never a silent pass.
    r = fdjax.check_grad(_mlp(2.0), _params(dtype), precision="native")
    assert r.dtype == jnp.dtype(dtype).name and not any("checked in" in n for n in r.notes)
    assert not bool(r.passed)


@pytest.mark.xdist_group("lowp-mlp")
@pytest.mark.parametrize("dtype", HALF)
def test_correct_rule_in_16_bit_passes_by_default(dtype):
    r = fdjax.check_grad(_mlp(1.0), _params(dtype))
    assert r.dtype == "float32"
    assert bool(r.passed), r.summary()
    assert int(r.failed) == 0
    assert float(r.max_rel_error) < 1e-2  # a 2x bug reads 0.5


@pytest.mark.xdist_group("lowp-mlp")
@pytest.mark.parametrize("dtype", HALF)
def test_assert_grad_catches_the_16_bit_bug(dtype):
    with pytest.raises(fdjax.GradientCheckError):
        fdjax.assert_grad(_mlp(2.0), _params(dtype))


def test_apply_precision_casts_16_bit_leaves_of_everything():
    args = ({"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}, jnp.ones(3, jnp.float16), 3)
    cot = jnp.ones(2, jnp.bfloat16)
    tan = (jnp.ones(2, jnp.float16),)
    a, c, t, label = apply_precision(None, args, cot, tan, "fdjax.check_grad")
    assert label == "float32 (bfloat16, float16 leaves cast up)"
    assert [x.dtype for x in jax.tree_util.tree_leaves(a[:2])] == [jnp.float32] * 3
    assert a[2] == 3 and c.dtype == jnp.float32 and t[0].dtype == jnp.float32
    a, c, t, label = apply_precision("native", args, cot, tan, "fdjax.check_grad")
    assert label == "native" and a[0]["a"].dtype == jnp.bfloat16 and c.dtype == jnp.bfloat16
    a, c, t, label = apply_precision("float64", args, cot, tan, "fdjax.check_grad")
    assert label == "float64"
    assert {x.dtype for x in jax.tree_util.tree_leaves((a[:2], c, t))} == {jnp.dtype(jnp.float64)}
    # nothing narrow: nothing cast, and the label says the dtypes are the arguments' own
    f32 = (jnp.ones(2, jnp.float32),)
    a, _, _, label = apply_precision(None, f32, None, None, "fdjax.check_grad")
    assert label == "native" and a[0] is f32[0]


# --------------------------------------------------------------------------------------------
# a {bfloat16, float32} tree


def _mixed_f(p):
    # f computes in float32 from the bfloat16 values: smooth at every representable point
    return jnp.sum(jax.nn.softplus(p["a"].astype(jnp.float32) * 1.5)) + jnp.sum(jnp.sin(p["b"]))


def _mixed():
    p = {
        "a": jnp.asarray([-0.7, 0.1, 0.45, 1.3], jnp.bfloat16),
        "b": jnp.asarray([0.2, -0.5, 0.8], jnp.float32),
    }
    return p, _mixed_f


def test_mixed_tree_passes_by_default():
    p, f = _mixed()
    r = fdjax.check_grad(f, p)
    assert r.dtype == "float32"
    assert bool(r.passed), r.summary()
    assert float(r.max_rel_error) < 1e-3


@pytest.mark.parametrize("jit", [False, True])
def test_mixed_tree_native_steps_are_taken_per_leaf(jit):
    p, f = _mixed()
    check = lambda p: fdjax.check_grad(f, p, mode="full", precision="native")  # noqa: E731
    r = jax.jit(check)(p) if jit else check(p)
    assert r.dtype == "float32"  # the flat vector's dtype; the bfloat16 leaf keeps its own
    assert "checked in" not in " ".join(r.notes)
    assert int(r.failed) == 0, r.summary()
    if not jit:
        return
    # inside jit there is no escalation: the steps reported are the first batch's
    a = np.asarray(p["a"], np.float32)
    h = np.asarray(r.elements.step)
    h_a, h_b = h[:4], h[4:]
    # the bfloat16 elements' steps: cbrt(eps_bf16)·max(|x|, 1), taken in bfloat16
    moved = a + h_a
    assert np.all(moved.astype(jnp.bfloat16).astype(np.float32) == moved)
    nominal = (2.0**-7) ** (1 / 3) * np.maximum(np.abs(a), 1)
    assert np.all(np.abs(h_a - nominal) <= 2.0**-8 * (np.abs(a) + nominal))  # half a bf16 ulp
    # the float32 elements' steps: cbrt(eps_f32)·max(|x|, 1)
    b = np.asarray(p["b"])
    np.testing.assert_allclose(h_b, (2.0**-23) ** (1 / 3) * np.maximum(np.abs(b), 1), rtol=1e-5)


def test_mixed_tree_native_catches_a_wrong_bfloat16_rule():
    p, _ = _mixed()
    sp = _softplus(2.0)

    def f(p):
        return jnp.sum(sp(p["a"].astype(jnp.float32) * 1.5)) + jnp.sum(jnp.sin(p["b"]))

    r = fdjax.check_grad(f, p, precision="native")
    assert not bool(r.passed)
    assert int(r.leaves.failed[0]) > 0  # ['a'] fails; ['b'] is right
    assert int(r.leaves.failed[1]) == 0


def test_quantize_and_taken_step_round_to_each_leaf():
    p, _ = _mixed()
    fa = flatten_args((p,), 0, "test")
    assert fa.mixed and fa.dtype == jnp.float32
    x = fa.x
    stencil = get_stencil("central", "test", first_derivative=True)
    rel = relative_step_vector(None, fa, stencil, "test")
    np.testing.assert_allclose(rel[:4], (2.0**-7) ** (1 / 3), rtol=1e-6)
    np.testing.assert_allclose(rel[4:], (2.0**-23) ** (1 / 3), rtol=1e-6)
    h = taken_step(x, rel, fa)
    xp = np.asarray(x + h)
    assert np.all(xp[:4].astype(jnp.bfloat16).astype(np.float32) == xp[:4])
    # without the flat view the bfloat16 elements' steps would not be representable
    h_plain = np.asarray(taken_step(x, rel))
    assert not np.all(
        (np.asarray(x) + h_plain)[:4].astype(jnp.bfloat16).astype(np.float32) == (x + h_plain)[:4]
    )
    # quantize on a subset of coordinates, and the identity for a one-dtype tree
    idx = jnp.asarray([5, 1], jnp.int32)
    v = jnp.asarray([0.123456789, 0.123456789], jnp.float32)
    q = np.asarray(fa.quantize(v, idx))
    assert q[0] == np.float32(0.123456789) and q[1] == np.float32(jnp.bfloat16(0.123456789))
    one = flatten_args((jnp.ones(3, jnp.bfloat16),), 0, "test")
    assert not one.mixed and one.quantize(v) is v


def test_mixed_tree_fd_grad_takes_steps_per_leaf():
    p, f = _mixed()
    g = fdjax.grad(f)(p)
    ref = jax.grad(f)(p)
    assert g["a"].dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(g["a"], np.float32), np.asarray(ref["a"], np.float32), rtol=2e-2, atol=1e-2
    )
    np.testing.assert_allclose(np.asarray(g["b"]), np.asarray(ref["b"]), rtol=1e-3)


# --------------------------------------------------------------------------------------------
# cotangents and tangents in 16 bits


def _sin_times_x(x):
    return jnp.sin(x) * x


def _twice_bad_softplus(x):
    return _softplus(2.0)(x) * 2.0


def _twice_tanh(x):
    return jnp.tanh(x) * 2.0


@pytest.mark.xdist_group("lowp-vjp")
@pytest.mark.parametrize("dtype", HALF)
def test_check_vjp_with_16_bit_cotangents(dtype):
    x = jnp.asarray([0.3, -0.6, 1.1], dtype)
    c = jnp.asarray([1.0, -0.5, 0.25], dtype)
    r = fdjax.check_vjp(_sin_times_x, (x,), c)
    assert r.dtype == "float32" and bool(r.passed), r.summary()
    bad = fdjax.check_vjp(_twice_bad_softplus, (x,), c)
    assert not bool(bad.passed) and int(bad.failed) > 0
    native = fdjax.check_vjp(_twice_bad_softplus, (x,), c, precision="native")
    assert not bool(native.passed)


@pytest.mark.parametrize("dtype", HALF)
def test_check_jvp_with_16_bit_tangents(dtype):
    x = jnp.asarray([0.3, -0.6, 1.1], dtype)
    t = jnp.asarray([1.0, 0.5, -0.25], dtype)
    r = fdjax.check_jvp(_twice_tanh, (x,), (t,), mode="directional")
    assert r.dtype == "float32" and bool(r.passed), r.summary()


# --------------------------------------------------------------------------------------------
# fdjax.sweep in 16 bits


_SWEEP_CASES = {
    "exp": (lambda x: jnp.sum(jnp.exp(x)), jnp.exp),
    "softplus": (lambda x: jnp.sum(jax.nn.softplus(x)), jax.nn.sigmoid),
}


@pytest.mark.xdist_group("lowp-sweep")
@pytest.mark.parametrize("case", sorted(_SWEEP_CASES))
@pytest.mark.parametrize("precision", [None, "native"])
@pytest.mark.parametrize("dtype", HALF)
def test_sweep_in_16_bit(dtype, precision, case):
    f, df = _SWEEP_CASES[case]
    x = jnp.asarray(np.linspace(-1.3, 1.7, 6), dtype)
    true = np.asarray(df(jnp.asarray(x, jnp.float64)))
    s = fdjax.sweep(f, x, precision=precision)
    est, err = np.asarray(s.estimate, np.float64), np.asarray(s.error_estimate, np.float64)
    assert np.all(np.isfinite(est)) and np.all(np.isfinite(err))
    # honest: every estimate is within its own error bound of the true derivative
    assert np.all(np.abs(est - true) <= err), (est, true, err)
    name = jnp.dtype(dtype).name
    if precision is None:
        assert s.precision == f"float32 ({name} leaves cast up)"
        assert s.estimate.dtype == jnp.float32
        assert f"ran in float32 ({name} leaves cast up)" in s.summary()
        assert s.to_dict()["precision"] == s.precision
        np.testing.assert_allclose(est, true, rtol=1e-4)
    else:
        assert s.precision == "native" and s.estimate.dtype == dtype
        # coarse: f's 16-bit rounding (eps·|f| over steps of ~0.1) limits the estimate
        np.testing.assert_allclose(est, true, rtol=64 * EPS[dtype])
        # the default ladder of 16-bit floats: 12 halvings, steps taken in the dtype
        assert len(s.relative_steps) == 12
        steps = np.asarray(s.steps)
        xs = np.asarray(x)[:, None]
        assert np.all((xs + steps.astype(dtype)).astype(np.float64) - xs == steps)


def test_sweep_mixed_tree_native_steps_are_taken_per_leaf():
    p, f = _mixed()
    s = fdjax.sweep(f, p, precision="native")
    x = np.concatenate([np.asarray(p["a"], np.float32), np.asarray(p["b"])]).astype(np.float64)
    # the true derivative (jax.grad would round the bfloat16 leaf's to bfloat16)
    true = np.concatenate([1.5 / (1 + np.exp(-1.5 * x[:4])), np.cos(x[4:])])
    x = x.astype(np.float32)
    steps = np.asarray(s.steps)
    moved = x[:4, None] + steps[:4]
    ok = steps[:4] > 0
    assert np.all((moved.astype(jnp.bfloat16).astype(np.float32) == moved)[ok])
    est, err = np.asarray(s.estimate, np.float64), np.asarray(s.error_estimate, np.float64)
    assert np.all(np.abs(est - true) <= err), (est, true, err)


# --------------------------------------------------------------------------------------------
# bad precision=


@pytest.mark.parametrize("bad", ["float16", "float32", "bfloat16", "NATIVE", np.float32, 64])
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda **kw: fdjax.check_grad(lambda x: jnp.sum(x**2), jnp.ones(2), **kw), "fdjax.check_grad"),
        (lambda **kw: fdjax.check_vjp(jnp.sin, (jnp.ones(2),), **kw), "fdjax.check_vjp"),
        (lambda **kw: fdjax.check_jvp(jnp.sin, (jnp.ones(2),), **kw), "fdjax.check_jvp"),
        (lambda **kw: fdjax.assert_grad(lambda x: jnp.sum(x**2), jnp.ones(2), **kw), "fdjax.assert_grad"),
        (lambda **kw: fdjax.sweep(lambda x: jnp.sum(x**2), jnp.ones(2), **kw), "fdjax.sweep"),
    ],
)
def test_bad_precision_names_the_accepted_values(call, name, bad):
    with pytest.raises(ValueError, match=r"precision=\.\.\.\) must be None") as info:
        call(precision=bad)
    msg = str(info.value)
    assert msg.startswith(f"{name}(precision=...)")
    assert "None (16-bit float leaves (bfloat16, float16) cast to float32)" in msg
    assert "'native' (every leaf in its own dtype)" in msg and "'float64'" in msg
    assert msg.endswith(f"got {bad!r}")


# ------------------------------------------------------------------------------------------
# f that computes in 16 bits inside: the error model works at that precision


def _act16(p, x):
    h = jnp.tanh(x.astype(jnp.bfloat16) @ p["w"].astype(jnp.bfloat16))
    return jnp.mean(h.astype(jnp.float32) ** 2)


def test_working_eps_is_the_narrowest_float_that_depends_on_x():
    from fdjax._check.inputs import working_eps

    p = {"w": jnp.full((4, 3), 0.3, jnp.float32)}
    x = jnp.ones((2, 4), jnp.float32)
    assert working_eps(_act16, flatten_args((p, x), 0, "t")) == (2.0**-7, "bfloat16")
    # float32 throughout (a bfloat16 constant that does not depend on x does not count)
    table = jnp.ones(3, jnp.bfloat16)

    def f32(p, x):
        return jnp.mean(jnp.tanh(x @ p["w"]) * table.astype(jnp.float32))

    assert working_eps(f32, flatten_args((p, x), 0, "t")) == (0.0, "")
    # inside a nested jit and a custom_jvp rule, as well
    inner = jax.jit(lambda w: jnp.sum(jax.nn.relu(w.astype(jnp.float16))).astype(jnp.float32))
    assert working_eps(lambda p, x: inner(p["w"]), flatten_args((p, x), 0, "t")) == (2.0**-10, "float16")
    # in float64 a float32 computation inside is the narrow one
    p64 = {"w": jnp.full((4, 3), 0.3)}
    fa = flatten_args((p64, x.astype(jnp.float64)), 0, "t")
    assert working_eps(lambda p, x: jnp.sum(jnp.sin(p["w"].astype(jnp.float32))), fa) == (
        float(jnp.finfo(jnp.float32).eps),
        "float32",
    )


def test_bfloat16_inside_f_is_not_called_a_bug_and_says_why():
    rng = np.random.RandomState(0)
    p = {"w": jnp.asarray(rng.standard_normal((8, 6)) / 3, jnp.float32)}
    x = jnp.asarray(rng.standard_normal((5, 8)), jnp.float32)
    for mode in ("full", "directional"):
        r = fdjax.check_grad(_act16, p, x, mode=mode)
        assert int(r.status) != int(fdjax.CheckStatus.FAIL), r
        assert any("f computes in bfloat16 inside" in n for n in r.notes), r.notes
        if int(r.status) == int(fdjax.CheckStatus.INCONCLUSIVE):
            assert "rounds in bfloat16 inside" in r.summary().splitlines()[0]
    # a flipped sign is never a pass: at bfloat16's eps the AD side alone may be off by
    # 8 ulps (6 %, times the margin), so it is a FAIL or an honest INCONCLUSIVE
    flipped = jax.custom_vjp(lambda w: w)
    flipped.defvjp(lambda w: (w, None), lambda _, g: (-g,))
    for mode in ("full", "directional"):
        r = fdjax.check_grad(lambda p, x: _act16({"w": flipped(p["w"])}, x), p, x, mode=mode)
        assert int(r.status) != int(fdjax.CheckStatus.PASS), r


# ------------------------------------------------------------------------------------------
# float64 x, f computes in float32: the default step follows f's precision


def _in_float32(x, w):
    x32 = x.astype(jnp.float32)
    return jnp.sum(jnp.tanh(w.astype(jnp.float32) @ x32) ** 2) + jnp.sum(jnp.sin(x32))


def _f32_inside_data(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=n)), jnp.asarray(rng.normal(size=(6, n)))


def test_transforms_default_step_follows_the_precision_f_computes_in():
    # With float64's step (cbrt(eps64) ≈ 6e-6) f's float32 rounding, ~1e-7·|f|, is divided
    # by 6e-6: errors of 1e-2. float32's step (cbrt(eps32) ≈ 5e-3) balances the two:
    # eps32^(2/3) ≈ 2.4e-5 relative, times the function's constants.
    x, w = _f32_inside_data()
    g = jax.grad(_in_float32)(x, w)

    def rel(a):
        return float(jnp.linalg.norm(a - g) / jnp.linalg.norm(g))

    assert rel(fdjax.grad(_in_float32)(x, w)) < 5e-4
    assert rel(fdjax.jacobian(_in_float32)(x, w)) < 5e-4
    v = jnp.asarray(np.random.default_rng(1).normal(size=x.shape))
    _, t = fdjax.jvp(lambda x: _in_float32(x, w), (x,), (v,))
    assert abs(float(t - g @ v)) < 5e-4 * float(jnp.linalg.norm(g) * jnp.linalg.norm(v))
    # an explicit step is the caller's: taken as given, with float32 rounding to match
    assert rel(fdjax.grad(_in_float32, step=6e-6)(x, w)) > 2e-3
    # the adaptive step and the sweep: float32's ladder (ratio 2, 22 steps) and rounding
    assert rel(fdjax.grad(_in_float32, step="auto")(x, w)) < 5e-4
    s = fdjax.sweep(_in_float32, x, w, reference=g)
    narrow = fdjax.sweep(_in_float32, x.astype(jnp.float32), w, reference=g.astype(jnp.float32))
    assert s.relative_steps == narrow.relative_steps and len(s.relative_steps) == 22
    assert np.all(np.asarray(s.true_error) <= np.asarray(s.error_estimate))
    assert float(jnp.max(s.true_error)) < 5e-4 * float(jnp.max(jnp.abs(g)))


def test_check_in_float64_of_a_float32_computation_resolves_what_float32_does():
    # The same check on the float64 and on the float32 parameters: the same steps, the same
    # resolved measurements (before the step followed f's precision, 115 of 211 elements of
    # the corpus's float32-inside MLP were unresolved in float64, against 3 in float32).
    x, w = _f32_inside_data(n=12, seed=2)
    wide = fdjax.check_grad(_in_float32, x, w, mode="full")
    narrow = fdjax.check_grad(_in_float32, x.astype(jnp.float32), w, mode="full")
    assert wide.passed and narrow.passed
    assert any("f computes in float32 inside" in n for n in wide.notes)
    h = np.asarray(wide.elements.step)
    expected = np.cbrt(np.finfo(np.float32).eps) * np.maximum(np.abs(np.asarray(x)), 1)
    first = np.isclose(h, expected, rtol=1e-9)  # escalated elements report their own step
    assert first.mean() >= 0.5 and np.allclose(h, np.asarray(narrow.elements.step), rtol=1e-5)
    unresolved = int(fdjax.Reason.UNRESOLVED)
    assert np.sum(np.asarray(wide.elements.reason) == unresolved) <= np.sum(
        np.asarray(narrow.elements.reason) == unresolved
    )
    # and a 10 % error in the rule is found in float64 as in float32
    scaled = jax.custom_vjp(lambda x: x)
    scaled.defvjp(lambda x: (x, None), lambda _, g: (1.1 * g,))
    bad = fdjax.check_grad(lambda x, w: _in_float32(scaled(x), w), x, w, mode="full")
    assert int(bad.status) == int(fdjax.CheckStatus.FAIL)
