"""The three outcomes of a check and how they are reached: resolution, escalation,
determinism, faithful batching, mode="auto" (issue 11's classes, one test each or more)."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax import CheckStatus, Reason
from fdjax._check import api, bases, escalate
from fdjax._check.model import Measurement
from fdjax._fd.stencils import get_stencil

import verdict_corpus


@functools.cache
def _flip_small_leaf(bug: bool):
    """{'big': O(1) gradient, 'small': gradient ~1e-10}; the bug flips the small one's sign.

    Cached: one function object for every mode, so the modes share the compiled direction
    body (they run next to each other, on one xdist worker: tests/conftest.py)."""

    @jax.custom_vjp
    def tiny(s):
        return 1e-10 * jnp.sum(jnp.sin(s))

    tiny.defvjp(lambda s: (tiny(s), s), lambda s, g: ((-1.0 if bug else 1.0) * 1e-10 * g * jnp.cos(s),))

    def f(p):
        return jnp.sum(jnp.tanh(p["big"]) ** 2) + tiny(p["small"])

    p = {"big": jnp.linspace(-1.0, 1.0, 7), "small": jnp.linspace(0.1, 0.9, 5)}
    return f, p


@pytest.mark.xdist_group("outcomes-small-leaf")
@pytest.mark.parametrize("mode", ["full", "directional", "locate"])
def test_unresolved_leaf_is_escalated_to_larger_steps(mode):
    """A gradient ~1e-10 next to O(1) ones is below the round-off at the default step: it is
    unresolved there, measured again at larger steps, and a flipped sign FAILS."""
    f, p = _flip_small_leaf(bug=True)
    r = fdjax.check_grad(f, p, mode=mode)
    assert int(r.status) == CheckStatus.FAIL, r
    assert int(r.escalated) > 0 and int(r.escalation_evaluations) > 0
    small = r.leaf_names.index("['small']")
    assert int(r.leaves.status[small]) == CheckStatus.FAIL
    f, p = _flip_small_leaf(bug=False)
    r = fdjax.check_grad(f, p, mode=mode)
    assert bool(r.passed), r


def test_vacuous_tolerance_is_never_a_pass():
    """f ≈ 1 in float32 with gradients ~1e-9: no step resolves them. Not a PASS; INCONCLUSIVE
    as unresolved, for the right and for a doubled gradient alike."""

    @jax.custom_vjp
    def f(x):
        return 1.0 + 1e-9 * jnp.sum(x)

    f.defvjp(lambda x: (f(x), None), lambda _, g: (2e-9 * g * jnp.ones(3, jnp.float32),))
    x = jnp.ones(3, jnp.float32)
    for fun in (f, lambda x: 1.0 + 1e-9 * jnp.sum(x)):
        r = fdjax.check_grad(fun, x)
        assert int(r.status) == CheckStatus.INCONCLUSIVE and int(r.reason) == Reason.UNRESOLVED, r
        assert "PASSED" not in str(r) and "not verified" in str(r)
        with pytest.raises(fdjax.GradientCheckError, match="INCONCLUSIVE.*To resolve"):
            fdjax.assert_grad(fun, x)
        assert fdjax.assert_grad(fun, x, allow_inconclusive=True) is not None


def _meas(**kw):
    n = len(kw["status"])
    base = {f: np.zeros(n) for f in Measurement._fields}
    base.update(kink=np.zeros(n, bool), subgradient=np.ones(n, bool), finite=np.ones(n, bool))
    base.update({k: np.asarray(v) for k, v in kw.items()})
    base["status"] = base["status"].astype(np.int8)
    base["reason"] = base.get("reason", np.zeros(n)).astype(np.int8)
    return Measurement(**base)


def test_merge_decides_by_the_most_precise_step():
    P, F, I = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.INCONCLUSIVE  # noqa: E741
    # three items, first measured as failures; the ladder (2 smaller steps) says:
    # item 0: a more precise step passes -> PASS;
    # item 1: the most precise fails, and the first step's FD value agrees with it -> FAIL;
    # item 2: the most precise fails, but no other step agrees with its FD value, and the first
    # step's (resolved, 9 ± 1) is beyond both bounds from it (3 ± 0.1) -> INCONCLUSIVE, kink.
    first = _meas(
        status=[F, F, F],
        error=[1.5, 1.5, 1.5],
        tolerance=[1.0, 1.0, 1.0],
        numeric=[9, 2.2, 9],
        step=[1, 1, 1],
    )
    ladder = _meas(
        step=[0.25, 0.25, 0.25, 0.0625, 0.0625, 0.0625],
        status=[P, F, F, I, P, P],
        reason=[0, 0, 0, Reason.KINK, 0, 0],
        error=[0.01, 0.5, 0.12, 0.0, 0.3, 0.3],
        tolerance=[0.1, 0.1, 0.1, 1.0, 2.0, 0.5],
        numeric=[1, 2, 3, 4, 3.5, 6],
    )
    out = escalate.merge(first, ladder, np.arange(3), (0.25, 0.0625))
    assert out.status.tolist() == [P, F, I]
    assert out.reason.tolist() == [0, 0, Reason.KINK]
    assert out.numeric.tolist() == [1, 2, 3]  # the values of the deciding measurement
    # nothing resolved anywhere: the most telling reason (unresolved > kink > non-finite)
    first = _meas(status=[I], reason=[Reason.NONFINITE], tolerance=[np.inf])
    ladder = _meas(status=[I, I], reason=[Reason.KINK, Reason.NONFINITE], tolerance=[1.0, 1.0])
    out = escalate.merge(first, ladder, np.arange(1), (0.5, 0.25))
    assert out.status.tolist() == [I] and out.reason.tolist() == [Reason.KINK]
    # a larger step counts only where its FD value agrees with the first one's
    P = CheckStatus.PASS
    first = _meas(status=[I], reason=[Reason.UNRESOLVED], numeric=[1.0], tolerance=[3.0], step=[1.0])
    far = _meas(status=[F, F], numeric=[-9.0, -9.0], error=[5.0, 5.0], tolerance=[0.1, 0.1], step=[32, 256])
    assert escalate.merge(first, far, np.arange(1), (32.0, 256.0)).status.tolist() == [I]
    near = _meas(status=[F, F], numeric=[-1.0, -1.0], error=[5.0, 5.0], tolerance=[0.1, 0.1], step=[32, 256])
    assert escalate.merge(first, near, np.arange(1), (32.0, 256.0)).status.tolist() == [F]
    # ... a pass at a step that could have seen the error (tolerance below it) contradicts it
    first = _meas(status=[P], numeric=[-1.1], error=[0.1], tolerance=[0.3], step=[1.0])
    moved = _meas(status=[F, F], numeric=[-1.0, -1.0], error=[5.0, 5.0], tolerance=[0.1, 0.1], step=[4, 16])
    out = escalate.merge(first, moved, np.arange(1), (4.0, 16.0))
    assert out.status.tolist() == [I] and out.reason.tolist() == [Reason.KINK]
    # ... and a failure is confirmed only by a step at least 4x away (2x is too close)
    close = _meas(status=[F, F], numeric=[-1.0, -1.0], error=[5.0, 5.0], tolerance=[0.1, 0.1], step=[32, 64])
    assert escalate.merge(first, close, np.arange(1), (32.0, 64.0)).status.tolist() == [I]


def test_a_failure_whose_fd_value_moves_beyond_a_resolved_steps_bound_is_a_kink():
    """Measured on the 1e5-parameter float32 ReLU CNN (full mode, key 1): a first-conv weight
    of -0.106 (gradient -6.9e-4). Its first step (4.9e-3) is unresolved; at 256× (a move of
    1.26) D(h) and D(2h) agree to 1e-5, so that step claims a tolerance of 6.3e-6 and fails
    by 281×, "confirmed" by 32× (FD value within that step's wide bound). But the resolved 2×
    step's FD value, -1.42e-3 ± 6.9e-4, is 1.0e-3 from the 256× one's: a bug a − ∇f would
    be within both bounds at both steps. The FD value moved with the step: a kink."""
    F, I = CheckStatus.FAIL, CheckStatus.INCONCLUSIVE  # noqa: E741
    a = -6.875e-4
    first = _meas(
        status=[I],
        reason=[Reason.UNRESOLVED],
        analytic=[a],
        numeric=[-1.235e-3],
        error=[-5.48e-4],
        tolerance=[1.57e-3],
        step=[4.92e-3],
    )
    mults = (0.5, 2.0, 32.0, 256.0)
    numeric = np.array([-8.72e-4, -1.417e-3, -3.558e-3, -2.462e-3])
    tol = np.array([3.15e-3, 6.86e-4, 1.77e-3, 6.31e-6])
    ladder = _meas(
        status=[I, F, F, F],
        reason=[Reason.UNRESOLVED, 0, 0, 0],
        analytic=[a] * 4,
        numeric=numeric,
        error=numeric - a,
        tolerance=tol,
        step=[4.92e-3 * m for m in mults],
    )
    out = escalate.merge(first, ladder, np.arange(1), mults)
    assert out.status.tolist() == [I] and out.reason.tolist() == [Reason.KINK]
    # with the 2x step's FD value within the bounds (a constant bug term): FAIL as before
    agreeing = ladder._replace(numeric=np.array([-8.72e-4, -2.0e-3, -3.558e-3, -2.462e-3]))
    agreeing = agreeing._replace(error=agreeing.numeric - a)
    out = escalate.merge(first, agreeing, np.arange(1), mults)
    assert out.status.tolist() == [F]


def test_a_marginal_failure_at_one_step_is_outvoted_by_passes_nearer_zero():
    """Measured on a 1e5-parameter float32 ReLU CNN (key 3): a bias leaf's gradient direction
    passes at its first step and at 0.125×, 0.5× and 2× it, and fails at 4× (the smallest
    tolerance) by 1.27× with no step to confirm it. The passes' errors sit near zero, where a
    bug of 6.3e-6 would show at every one of them within its error bound."""
    P, F, I = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.INCONCLUSIVE  # noqa: E741
    mults = (0.125, 0.5, 2.0, 4.0)
    first = _meas(status=[P], error=[1.2e-6], tolerance=[1.42e-5], numeric=[2.04e-4], step=[0.34])

    def ladder(errors, tol_best=5.0e-6):
        return _meas(
            status=[P if abs(e) <= t else F for e, t in zip(errors, (6.3e-5, 2.2e-5, 1.5e-5, tol_best))],
            error=errors,
            tolerance=[6.3e-5, 2.2e-5, 1.5e-5, tol_best],
            numeric=[2.04e-4 + e for e in errors],
            step=[0.34 * m for m in mults],
        )

    out = escalate.merge(first, ladder([8e-7, -5.7e-7, 3.1e-6, 6.3e-6]), np.arange(1), mults)
    assert out.status.tolist() == [P] and out.reason.tolist() == [0]
    assert out.tolerance.tolist() == [1.42e-5]  # the most precise of the passes that outvote
    # errors nearer the failing one than zero are what a bug gives: not outvoted
    out = escalate.merge(first, ladder([5e-6, 4e-6, 4.5e-6, 6.3e-6]), np.arange(1), mults)
    assert out.status.tolist() == [I] and out.reason.tolist() == [Reason.UNRESOLVED]
    # one pass nearer zero is not enough (first: 1.2e-6 and 0.5×: -5.7e-7 are two)
    near = _meas(status=[P], error=[5e-6], tolerance=[1.42e-5], numeric=[2.04e-4], step=[0.34])
    out = escalate.merge(near, ladder([4.5e-6, -5.7e-7, 5e-6, 6.3e-6]), np.arange(1), mults)
    assert out.status.tolist() == [I]
    # a failure beyond MARGINAL times its tolerance is not outvoted
    out = escalate.merge(first, ladder([8e-7, -5.7e-7, 3.1e-6, 6.3e-6], tol_best=1.2e-6), np.arange(1), mults)
    assert out.status.tolist() == [I]


def _swept(errors_at, h0=1e-2, rho=1e-7, kink=None):
    """The sweep's measurements (step-major) of items whose error at step h is
    ``errors_at(h)`` ([items]); round-off bound Σ|w|·ρ = ``rho``."""
    mults = np.asarray(escalate.SWEEP_MULTS)
    h = np.repeat(mults * h0, len(errors_at(1.0)))
    e1 = np.concatenate([errors_at(m * h0) for m in mults])
    e2 = np.concatenate([errors_at(2 * m * h0) for m in mults])
    kw = {} if kink is None else {"kink": np.tile(kink, len(mults))}
    return _meas(
        status=np.full(h.size, CheckStatus.FAIL), error=e1, error2=e2, step=h, roundoff=rho / h, **kw
    )


def test_sweep_confirms_a_failure_below_the_models_resolution_and_nothing_else():
    """Items whose error e(h) = bug + c·h² (+ rounding): the sweep extrapolates to the bug and
    bounds it by the observed differences, not by the worst-case model."""
    I, F = CheckStatus.INCONCLUSIVE, CheckStatus.FAIL  # noqa: E741
    rng = np.random.default_rng(0)
    bug = np.array([2e-4, 0.0, 2e-4, 2e-4])
    curv = np.array([3e-2, 3e-2, 3e-2, 3e-2])
    rough = np.array([0.0, 0.0, 0.0, 1.0])  # item 3: rounding of 1e-4/h per value, not 1e-7/h

    def errors_at(h):
        noise = rng.uniform(-1, 1, bug.size) * np.where(rough > 0, 1e-4, 1e-8) / h
        return bug + curv * h**2 + noise

    # unconfirmed failures: each failed at its first step (|e| = 2.4e-4 > tolerance 1.5e-4)
    first = _meas(
        status=[I] * 4,
        reason=[Reason.UNRESOLVED] * 4,
        error=[2.4e-4] * 4,
        tolerance=[1.5e-4] * 4,
        step=[1e-2] * 4,
    )
    first = first._replace(analytic=np.full(4, 0.01), numeric=np.full(4, 0.01 + 2.4e-4))
    failed, weak, ratio = escalate.sweepable(first, np.ones(4, bool))
    assert failed.tolist() == [0, 1, 2, 3] and weak.tolist() == [] and np.allclose(ratio, 2.4 / 1.5)
    kink = np.array([False, False, True, False])  # item 2: not smooth at any step
    out, n, _ = escalate.sweep_decide(
        first, np.arange(4), _swept(errors_at, kink=kink), get_stencil("central"), 10.0
    )
    assert out.status.tolist() == [F, I, I, I] and n == 1
    # item 0 reports the extrapolated value: its error is the bug, within its (tight) bound
    assert abs(out.error[0] - 2e-4) < 1e-6 and out.tolerance[0] < 1e-4
    assert out.numeric[0] == pytest.approx(0.01 + out.error[0])
    assert out.reason.tolist() == [0, Reason.UNRESOLVED, Reason.UNRESOLVED, Reason.UNRESOLVED]


def _bias_element_rule(bug: bool):
    """float32: tanh-layer loss whose bias element 3 has a gradient of ~2e-3 against f ~ 1.3;
    the bug scales that element's rule by 1.1 (a 2e-4 error, under the model's 1.5e-4 × a few
    at the default step, resolved by a sweep to ~5e-6)."""

    @jax.custom_vjp
    def ident(b):
        return b

    ident.defvjp(lambda b: (b, None), lambda _, g: (g.at[3].multiply(1.1) if bug else g,))
    r = np.random.default_rng(4)
    p = {
        "W": jnp.asarray(r.normal(size=(10, 7)) / 3, jnp.float32),
        "b": jnp.asarray(r.normal(size=7) / 3, jnp.float32),
    }
    x = jnp.asarray(r.normal(size=(30, 10)), jnp.float32)
    return (lambda q: 3 * jnp.mean(jnp.tanh(x @ q["W"] + ident(q["b"])) ** 2)), p


@pytest.mark.parametrize("mode", ["full", "subset"])
def test_float32_bug_near_the_floor_is_confirmed_by_a_sweep(mode):
    f, p = _bias_element_rule(True)
    r = fdjax.check_grad(f, p, mode=mode, key=0)
    assert int(r.status) == CheckStatus.FAIL, r
    worst = int(np.argmax(np.asarray(r.elements.status) == CheckStatus.FAIL))
    assert r.element_name(int(r.elements.index[worst])) == "['b'][3]"
    assert any("step sweep" in n for n in r.notes)
    ok, q = _bias_element_rule(False)
    assert int(fdjax.check_grad(ok, q, mode=mode, key=0).status) == CheckStatus.PASS


def test_a_weak_pass_is_swept_when_escalation_has_no_budget_left(monkeypatch):
    # A budget of 0: nothing is re-measured at other steps, and the bug's first step passes
    # weakly (its tolerance wider than 1% of the values). It is swept all the same (at most
    # SWEEP_MIN_ITEMS items), and the sweep confirms it; before, such a weak pass stood.
    monkeypatch.setattr(escalate, "MIN_BUDGET", 0)
    monkeypatch.setattr(escalate, "BUDGET_FACTOR", 0.0)
    f, p = _bias_element_rule(True)
    r = fdjax.check_grad(f, p, mode="full", key=0)
    assert int(r.status) == CheckStatus.FAIL, r
    assert any("step sweep" in n for n in r.notes)
    # the sweep's 32 items (D(h) and D(2h) at 6 steps: 24 evaluations each), then the jitter and
    # neighbourhood tests
    per_item = len(escalate.SWEEP_MULTS) * 4
    assert (
        escalate.SWEEP_MIN_ITEMS * per_item
        <= int(r.escalation_evaluations)
        < 1.5 * escalate.SWEEP_MIN_ITEMS * per_item
    )
    ok, q = _bias_element_rule(False)
    assert int(fdjax.check_grad(ok, q, mode="full", key=0).status) == CheckStatus.PASS


def test_neighbourhood_test_confirms_an_error_that_is_the_same_at_every_base():
    P, F, I = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.INCONCLUSIVE  # noqa: E741
    k, rng = bases.BASES, np.random.default_rng(0)
    rule = 1e-2 + 1e-4 * rng.normal(size=(k, 1))  # the rule moves with the base, D with it
    noise = 2e-6 * rng.normal(size=(k, 5))  # rounding: independent per base and step
    # items: 0 a bug of 2e-5 (ten times the noise), the same at every base; 1 an artefact as
    # large at x but of random sign and size at the other bases (kinks crossed); 2 a bug whose
    # mean disagrees with the sweep's estimate (4x); 3 the bug with 5 bases not finite; 4 a
    # bug with a truncation error c·h² that Richardson removes (c·h² = 3e-5, > the bug)
    bug = np.array([2e-5, 0.0, 2e-5, 2e-5, 2e-5])
    art = np.array([0.0, 2e-5, 0, 0, 0]) * rng.choice([-3.0, 3.0], size=(k, 5)) * rng.uniform(size=(k, 5))
    trunc = np.array([0, 0, 0, 0, 3e-5])
    fd_h = rule + bug + art + noise + trunc
    fd_2h = rule + bug + art + 0.5 * noise + 4 * trunc
    fd_h[:5, 3] = np.nan
    est = np.array([2.1e-5, 2e-5, 8e-5, 2e-5, 2e-5])
    meas = _meas(status=[I, I, P, I, P], error=est, tolerance=np.full(5, 1e-4), analytic=np.full(5, 1e-2))
    out, n = bases.judge(meas, np.arange(5), est, fd_h, fd_2h, rule + 0 * fd_h, get_stencil("central"), 10.0)
    assert out.status.tolist() == [F, I, P, I, F] and n == 2
    assert out.error[0] == pytest.approx(2e-5, rel=0.1) and out.tolerance[0] < 2e-5
    assert out.error[4] == pytest.approx(2e-5, rel=0.2)  # the truncation extrapolated away
    assert out.tolerance[0] == pytest.approx(
        10.0 * (out.truncation[0] + out.roundoff[0] + out.ad_rounding[0])
    )


@pytest.mark.parametrize("mode", ["full", "subset"])
def test_a_float32_bug_below_the_sweeps_margin_is_confirmed_around_x(mode):
    # the bias element's rule 5% off: 1.6e-4 on a gradient of 3.2e-3 (f ~ 1.2), 6.4x the
    # swept bound, under the margin of 10: the error is the same at 16 points around x
    bug = verdict_corpus.by_name("f32_floor_small_element_s30_5pct")
    f, args = bug.build(jnp.float32)
    r = fdjax.check_grad(f, *args, mode=mode, key=bug.key)
    assert int(r.status) == CheckStatus.FAIL, r
    assert any("points around x" in n for n in r.notes)
    ok, args = verdict_corpus._small_element(False, seed=30)(jnp.float32)
    assert int(fdjax.check_grad(ok, *args, mode=mode, key=bug.key).status) == CheckStatus.PASS


def test_priority_escalates_a_failure_far_beyond_tolerance_only_when_the_fd_value_is_tiny():
    F = CheckStatus.FAIL
    m = _meas(
        status=[F, F, F, F],
        analytic=[2.0, 2.0, 1e7, 1e7],
        numeric=[1.0, 1.0, 90.0, -1e6],
        error=[1.0, 1.0, 1e7, 1.1e7],
        tolerance=[0.5, 1e-3, 1e3, 1e3],
    )
    prio = escalate.priority(m, np.ones(4, bool))
    # marginal (2 tolerances) first; 1000 tolerances with an FD value of the analytic's size
    # stands (a 2x bug, a flipped sign, or 10x); an analytic value 1e5 times the FD value (f
    # far from linear at the step) is measured again
    assert prio.tolist() == [0, escalate.NOT_CONCERNED, 1, escalate.NOT_CONCERNED]


@functools.cache
def _own_scale(factor: float):
    """Parameters of ~4e-8 whose scale is their own (sin(1e7·p)) next to ones of ~2e4."""

    @jax.custom_vjp
    def sin(s):
        return jnp.sin(s)

    sin.defvjp(lambda s: (jnp.sin(s), s), lambda s, g: (factor * g * jnp.cos(s),))

    def f(p):
        return jnp.sum(sin(1e7 * p["small"])) + jnp.sum(jnp.cos(1e-4 * p["big"]))

    return f, {"small": jnp.array([4e-8, 6e-8, 3e-8, 5e-8]), "big": jnp.array([2e4, 1.5e4, 3e4])}


@pytest.mark.xdist_group("outcomes-own-scale")
def test_a_tiny_parameter_of_its_own_scale_is_not_a_false_alarm():
    """The default step's floor (max(|x_i|, 1)) moves 4e-8 by ~6e-6: sin(1e7·p) turns through
    60 radians and the FD slope averages out, 1e5 times below jax.grad. Those failures are
    measured again at floorless steps (rel·|x_i|), where f is linear and they pass; the noise
    probes move each coordinate by ulps of itself, so f's noise is not inflated either."""
    f, p = _own_scale(1.0)
    r = fdjax.check_grad(f, p, mode="full")
    assert bool(r.passed), r
    assert float(r.noise) < 1e-6, r.noise
    assert int(r.escalated) > 0
    f, p = _own_scale(2.0)
    r = fdjax.check_grad(f, p, mode="full")
    assert int(r.status) == CheckStatus.FAIL, r
    small = r.leaf_names.index("['small']")
    assert int(r.leaves.status[small]) == CheckStatus.FAIL


def test_nondeterministic_function_is_inconclusive_and_blames_no_leaf():
    # a new mask on every call, each unlike the one before (an unseeded random mask repeats
    # by chance now and then, and the test then saw a deterministic f)
    masks = itertools.cycle(np.asarray([[1, 1, 0], [0, 1, 1], [1, 0, 1]], np.float64))

    def dropout(x):
        z = jax.pure_callback(lambda: next(masks), jax.ShapeDtypeStruct((3,), jnp.float64))
        return jnp.sum((x * z) ** 2)

    r = fdjax.check_grad(dropout, jnp.linspace(0.5, 1.0, 3))
    assert int(r.status) == CheckStatus.INCONCLUSIVE and int(r.reason) == Reason.NONDETERMINISTIC
    assert not bool(r.deterministic) and int(r.failed) == 0
    assert np.all(np.asarray(r.leaves.status) == CheckStatus.INCONCLUSIVE)
    assert not np.any(np.asarray(r.elements.status) == CheckStatus.FAIL)
    assert "not deterministic" in str(r).splitlines()[0]


def _unfaithful(x):
    """sum(x²) plus a term that is 0 alone and 1e-3·row under vmap: f batched is not f."""

    @jax.custom_batching.custom_vmap
    def g(v):
        return jnp.zeros((), v.dtype)

    @g.def_vmap
    def _(axis_size, in_batched, v):
        return 1e-3 * jnp.arange(axis_size, dtype=v.dtype), True

    return jnp.sum(x**2) + g(jax.lax.stop_gradient(x))


def test_unfaithful_batching_falls_back_to_rows_one_at_a_time():
    x = jnp.linspace(0.5, 1.5, 4)
    r = fdjax.check_grad(_unfaithful, x, mode="full")
    assert bool(r.passed), r
    assert any("not faithful" in note for note in r.notes)
    np.testing.assert_allclose(np.asarray(r.elements.numeric), 2 * np.asarray(x), rtol=1e-7)


def test_rounding_between_programs_is_not_nondeterminism():
    """float32 mean of large cancelling terms: f(x) from the AD pass and from the batch
    differ by more than eps·|f| (different XLA programs); that is rounding, not a verdict."""
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(512, 10)) * 90, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, 512))

    def ce(scale):
        z = logits * scale[0]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - z[jnp.arange(512), labels])

    r = fdjax.check_grad(ce, jnp.ones(1, jnp.float32))
    assert int(r.status) != CheckStatus.FAIL and int(r.reason) != Reason.NONDETERMINISTIC, r


def test_mode_auto_runs_full_when_small_and_locate_when_large(monkeypatch):
    small = fdjax.check_grad(lambda x: jnp.sum(jnp.sin(x)), jnp.ones(10))
    assert small.mode == "full" and "mode='auto' ran 'full'" in small.notes[0]
    w = jnp.ones((300, 300)) * 0.01
    big = fdjax.check_grad(lambda w: jnp.sum(jnp.tanh(w @ jnp.ones(300)) ** 2), w)
    assert big.mode == "locate" and bool(big.passed)
    assert "'full' would take" in big.notes[0]
    # step="auto" (a step per element) runs "full" where mode="auto" alone would not: the
    # thresholds lowered so that 10 elements count as large (a sweep per element stays cheap).
    monkeypatch.setattr(api, "AUTO_FULL_ELEMENTS", 4)
    monkeypatch.setattr(api, "AUTO_FULL_SECONDS", -1.0)
    square = lambda w: jnp.sum(w**2)  # noqa: E731
    assert fdjax.check_grad(square, w[0, :10]).mode == "locate"
    assert fdjax.check_grad(square, w[0, :10], step="auto").mode == "full"
