"""The jitter test (fdjax/_check/jitter.py): a failure within f's rounding at the perturbed
points is judged again with the rounding measured there; a wrong rule still fails."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax import CheckStatus, Reason
from fdjax._check import host, jitter
from failures import failing

NOTE = "rounding at the perturbed points"


def test_judge():
    """Column 0: D scatters over the bases as much as it misses A (rounding): inconclusive.
    Column 1: D and the rule are the same at every base (a bug): it stands. Column 2: the rule
    is the same a few ulps from x but differs at x (wrong at x alone): it stands. Column 3: a
    large gradient, the miss within the measured rounding: PASS with the wider tolerance.
    Column 4: a base where f is not finite: no evidence, it stands."""
    meas = failing([1e-4, 1.01, 1.0, 10.0001, 1e-4], [0.0, 1.0, 1.2, 10.0, 0.0], roundoff=1e-6)
    fd = np.array(
        [
            [-1e-4, 1.01, 1.0, 10.0, np.nan],
            [0.0, 1.01, 1.0, 10.00005, 1e-4],
            [2e-4, 1.01, 1.0, 9.99995, 1e-4],
            [1e-4, 1.01, 1.0, 10.0001, 1e-4],
        ]
    )
    rule = np.array([[0.0, 1.0, 1.0, 10.0, 0.0]] * 4)
    out = jitter.judge(meas, np.arange(5), fd, rule, margin=10.0)
    assert out.hit.tolist() == [0, 3]
    st, rs = out.meas.status, out.meas.reason
    assert (st[0], rs[0]) == (CheckStatus.INCONCLUSIVE, Reason.UNRESOLVED)
    assert (st[3], rs[3]) == (CheckStatus.PASS, Reason.NONE)
    assert st[1] == st[2] == st[4] == CheckStatus.FAIL
    # FACTOR × the spread, larger than margin × the modelled rounding, takes its place in the
    # tolerance, and the round-off term says so
    assert out.meas.tolerance[0] == pytest.approx(jitter.FACTOR * 3e-4)
    assert out.meas.roundoff[0] == pytest.approx(jitter.FACTOR * 3e-4 / 10)
    assert out.spread == pytest.approx(3e-4)
    # a spread within the modelled rounding (a bug confirmed by the step sweep, whose
    # tolerance already holds the rounding it observed): nothing is added, the failure at
    # 1.1x its tolerance stands (added to it, 3 × 2e-5 would have made it pass)
    swept = failing([1.011e-2], [1.0e-2], roundoff=1e-5)
    noisy = 1.011e-2 + np.array([[1e-5], [-1e-5], [0.0], [5e-6]])
    kept = jitter.judge(swept, np.arange(1), noisy, np.full((4, 1), 1.0e-2), margin=10.0)
    assert kept.hit.size == 0 and kept.meas.status[0] == CheckStatus.FAIL
    # a spread that the failure exceeds by more than FACTOR: it stands
    tight = 1e-4 + np.array([[1e-6], [-1e-6], [2e-6], [0.0]])
    small = jitter.judge(meas, np.arange(1), tight, rule[:, :1], margin=10.0)
    assert small.hit.size == 0


def _penalty(n, dtype, seed=0):
    """100·(Σx − 1)² at a feasible x: f = 0 and ∇f = 0, but Σx rounds by ~eps at x ± h."""
    r = np.random.default_rng(seed)
    x = r.random(n) + 0.1
    return (lambda x: 100.0 * (jnp.sum(x) - 1.0) ** 2), jnp.asarray(x / x.sum(), dtype)


def _log_barrier(scale):
    """1e-3·Σ log x with its gradient times ``scale`` (a custom_vjp)."""

    @jax.custom_vjp
    def f(x):
        return 1e-3 * jnp.sum(jnp.log(x))

    f.defvjp(lambda x: (f(x), x), lambda x, g: (scale * g * 1e-3 / x,))
    return f


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", ["full", "directional"])
def test_feasible_penalty_is_no_failure(dtype, mode, monkeypatch):
    """Correct: never FAIL, and the note says why. Without the jitter test the same check
    fails (the rounding residues do not scale with the step: escalation confirms them)."""
    f, x = _penalty(1000, dtype)
    r = fdjax.check_grad(f, x, mode=mode)
    assert int(r.status) != CheckStatus.FAIL, r
    assert any(NOTE in n for n in r.notes), r.notes
    monkeypatch.setattr(host, "jitter", lambda agg, dec, call: dec)
    assert int(fdjax.check_grad(f, x, mode=mode).status) == CheckStatus.FAIL


@pytest.mark.parametrize(
    "dtype, n, scale",
    [(jnp.float64, 300, 1.01), (jnp.float32, 10, 1.01), (jnp.float32, 300, 1.2)],
    ids=["float64-1%", "float32-1%", "float32-20%"],
)
@pytest.mark.parametrize("mode", ["full", "directional", "locate"])
def test_wrong_rule_next_to_the_rounding_fails(dtype, n, scale, mode):
    """The penalty's rounding plus a wrong log barrier: the bug is the same at every base."""
    pen, x = _penalty(n, dtype, seed=1)
    bar = _log_barrier(scale)
    r = fdjax.check_grad(lambda x: pen(x) + bar(x), x, mode=mode)
    assert int(r.status) == CheckStatus.FAIL, r
    ok = fdjax.check_grad(lambda x: pen(x) + _log_barrier(1.0)(x), x, mode=mode)
    assert int(ok.status) != CheckStatus.FAIL, ok
