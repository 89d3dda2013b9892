"""The segment test (fdjax/_check/segment.py): a failure that f's slope changing within the
step explains is inconclusive; a wrong rule still fails."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax import CheckStatus, Reason
from fdjax._check import segment
from failures import failing
from fdjax._fd import Stencil

STENCILS = [(-1, 1), (-2, -1, 1, 2), (0, 1), (0, 1, 2), (-3, -2, -1, 0)]


@pytest.mark.parametrize("offsets", STENCILS, ids=str)
def test_kernel_integrates_the_stencil(offsets):
    """Σ_k w_k·∫_0^{o_k} s^p ds = Σ_k w_k·o_k^{p+1}/(p+1): exact for p ≤ 1 (the trapezoid rule
    on each piece), to O(Δs²) for p = 2, for both the fine and the every-other-node rule."""
    st = Stencil.from_offsets(list(offsets))
    nodes, fine, coarse, _ = segment.kernel(st)
    s = np.asarray(nodes)
    o, w = np.asarray(st.offsets), np.asarray(st.weights)
    for p, rtol in ((0, 1e-12), (1, 1e-12), (2, 1e-2)):
        exact = float(np.sum(w * o ** (p + 1) / (p + 1)))
        scale = float(np.sum(np.abs(w * o ** (p + 1))))
        assert fine @ s**p == pytest.approx(exact, abs=rtol * scale)
        assert coarse @ s**p == pytest.approx(exact, abs=4 * rtol * scale)
    assert fine @ s**0 == pytest.approx(1.0)  # the derivative of a linear f is its slope


def test_kernel_needs_whole_offsets():
    assert segment.kernel(Stencil.from_offsets([-0.5, 0.5])) is None


def test_judge_staircase():
    """G(s) = 1 + 0.1·s plus 300 small jumps: the central difference is its mean over
    (−1, 1) exactly; the gradient at s = 0 is off from it. A rule off by 1% along the whole
    step, or a test too coarse to see the failure, leaves the failure standing."""
    rng = np.random.default_rng(0)
    jumps_at = rng.uniform(-1, 1, 300)
    jumps = 1e-3 * jumps_at + rng.normal(0, 2e-4, 300)  # convex on average: D − A ≈ 0.025

    def G(s):
        s = np.asarray(s)[..., None]
        return (1 + 0.1 * s[..., 0]) + np.sum(jumps * (s > jumps_at), axis=-1)

    fine = np.linspace(-1, 1, 200_001)
    # the central difference of f, the mean slope: np.mean(G(fine)), counting the grid points
    # past each jump instead of building G on the grid (a 200,001 × 300 array)
    past = fine.size - np.searchsorted(fine, jumps_at, side="right")
    D = float(np.mean(1 + 0.1 * fine) + np.sum(jumps * past) / fine.size)
    A = float(G(0.0))
    assert abs(D - A) > 0.02
    st = Stencil.from_offsets([-1, 1])
    rule = segment.kernel(st)
    nodes = np.asarray(rule.nodes)
    g, tiny = G(nodes), 1e-4
    g_near = G(np.array([-tiny, tiny]))  # no jump that close to x
    # a right rule, a 1% wrong one, a right one seen too coarsely, one wrong at x alone
    at_x = np.where(nodes == 0, A + 0.05, g)
    slopes = np.stack([g, 1.01 * g, g, at_x], axis=1)
    near_x = np.stack([g_near, 1.01 * g_near, g_near, g_near], axis=1)
    meas = failing([D, D, D, D], [A, 1.01 * A, A, A + 0.05], roundoff=[1e-4, 1e-4, 0.05, 1e-4])
    out, hit, gap, off, _ = segment.judge(meas, np.arange(4), slopes, near_x, rule, margin=10.0)
    assert hit.tolist() == [0]
    assert out.status.tolist() == [CheckStatus.INCONCLUSIVE] + [CheckStatus.FAIL] * 3
    assert out.reason[0] == Reason.KINK and out.kink[0]
    assert gap < 10 * 1e-4 + segment.quadrature_error(g[:, None], rule)[0]
    assert off == pytest.approx(abs(A - rule.fine @ g))
    # a jump just beside x, on one side: the median of the three is still the rule at x
    beside = np.array([g_near[0], g_near[1] + 0.3])
    out, hit, *_ = segment.judge(meas, np.arange(1), g[:, None], beside[:, None], rule, margin=10.0)
    assert hit.tolist() == [0]


@pytest.mark.parametrize("seed", [5, 9, 21])
def test_undecided_on_coarse_nodes_is_decided_on_fine_ones(seed):
    """1000 random jumps of G along the step: on 64 nodes the jumps' bound leaves the test
    undecided (the FD value agrees with Ā, but the tolerance is not below half the failure);
    on FINE_NODES the bound shrinks and the failure is explained. A 1% wrong rule still
    stands on the fine nodes."""
    rng = np.random.default_rng(seed)
    at, size = rng.uniform(-1, 1, 1000), rng.normal(0, 3e-3, 1000)

    def G(s):
        return 1.0 + np.sum(size * (np.asarray(s)[..., None] > at), axis=-1)

    # D: the mean of G over 400,001 evenly spaced steps, counted per jump (G over the grid
    # at once would be a 400,001 × 1000 array)
    grid = np.linspace(-1, 1, 400_001)
    above = grid.size - np.searchsorted(grid, at, side="right")  # grid points past each jump
    D, A = float(1.0 + np.sum(size * above) / grid.size), float(G(0.0))
    st = Stencil.from_offsets([-1, 1])
    near = G(np.array([-1e-6, 1e-6]))[:, None]
    coarse, fine = segment.kernel(st), segment.kernel(st, segment.FINE_NODES)
    first = segment.judge(
        failing([D], [A], 1e-6), np.arange(1), G(np.asarray(coarse.nodes))[:, None], near, coarse, 10.0
    )
    assert first.hit.size == 0 and first.undecided.tolist() == [0]
    g = G(np.asarray(fine.nodes))[:, None]
    second = segment.judge(failing([D], [A], 1e-6), np.arange(1), g, near, fine, 10.0)
    assert second.hit.tolist() == [0] and second.meas.status[0] == CheckStatus.INCONCLUSIVE
    wrong = segment.judge(failing([D], [1.01 * A], 1e-6), np.arange(1), 1.01 * g, 1.01 * near, fine, 10.0)
    assert wrong.hit.size == 0 and wrong.meas.status[0] == CheckStatus.FAIL


@pytest.mark.parametrize("offsets", STENCILS, ids=str)
def test_quadrature_error_bounds_jumps_and_is_small_where_smooth(offsets):
    """Q bounds the trapezoid rule's true error for G with a few large jumps anywhere between
    nodes (where |Ā − Ā₂| alone can be several times too small), and adds nothing to
    |Ā − Ā₂| where G is smooth (it must not make every failure on a smooth f look explained)."""
    st = Stencil.from_offsets(list(offsets))
    rule = segment.kernel(st)
    s = np.asarray(rule.nodes)
    o, w = np.asarray(st.offsets, float), np.asarray(st.weights, float)
    rng = np.random.default_rng(1)
    lo, hi = min(0.0, o.min()), max(0.0, o.max())
    worst_rich = 0.0
    for _ in range(200):
        at = rng.uniform(lo, hi, 3)
        size = rng.normal(0, 1, 3)
        g = 1.0 + np.sum(size * (s[:, None] > at), axis=1)
        exact = _exact_jumps(o, w, at, size)
        err = abs(rule.fine @ g - exact)
        q = segment.quadrature_error(g[:, None], rule)[0]
        assert err <= q
        worst_rich = max(worst_rich, err / max(abs(rule.fine @ g - rule.coarse @ g), 1e-300))
    assert worst_rich > 1.0  # the Richardson estimate alone would not have bounded them
    smooth = np.cos(s)
    q = segment.quadrature_error(smooth[:, None], rule)[0]
    assert q <= 2 * abs(rule.fine @ smooth - rule.coarse @ smooth)


def _exact_jumps(o, w, at, size):
    """Σ_k w_k·∫_0^{o_k} G(s) ds for G = 1 + Σ_j size_j·[s > at_j]."""
    total = float(np.sum(w * o))
    for a, z in zip(at, size, strict=True):
        # ∫_0^o [s > a] ds: (o − max(a, 0))₊ for o > 0, −(0 − max(a, o))₊ for o < 0
        part = np.where(o > 0, np.maximum(o - max(a, 0.0), 0.0), -np.maximum(-np.maximum(a, o), 0.0))
        total += float(np.sum(w * part)) * z
    return total


def _temperature(rows=2000, classes=10, seed=0):
    """t ↦ mean_i max_j L_ij/t_j − L_iy/t_y (L 2000×10, ~±30): thousands of kinks within
    any float32 step that resolves f."""
    r = np.random.default_rng(seed)
    L = jnp.asarray(r.normal(size=(rows, classes)) * 30.0, jnp.float32)
    onehot = jnp.asarray(np.eye(classes)[r.integers(0, classes, rows)], jnp.float32)

    def f(t):
        z = L / t
        return jnp.mean(jnp.max(z, -1) - jnp.sum(onehot * z, -1))

    return f, jnp.full((classes,), 1.7, jnp.float32)


def _scaled(f, factor):
    @jax.custom_vjp
    def g(t):
        return f(t)

    g.defvjp(lambda t: (f(t), t), lambda t, ct: (factor * ct * jax.grad(f)(t),))
    return g


@pytest.fixture(scope="module")
def dense_kinks():
    return _temperature()


@pytest.mark.parametrize("mode", ["full", "directional", "locate"])
def test_dense_kinks_float32(dense_kinks, mode):
    """Correct: nothing fails, and the result says why the failures were not the gradient's.
    A custom_vjp 1% wrong along the same function fails in every mode."""
    f, t = dense_kinks
    r = fdjax.check_grad(f, t, mode=mode)
    assert int(r.status) != CheckStatus.FAIL, r
    assert not np.any(np.asarray(r.directions.status) == CheckStatus.FAIL)
    assert not np.any(np.asarray(r.elements.status) == CheckStatus.FAIL)
    assert any("slope changing within the step" in n for n in r.notes), r.notes
    bad = fdjax.check_grad(_scaled(f, 1.01), t, mode=mode)
    assert int(bad.status) == CheckStatus.FAIL, bad
    assert not any("slope changing within the step" in n for n in bad.notes)


def _kink_pairs(n, slope, off=0.0):
    """A sum over n elements of a slope-0 notch: f's slope is 0 within 1e-7 of c_i and
    ``slope`` outside, so every default step (~6e-6) crosses two kinks and the central
    difference is ~``slope`` while the gradient at c_i is 0 (plus ``off``, a wrong rule)."""
    c, delta = jnp.linspace(0.5, 1.5, n), 1e-7

    @jax.custom_jvp
    def notch(x):
        return slope * (jax.nn.relu(x - c - delta) - jax.nn.relu(c - delta - x))

    @notch.defjvp
    def _(primals, tangents):
        (x,), (dx,) = primals, tangents
        return notch(x), (jnp.where(jnp.abs(x - c) < delta, 0.0, slope) + off) * dx

    f = lambda p: jnp.sum(notch(p["notched"])) + jnp.sum(jnp.sin(p["smooth"]))
    return f, {"notched": c, "smooth": jnp.linspace(0.1, 1.0, 5)}


def test_many_kinks_in_one_check():
    """30 elements whose steps all cross kinks (marginal failures, as in a float32 ReLU net)
    are each tested, even where the escalation budget of a small check pays for fewer:
    none FAILS and the leaf is INCONCLUSIVE (kink). The same notches with a rule 10% off
    their slope still FAIL."""
    f, p = _kink_pairs(30, 1e-10)
    r = fdjax.check_grad(f, p, mode="full")
    assert int(r.status) == CheckStatus.INCONCLUSIVE, r
    notched = np.asarray(r.elements.status)[:30]
    assert np.all(notched == CheckStatus.INCONCLUSIVE), notched
    assert np.all(np.asarray(r.elements.reason)[:30] == Reason.KINK)
    explained = [int(n.split()[0]) for n in r.notes if "slope changing within the step" in n]
    assert explained and explained[0] >= 30, r.notes
    f_bad, _ = _kink_pairs(30, 1e-10, off=1e-11)
    bad = fdjax.check_grad(f_bad, p, mode="full")
    assert int(bad.status) == CheckStatus.FAIL, bad
    assert np.sum(np.asarray(bad.elements.status)[:30] == CheckStatus.FAIL) == 30
