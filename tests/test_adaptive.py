"""fdjax.sweep and step="auto": the step sweep against closed-form derivatives and jax.grad.

Numerical truths asserted here:
- the chosen estimate is within 10× of the best error a central difference attains on a fine
  grid of steps (the smallest local median over 9 neighbouring grid steps: a single grid
  step can be lucky by orders of magnitude, a step you could choose in advance cannot);
- the reported error estimate is an upper bound of the true error;
- the diagnosis (Status) matches the function: CONVERGED, EXACT, KINK, NOISY, NONFINITE;
- observed orders of convergence match the stencils' orders.
"""

import functools
import json
import math
import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax import Status
from fdjax._engine.compile import compile_options
from fdjax._engine import Options
from fdjax._fd import DEFAULT_LEVELS, METHODS
from fdjax._fd import adaptive_basis
from fdjax._fd.adaptive import default_relative_steps, ladder_values, read_ladder


def xi(x):
    """Deterministic pseudo-random value in [-1, 1) from the bits of x (splitmix-style hash):
    every perturbed point sees fresh noise."""
    if x.dtype == jnp.float64:
        z = jax.lax.bitcast_convert_type(x, jnp.uint64)
        z = (z ^ (z >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> 27)) * jnp.uint64(0x94D049BB133111EB)
        z = z ^ (z >> 31)
        return (z >> 11).astype(jnp.float64) * 2.0**-52 - 1.0
    z = jax.lax.bitcast_convert_type(x, jnp.uint32)
    z = (z ^ (z >> 16)) * jnp.uint32(0x7FEB352D)
    z = (z ^ (z >> 15)) * jnp.uint32(0x846CA68B)
    z = z ^ (z >> 16)
    return (z >> 8).astype(jnp.float32) * 2.0**-23 - 1.0


def squire(x):
    return jnp.exp(x) / jnp.sqrt(jnp.sin(x) ** 3 + jnp.cos(x) ** 3)


# name: (f, x0, f'(x0) as a function of the x0 actually represented, expected status bits)
SMOOTH = Status.CONVERGED
CASES = {
    "exp@1": (jnp.exp, 1.0, np.exp, SMOOTH),
    "sin@1": (jnp.sin, 1.0, np.cos, SMOOTH),
    "sin@1e4": (jnp.sin, 1e4, np.cos, SMOOTH),
    "inv@1e-3": (lambda x: 1 / x, 1e-3, lambda x: -1 / x**2, SMOOTH),
    "log@1e-3": (jnp.log, 1e-3, lambda x: 1 / x, SMOOTH | Status.NONFINITE),
    "cbrt@1e-6": (lambda x: x ** (1.0 / 3.0), 1e-6, lambda x: x ** (-2 / 3) / 3, SMOOTH | Status.NONFINITE),
    "tanh@20": (jnp.tanh, 20.0, lambda x: 1 / np.cosh(x) ** 2, SMOOTH),
    "squire@1.5": (squire, 1.5, lambda x: 4.053427893898621, SMOOTH),
    "sin1000x@1": (lambda x: jnp.sin(1000 * x), 1.0, lambda x: 562.379076290703, SMOOTH),
    "x^2@1": (lambda x: x**2, 1.0, lambda x: 2 * x, SMOOTH),
    "abs@0": (jnp.abs, 0.0, lambda x: 0.0, Status.KINK),
    "sqrt@1e-8": (jnp.sqrt, 1e-8, lambda x: 0.5 / np.sqrt(x), SMOOTH | Status.NONFINITE),  # stretched ladder
}
NOISE = {jnp.float64: 1e-6, jnp.float32: 3e-4}  # relative noise, far above eps of the dtype


def compiled_as_fdjax(fn, *args):
    """``jax.jit(fn)(*args)`` compiled with the XLA options fdjax picks for a program of its work
    (a small one compiles quickly on CPU), as fdjax compiles the sweep that runs it."""
    traced = jax.jit(fn).trace(*args)
    options = compile_options(traced.jaxpr, jax.default_backend())
    return traced.lower().compile(compiler_options=options)(*args)


def best_attainable(f, x0, dtype, true):
    """Smallest local-median error of central differences over 2,000 steps 10^-0.5..10^-16 relative.

    f is compiled with the XLA options fdjax picks for a program of this size (a small one
    compiles quickly on CPU), since how f rounds, near tanh's saturation say, depends on them.
    """
    x = jnp.asarray(x0, dtype)
    h = (x + jnp.asarray(np.logspace(-0.5, -16, 2000) * max(abs(x0), 1.0), dtype)) - x
    h = h[h > 0]

    def central(h):
        return (jax.vmap(f)(x + h) - jax.vmap(f)(x - h)) / (2 * h)

    with jax.numpy_dtype_promotion("standard"):
        d = np.asarray(compiled_as_fdjax(central, h), np.float64)
    err = np.where(np.isfinite(d), np.abs(d - true), np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(err, 9)
    ok = np.all(np.isfinite(windows), axis=1)
    return float(np.min(np.median(windows[ok], axis=1)))


def _check_case(s, true, best, expect):
    est, err_est = float(s.estimate[0]), float(s.error_estimate[0])
    err = abs(est - true)
    flags = s.flags(0)
    assert err <= 10 * best, f"error {err:.3g} > 10 × best attainable {best:.3g}"
    assert err_est >= err, f"error estimate {err_est:.3g} < true error {err:.3g}"
    for bit in Status:
        if bit in expect:
            assert bit in flags, f"{bit.name} missing from {flags!r}"
    if Status.KINK not in expect:
        assert Status.KINK not in flags and Status.NO_WINDOW not in flags, repr(flags)


#: Sweeps of one scalar run next to each other, on one xdist worker (tests/conftest.py): the
#: ladder analysis is compiled once per dtype and shape (whatever f is), ~4 s of CPU each time.
SCALAR = pytest.mark.xdist_group("adaptive-scalar")


@SCALAR
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("name", list(CASES))
def test_closed_form(name, dtype):
    f, x0, df, expect = CASES[name]
    x = jnp.asarray(x0, dtype)
    true = float(df(np.float64(x)))
    s = fdjax.sweep(f, x, reference=jnp.asarray(true, dtype))
    _check_case(s, true, best_attainable(f, x0, dtype, true), expect)
    if name == "x^2@1":  # a quadratic: exact up to round-off
        assert Status.EXACT in s.flags(0) or float(s.true_error[0]) == 0.0
    if name == "abs@0":  # both one-sided slopes
        np.testing.assert_allclose(np.asarray(s.slopes[0]), [-1.0, 1.0], rtol=1e-6)


def test_default_ladder_by_dtype_and_stretch_near_zero():
    """float64: h_k = 0.1·4^-k·max(|x_i|, 1), 14 steps; float32: 0.1·2^-k, 22 steps. Near 0
    the ratio widens (at most to its square) to reach 1e-3·|x_i|."""
    s = fdjax.sweep(lambda x: jnp.sum(jnp.sqrt(x)), jnp.array([1e-8, 1.0, 3.0]))
    h = np.asarray(s.steps)
    np.testing.assert_allclose(h[1], 0.1 * 4.0 ** -np.arange(14), rtol=1e-6)
    np.testing.assert_allclose(h[2], 0.3 * 4.0 ** -np.arange(14), rtol=1e-6)
    np.testing.assert_allclose(h[0, [0, -1]], [0.1, 1e-11], rtol=1e-6)
    ratios = h[0, :-1] / h[0, 1:]
    assert np.all((ratios > 4) & (ratios <= 16)) and np.ptp(ratios) < 1e-5
    assert s.relative_steps == tuple(0.1 * 4.0 ** -np.arange(14))
    # num_steps= sets the length of the default ladder, its ratio stays the dtype's
    assert fdjax.sweep(lambda x: jnp.sum(jnp.sqrt(x)), jnp.array([1.0]), num_steps=5).relative_steps == tuple(
        0.1 * 4.0 ** -np.arange(5)
    )
    s32 = fdjax.sweep(lambda x: jnp.sum(jnp.sqrt(x)), jnp.array([1e-6, 1.0], jnp.float32))
    h32 = np.asarray(s32.steps, np.float64)
    np.testing.assert_allclose(s32.relative_steps, 0.1 * 2.0 ** -np.arange(22), rtol=1e-6)
    # the steps taken, (1 + h) − 1, are rounded to the float32 spacing near 1
    np.testing.assert_allclose(h32[1], 0.1 * 2.0 ** -np.arange(22), rtol=1e-6, atol=2.0**-23)
    np.testing.assert_allclose(h32[0, [0, -1]], [0.1, 1e-9], rtol=1e-3)
    ratios32 = h32[0, :-1] / h32[0, 1:]
    assert np.all((ratios32 > 2) & (ratios32 <= 4))


@SCALAR
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_noisy_function(dtype):
    """sin(x)(1 + a·ξ(x)), fresh noise at every point: flagged NOISY, and still covered."""
    a = NOISE[dtype]
    f = lambda x: jnp.sin(x) * (1 + a * xi(x))
    x = jnp.asarray(1.0, dtype)
    true = math.cos(1.0)
    s = fdjax.sweep(f, x)
    assert Status.NOISY in s.flags(0)
    assert float(s.noise[0]) > 1e3 * float(jnp.finfo(dtype).eps)
    _check_case(s, true, best_attainable(f, 1.0, dtype, true), Status.CONVERGED | Status.NOISY)


@pytest.mark.parametrize("use_jit", [False, True])
def test_sweep_passes_through_jit(use_jit):
    f = lambda x: jnp.sum(jnp.log(x) + jnp.abs(x - 2.0))
    x = jnp.array([1e-3, 2.0, 3.0])
    run = (lambda x: fdjax.sweep(f, x)) if not use_jit else jax.jit(lambda x: fdjax.sweep(f, x))
    s = run(x)
    assert isinstance(s, fdjax.StepSweep) and s.estimates.shape == (3, 14)
    flags = [s.flags(i) for i in range(3)]
    assert Status.NONFINITE in flags[0] and Status.CONVERGED in flags[0]
    assert Status.KINK in flags[1] and Status.KINK not in flags[2]
    np.testing.assert_allclose(np.asarray(s.estimate)[[0, 2]], [1e3 - 1, 1 / 3 + 1], rtol=1e-10)


def test_coverage_on_random_smooth_functions(capsys):
    """exp(a·x)·sin(b·x + c) at random x: the error estimate covers the true error in >= 95%."""
    n = 256
    rng = np.random.default_rng(0)
    th = np.stack(
        [
            rng.uniform(-3, 3, n),
            np.exp(rng.uniform(np.log(0.1), np.log(30), n)),
            rng.uniform(0, 2 * np.pi, n),
        ],
        -1,
    )
    x = rng.uniform(-3, 3, n) * np.exp(rng.uniform(np.log(1e-3), np.log(10), n)) / 3

    def f(x, th):
        return jnp.exp(th[0] * x) * jnp.sin(th[1] * x + th[2])

    s = jax.vmap(lambda x, th: fdjax.sweep(f, x, th))(jnp.asarray(x), jnp.asarray(th))
    a, b, c = th.T
    true = np.exp(a * x) * (a * np.sin(b * x + c) + b * np.cos(b * x + c))
    err = np.abs(np.asarray(s.estimate)[:, 0] - true)
    est = np.asarray(s.error_estimate)[:, 0]
    rate = float(np.mean(est >= err))
    over = float(np.median(est / np.maximum(err, 1e-300)))
    rel = float(np.median(err / np.abs(true)))
    with capsys.disabled():
        print(
            f"\ncoverage of the error estimate on {n} random smooth functions: {rate:.1%}; "
            f"median overestimate ×{over:.1f}; median relative error {rel:.1e}"
        )
    assert rate >= 0.95
    assert 1 < over < 100  # honest, not vacuous
    assert rel < 1e-12


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def tanh_mlp():
    k = jax.random.split(jax.random.key(1), 4)
    p = {
        "w1": jax.random.normal(k[0], (20, 40)) / 4,
        "b1": jnp.full(40, 0.1),
        "w2": jax.random.normal(k[1], (40, 4)) / 6,
        "b2": jnp.zeros(4),
    }
    xb, yb = jax.random.normal(k[2], (32, 20)), jax.random.normal(k[3], (32, 4))

    def loss(p, xb, yb):
        return jnp.mean((jnp.tanh(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - yb) ** 2)

    return loss, p, xb, yb


@pytest.mark.parametrize("model", ["rosenbrock", "tanh_mlp"])
def test_thousand_parameter_gradients(model, capsys):
    if model == "rosenbrock":
        f, args = rosenbrock, (jax.random.uniform(jax.random.key(0), (1000,), jnp.float64, -2.0, 2.0),)
    else:
        f, *args = tanh_mlp()
    assert sum(a.size for a in jax.tree_util.tree_leaves(args[0])) >= 1000
    g = fdjax.grad(f, step="auto")(*args)
    ref = jax.grad(f)(*args)
    a, b = (np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(t)]) for t in (g, ref))
    rel = np.abs(a - b) / np.abs(b)
    s = fdjax.sweep(f, *args, reference=ref)
    np.testing.assert_array_equal(np.asarray(s.estimate), a)  # grad(step="auto") is the sweep's estimate
    coverage = float(np.mean(np.asarray(s.error_estimate) >= np.asarray(s.true_error)))
    with capsys.disabled():
        print(
            f"\n{model}: {a.size} parameters, median relative error {np.median(rel):.1e} "
            f"(max {rel.max():.1e}), error estimate covers {coverage:.1%}"
        )
    assert np.median(rel) <= 1e-10
    assert coverage >= 0.95


def test_classic_epsilon_table(capsys):
    """J(θ) = θ² at θ = 1, ε = 1e-1..1e-7: central differences give 2θ up to round-off."""
    steps = [10.0**-k for k in range(1, 8)]
    s = fdjax.sweep(lambda t: t**2, jnp.asarray(1.0), steps=steps, reference=lambda t: 2 * t)
    table = s.table(0)
    with capsys.disabled():
        print("\n" + table)
    np.testing.assert_allclose(np.asarray(s.steps[0]), steps, rtol=1e-8)  # the steps taken: (1 + ε) − 1
    d = np.asarray(s.estimates[0])
    assert np.all(np.abs(d - 2.0) <= np.asarray(s.roundoff[0]))  # exact but for round-off
    assert float(s.reference[0]) == 2.0 and Status.EXACT in s.flags(0)
    for e in ("1.00e-01", "1.00e-07", "2.00000000000000", "reference 2"):
        assert e in table
    # the forward difference of θ² is 2θ + ε exactly: its truncation error is the step itself
    fw = fdjax.sweep(lambda t: t**2, jnp.asarray(1.0), steps=steps, method="forward")
    np.testing.assert_allclose(np.asarray(fw.estimates[0]) - 2.0, steps, rtol=1e-6, atol=1e-8)


@SCALAR
@pytest.mark.parametrize("method,order", [("forward", 1), ("backward", 1), ("central", 2), ("central4", 4)])
def test_observed_order_matches_stencil(method, order):
    s = fdjax.sweep(jnp.exp, jnp.asarray(0.5), method=method)
    assert abs(float(s.order[0]) - order) < 0.1
    assert abs(float(s.estimate[0]) - math.exp(0.5)) <= float(s.error_estimate[0]) < 1e-9


def test_complex_step_method():
    s = fdjax.sweep(lambda x: jnp.sum(jnp.sin(x) * jnp.exp(x)), jnp.array([0.3, 2.0]), method="complex")
    x = np.array([0.3, 2.0])
    true = np.exp(x) * (np.sin(x) + np.cos(x))
    err = np.abs(np.asarray(s.estimate) - true)
    assert np.all(err <= np.asarray(s.error_estimate)) and np.all(err < 1e-13)


def test_indices_directions_and_trees():
    f = lambda p: jnp.sum(jnp.sin(p["w"]) * p["b"]) + jnp.sum(p["b"] ** 3)
    p = {"w": jnp.arange(6.0).reshape(2, 3) / 5, "b": jnp.array([0.5, -1.5, 2.0])}
    g = jax.grad(f)(p)
    s = fdjax.sweep(f, p, indices=[1, 4, 7], reference=jax.grad(f))
    assert s.names == ["['b'][1]", "['w'][0, 1]", "['w'][1, 1]"]
    tree = s.to_tree("estimate")
    assert np.isnan(np.asarray(tree["b"])[0]) and abs(float(tree["b"][1]) - float(g["b"][1])) < 1e-10
    assert s.to_tree("status")["w"].dtype == np.int32
    assert np.all(np.asarray(s.true_error) <= np.asarray(s.error_estimate))
    # directions: a [D, N] array or a pytree with a leading axis
    v = jax.random.normal(jax.random.key(3), (4, 9))
    sd = fdjax.sweep(f, p, directions=v, reference=g)
    flat_g = np.concatenate([np.ravel(g["b"]), np.ravel(g["w"])])
    np.testing.assert_allclose(np.asarray(sd.estimate), np.asarray(v) @ flat_g, rtol=1e-10)
    assert sd.kind == "directions" and sd.names[0] == "direction 0"
    vt = {"b": v[:, :3], "w": v[:, 3:].reshape(4, 2, 3)}
    np.testing.assert_array_equal(
        np.asarray(fdjax.sweep(f, p, directions=vt).estimate), np.asarray(sd.estimate)
    )


def test_summary_and_json():
    s = fdjax.sweep(lambda x: jnp.sum(x**3), jnp.array([1.0, -2.0]), reference=lambda x: 3 * x**2)
    text = str(s)
    assert "Step sweep (central, 14 steps" in text and "CONVERGED" in text and "<root>[1]" in text
    d = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    assert d["evaluations"] == 2 * 14 * 2 + 1 and len(d["parameters"]) == 2
    p = d["parameters"][1]
    assert abs(p["estimate"] - 12.0) <= p["error"] and p["status"][0] == "CONVERGED"
    assert len(p["steps"]) == len(p["true_error"]) == 14 and p["differences"][-1] is None
    assert repr(s) == "StepSweep(method='central', coordinates=2, steps=14, evaluations=57)"


# --------------------------------------------------------------------------------------------
# step="auto" in grad / jacobian, and the helper other layers call


@pytest.mark.parametrize("use_jit", [False, True])
def test_grad_auto_matches_jax(use_jit):
    f = lambda p, y: jnp.sum(jnp.log1p(p["a"] ** 2) * y) + jnp.sum(jnp.cos(p["b"]))
    p, y = {"a": jnp.array([0.3, -1.2, 4.0]), "b": jnp.array(2.5)}, jnp.array([1.0, 2.0, 3.0])
    g = fdjax.grad(f, step="auto")
    g = jax.jit(g) if use_jit else g
    out = g(p, y)
    ref = jax.grad(f)(p, y)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-11)


def test_jacobian_auto_pytree_output():
    f = lambda x: {"s": jnp.sin(x), "c": jnp.sum(x**3)}
    x = jnp.array([0.5, 1.0])
    J = fdjax.jacobian(f, step="auto")(x)
    ref = jax.jacfwd(f)(x)
    for a, b in zip(jax.tree_util.tree_leaves(J), jax.tree_util.tree_leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_grad_auto_float32():
    f = lambda x: jnp.sum(jnp.exp(x) * jnp.sin(3 * x))
    x = jnp.linspace(-1, 1, 5, dtype=jnp.float32)
    g = fdjax.grad(f, step="auto")(x)
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, jax.grad(f)(x), rtol=2e-4, atol=2e-5)


def test_adaptive_basis_helper():
    x = jnp.array([1e-3, 1.0, 0.0])
    flat_fn = lambda v: jnp.sum(jnp.log(v[:2])) + jnp.abs(v[2])
    res = jax.jit(lambda x: adaptive_basis(flat_fn, x, flat_fn(x), METHODS["central"], Options()))(x)
    np.testing.assert_allclose(np.asarray(res.estimate)[:2], [1e3, 1.0], rtol=1e-10)
    status = [Status(int(c)) for c in np.asarray(res.status)]
    assert Status.NONFINITE in status[0] and Status.KINK in status[2]
    assert np.all(np.asarray(res.error_estimate)[:2] >= np.abs(np.asarray(res.estimate)[:2] - [1e3, 1.0]))
    assert np.asarray(res.step).shape == (3,)


# --------------------------------------------------------------------------------------------
# the ladder's analysis: NumPy on the host (an eager sweep) and JAX (traced) agree


def _case_ladder(method, dtype):
    """One ladder with a coordinate and an output per closed-form case (smooth, singular near 0,
    a kink, NaN at some steps), one with fresh noise at every point, one non-finite at every step."""
    cases = [case for name, case in CASES.items() if method != "complex" or name != "abs@0"]
    fs, xs = [case[0] for case in cases], [case[1] for case in cases]
    if method != "complex":  # the noise hashes the bits of a real x; abs is not analytic
        fs.append(lambda z: jnp.sin(z) * (1 + NOISE[dtype] * xi(z)))
        xs.append(1.0)
    fs.append(lambda z: jnp.where(z == 1.0, z, jnp.nan * z))
    xs.append(1.0)

    def f(z):  # one output per case (its own |f| in the round-off model): channel (i, i) is case i
        return jnp.stack([fi(z[i]) for i, fi in enumerate(fs)])

    stencil = METHODS[method]
    rel = default_relative_steps(dtype)
    x = jnp.asarray(xs, dtype)
    raw, _ = compiled_as_fdjax(lambda x: ladder_values(f, x, f(x), stencil, Options(), rel, 1.0), x)
    return raw, stencil


@pytest.mark.parametrize(
    "method,dtype",
    [
        ("central", jnp.float64),
        ("central", jnp.float32),
        ("central4", jnp.float64),  # weights like 1/12: no product is exact
        ("forward", jnp.float32),  # no kink test
        ("complex", jnp.float64),
    ],
)
def test_ladder_analysis_numpy_matches_jax(method, dtype):
    """``read_ladder`` on concrete arrays runs in NumPy on the host and compiles nothing; traced,
    it runs in JAX. On the same ladder every field agrees bit for bit, but the observed orders
    (logarithms, which NumPy and XLA round differently) agree to a few ulps."""
    raw, stencil = _case_ladder(method, dtype)
    compiled = []

    def listen(event, *args, **kwargs):
        compiled.append(event) if event == "/jax/core/compile/backend_compile_duration" else None

    jax.monitoring.register_event_time_span_listener(listen)
    try:
        host = read_ladder(raw, stencil, DEFAULT_LEVELS)
    finally:
        jax.monitoring.unregister_event_time_span_listener(listen)
    assert compiled == []
    traced = compiled_as_fdjax(lambda raw: read_ladder(raw, stencil, DEFAULT_LEVELS), raw)
    eps = float(jnp.finfo(dtype).eps)
    for group in ("per_channel", "per_step"):
        assert host[group].keys() == traced[group].keys()
        for name, a in host[group].items():
            b = np.asarray(traced[group][name])
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, name
            if name in ("order", "orders"):
                np.testing.assert_allclose(a, b, rtol=4 * eps, err_msg=name)
            else:
                np.testing.assert_array_equal(a, b, err_msg=name)
    flags = [Status(int(c)) for c in np.diagonal(host["per_channel"]["status"])]
    seen = functools.reduce(operator.or_, flags)
    for bit in (Status.CONVERGED, Status.NONFINITE, Status.NO_WINDOW):
        assert bit in seen, (bit, flags)
    if method in ("central", "central4"):  # the kink test needs both one-sided offsets
        assert Status.KINK in seen
    if method == "central":
        assert Status.NOISY in seen


def test_grad_auto_every_step_nonfinite_raises():
    f = lambda x: jnp.sum(jnp.where(x == 1.0, x, jnp.nan))
    with pytest.raises(fdjax.NonFiniteError, match=r"every step of the sweep for parameter <root>\[0\]"):
        fdjax.grad(f, step="auto")(jnp.array([1.0]))


# --------------------------------------------------------------------------------------------
# bad input


x2 = jnp.array([1.0, 2.0])
sq = lambda x: jnp.sum(x**2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=[1e-1, 1e-2]), r"fdjax.sweep\(steps=...\) must be a strictly decreasing sequence"),
        (dict(steps=[1e-3, 1e-2, 1e-1]), r"fdjax.sweep\(steps=...\) must be a strictly decreasing"),
        (dict(steps=[1e-1, -1e-2, -1e-3]), r"steps=...\) must .* positive, finite"),
        (dict(steps=[1e-1, 1e-2], num_steps=5), r"give steps=... or num_steps=..., not both"),
        (dict(num_steps=2), r"fdjax.sweep\(num_steps=...\) must be an int >= 3, got 2"),
        (dict(num_steps=4.0), r"num_steps=...\) must be an int >= 3, got 4.0"),
        (dict(scale=0.0), r"fdjax.sweep\(scale=...\) must be a positive finite number, got 0.0"),
        (dict(levels=-1), r"fdjax.sweep\(levels=...\) must be an int in \[0, 4\], got -1"),
        (dict(indices=[0, 2]), r"fdjax.sweep\(indices=...\) must lie in \[0, 2\) .* got 2"),
        (dict(indices=[[0]]), r"indices=...\) must be a non-empty 1-D sequence of integers"),
        (dict(indices=[0.5]), r"indices=...\) must be a non-empty 1-D sequence of integers"),
        (dict(indices=[0], directions=jnp.ones((1, 2))), r"give indices=... or directions=..., not both"),
        (
            dict(directions=jnp.ones((2, 3))),
            r"fdjax.sweep\(directions=...\): a leaf has shape \(2, 3\), expected \(2, 2\)",
        ),
        (dict(directions=jnp.zeros((1, 2))), r"directions=...\) must be finite and nonzero"),
        (dict(reference={"a": 1.0}), r"fdjax.sweep\(reference=...\) must have the structure"),
        (dict(reference=jnp.ones(3)), r"reference=...\): a leaf has shape \(3,\), expected \(2,\)"),
        (dict(method="centre"), r"fdjax.sweep\(method=...\) must be one of"),
        (
            dict(method=fdjax.Stencil.from_offsets([-1, 0, 1], 2)),
            r"must be a first-derivative stencil, got derivative order 2",
        ),
        (dict(chunk_size=0), r"fdjax.sweep\(chunk_size=...\) must be"),
    ],
)
def test_sweep_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fdjax.sweep(sq, x2, **kwargs)


def test_sweep_bad_function():
    with pytest.raises(TypeError, match=r"fdjax.sweep\(fun=...\) must be callable, got int"):
        fdjax.sweep(3, x2)
    with pytest.raises(TypeError, match=r"fdjax.sweep requires a scalar-output function"):
        fdjax.sweep(lambda x: x**2, x2)
    with pytest.raises(fdjax.NonFiniteError, match=r"non-finite value at the unperturbed point"):
        fdjax.sweep(lambda x: jnp.sum(jnp.log(x - 1.5)), x2)


def test_result_accessors_bad_input():
    s = fdjax.sweep(sq, x2)
    with pytest.raises(ValueError, match=r"StepSweep.to_tree\(field=...\) must be one of .* got 'gradient'"):
        s.to_tree("gradient")
    with pytest.raises(
        ValueError, match=r"StepSweep.to_tree\('true_error'\): the sweep was run without reference="
    ):
        s.to_tree("true_error")
    with pytest.raises(IndexError, match=r"StepSweep.table\(i=...\) must be in \[-2, 2\), got 5"):
        s.table(5)


def test_grad_step_string_other_than_auto():
    with pytest.raises(ValueError, match=r"fdjax.grad\(step=...\) must be .*or \"auto\", got 'adaptive'"):
        fdjax.grad(sq, step="adaptive")
