"""The acceptance corpus of fdjax.check_grad / check_vjp / check_jvp.

Buggy custom rules must be caught: every bug in ``full`` mode in float64 (relative size down
to 1e-4), bugs >= 1e-2 in float32 (smaller ones with ``precision="float64"``), bugs >= 1e-3
in ``directional`` and ``locate`` modes. Correct traps must never raise a false alarm, in
every mode, in float64 and float32. Some cases run under ``jax.jit``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from check_corpus import BUGGY, CORRECT, Case

import fdjax
from fdjax import CheckStatus, Reason
from fdjax._engine.compile import WorkJit
from fdjax._pytree import flatten_args


@functools.cache
def built(name: str, dtype):
    """(f, args) once per case and dtype: the same function object in every mode, so the
    compiled direction body (shared by all modes) is reused from the jit cache."""
    return next(c for c in BUGGY + CORRECT if c.name == name).build(dtype)


def check(case: Case, dtype, mode, jit=False, **kw):
    f, args = built(case.name, dtype)
    if case.kind == "grad":
        fn = functools.partial(fdjax.check_grad, f, mode=mode, order=case.order, **kw)
        call = lambda *a: fn(*a)  # noqa: E731
    else:
        chk = fdjax.check_vjp if case.kind == "vjp" else fdjax.check_jvp
        call = lambda *a: chk(f, a, mode=mode, **kw)  # noqa: E731
    return (jax.jit(call) if jit else call)(*args)


@functools.cache
def bug_size(name: str) -> float:
    """‖a_bug − a_ref‖/‖a_ref‖ of the quantity the check compares (float64)."""
    case = next(c for c in BUGGY if c.name == name)
    f, args = case.build(jnp.float64)
    g, _ = case.ref(jnp.float64)
    fa = flatten_args(args, 0 if case.kind == "grad" else tuple(range(len(args))), "size")

    def flat(fun):
        return lambda z: fun(*fa.call_args(z))

    x = fa.x
    if case.kind == "grad" and case.order == 1:
        rule = lambda fun: jax.grad(flat(fun))(x)  # noqa: E731
    elif case.kind == "grad":
        v = jnp.asarray(np.random.default_rng(0).choice([-1.0, 1.0], x.shape[0]))
        rule = lambda fun: jax.jvp(jax.grad(flat(fun)), (x,), (v,))[1]  # noqa: E731
    elif case.kind == "vjp":
        c = jnp.linspace(0.5, 1.5, f(*args).shape[0])
        rule = lambda fun: jax.vjp(flat(fun), x)[1](c)[0]  # noqa: E731
    else:
        t = jnp.asarray(np.random.default_rng(1).normal(size=x.shape[0]))
        rule = lambda fun: jax.jvp(flat(fun), (x,), (t,))[1]  # noqa: E731
    # one program for both rules (eagerly, each of their operations would compile on its own)
    a, b = WorkJit(lambda: (rule(f), rule(g)))()
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def params(cases):
    """One param per case, grouped by case: the tests of a case run next to each other, on one
    xdist worker (tests/conftest.py), and share its compiled bodies (``built``: the same
    function object)."""
    return [pytest.param(c, id=c.name, marks=group(c)) for c in cases]


def mode_params(pairs):
    return [pytest.param(c, m, id=f"{c.name}-{m}", marks=group(c)) for c, m in pairs]


def group(case):
    return pytest.mark.xdist_group(f"corpus-{case.name}")


JITTED = {"tanh_sign_flip", "relu_mlp_preactivations_at_zero", "jvp_custom_rule_vector_function"}


def test_corpus_size():
    assert len(BUGGY) >= 15 and len(CORRECT) >= 15
    rules = sum(1 for c in BUGGY if c.kind != "grad" or "custom" in c.name or c.ref is not None)
    assert rules >= 15


# ------------------------------------------------------------------------------------------
# Buggy cases: every one caught.


@pytest.mark.parametrize("case", params(BUGGY))
def test_bug_caught_full_float64(case):
    size = bug_size(case.name)
    assert size >= 0.5 * case.nominal, size
    r = check(case, jnp.float64, "full", jit=case.name in JITTED)
    assert int(r.status) == CheckStatus.FAIL, f"missed a bug of relative size {size:.1e}\n{r}"
    assert int(r.failed) > 0 and bool(r.deterministic) and not bool(r.nonfinite)
    assert "FAILED" in str(r)


@pytest.mark.parametrize("case", params(BUGGY))
def test_bug_caught_float32(case):
    """Bugs >= 1e-2 are caught in float32; smaller ones by precision="float64"."""
    if case.nominal >= 1e-2:
        r = check(case, jnp.float32, "full")
        assert r.dtype == "float32"
    else:
        r = check(case, jnp.float32, "full", precision="float64")
        assert r.dtype == "float64"
    assert int(r.status) == CheckStatus.FAIL, f"missed a bug of relative size {bug_size(case.name):.1e}\n{r}"


LARGE = [c for c in BUGGY if c.nominal >= 1e-3]
# The directional checks are one compiled body shared by every mode (mode="locate" judges
# the same directions before it bisects), so directional mode runs on every case and the
# bisection on a sample of them (XLA compilation dominates the test time).
SAMPLE = {
    "tanh_sign_flip",
    "layernorm_missing_mean_term",
    "conv_backward_unflipped_kernel",
    "ce_grad_scaled_1e-3",
    "one_wrong_element_of_10k_weight",
    "wrong_second_derivative_only",
    "rnn_bptt_uses_preactivation",
    "vjp_vector_missing_cross_term",
    "jvp_vector_missing_term",
    "relu_mlp_preactivations_at_zero",
    "softmax_ce_logits_50",
    "params_1e-6_to_1e3",
    "cnn_maxpool",
    "sort_top3_with_ties",
    "vjp_vector_function",
}
LOCATE = [c for c in LARGE if c.name in SAMPLE]


@pytest.mark.parametrize("case", params(LARGE))
def test_bug_caught_directional_float64(case):
    r = check(case, jnp.float64, "directional")
    assert int(r.status) == CheckStatus.FAIL, f"missed a bug of relative size {bug_size(case.name):.1e}\n{r}"
    assert np.any(np.asarray(r.directions.status) == 2)


@pytest.mark.parametrize("case", params(LOCATE))
def test_bug_caught_and_located_float64(case):
    r = check(case, jnp.float64, "locate")
    assert int(r.status) == CheckStatus.FAIL, f"missed a bug of relative size {bug_size(case.name):.1e}\n{r}"
    assert np.any(np.asarray(r.directions.status) == 2)  # the directional stage failed
    located = [int(i) for i in np.asarray(r.located) if i >= 0]
    assert located, r
    # Every located element is confirmed wrong element-wise (the bisection ends at a real bug).
    status = dict(zip(np.asarray(r.elements.index).tolist(), np.asarray(r.elements.status).tolist()))
    assert all(status[i] in (2, 3) for i in located), r


@pytest.mark.xdist_group("corpus-one_wrong_element_of_10k_weight")
def test_single_wrong_element_is_the_one_located():
    case = next(c for c in BUGGY if c.name == "one_wrong_element_of_10k_weight")
    r = check(case, jnp.float64, "locate")
    names = {r.element_name(int(i)) for i in np.asarray(r.located) if i >= 0}
    assert names == {"['w'][17, 42]"}, r
    full = check(case, jnp.float64, "full")
    bad = np.flatnonzero(np.asarray(full.elements.status) == 2)
    assert [full.element_name(int(i)) for i in bad] == ["['w'][17, 42]"]


# ------------------------------------------------------------------------------------------
# Correct traps: never a false alarm.


# On a correct function mode="locate" is the directional check (it bisects only on a
# failure): every case runs full, subset and directional, the sample also locate.
MODES_F64 = [(c, m) for c in CORRECT for m in ("full", "subset", "directional")] + [
    (c, "locate") for c in CORRECT if c.name in SAMPLE
]


@pytest.mark.parametrize("case,mode", mode_params(MODES_F64))
def test_no_false_alarm_float64(case, mode):
    r = check(case, jnp.float64, mode, jit=mode == "full" and case.name in JITTED)
    no_false_alarm(r)
    assert bool(r.deterministic)


def no_false_alarm(r):
    """A correct case never FAILS; when it is not a PASS it is INCONCLUSIVE with a reason."""
    assert int(r.status) != CheckStatus.FAIL and int(r.failed) == 0, f"false alarm\n{r}"
    if not bool(r.passed):
        assert int(r.status) == CheckStatus.INCONCLUSIVE and int(r.reason) != Reason.NONE, r


MODES_F32 = [(c, "full") for c in CORRECT] + [
    (c, "locate")
    for c in CORRECT
    if c.name in {"relu_mlp_preactivations_at_zero", "cnn_maxpool", "softmax_ce_logits_50"}
]


@pytest.mark.parametrize("case,mode", mode_params(MODES_F32))
def test_no_false_alarm_float32(case, mode):
    r = check(case, jnp.float32, mode)
    assert r.dtype == "float32"
    no_false_alarm(r)


@pytest.mark.xdist_group("corpus-abs_max_clip_at_kinks")
def test_kinks_are_reported_not_judged():
    case = next(c for c in CORRECT if c.name == "abs_max_clip_at_kinks")
    r = check(case, jnp.float64, "full")
    status = np.asarray(r.elements.status)
    kinks = np.flatnonzero(np.asarray(r.elements.reason) == Reason.KINK)
    # 0, 0.3, ±0.5 exactly and 1e-9 from 0 and from 0.3: within ±2h of a kink at every step
    # that resolves f (steps relative to |x| = 1e-9 are below its round-off: unresolved there).
    assert set(kinks.tolist()) == {0, 1, 2, 3, 4, 5}, r
    assert np.all(np.asarray(r.elements.subgradient)[kinks])
    sp, sm = np.asarray(r.elements.slope_plus), np.asarray(r.elements.slope_minus)
    np.testing.assert_allclose([sp[0], sm[0]], [1.0, -1.0], atol=1e-4)  # |x| at 0
    assert np.all(status[kinks] == CheckStatus.INCONCLUSIVE)
    assert "kink: D+ =" in r.summary(20)
