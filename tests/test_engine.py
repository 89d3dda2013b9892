"""The engine: chunking, padding, compilation, tracing contexts, memory planning, bad options."""

import functools
import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax import examples
from fdjax import _engine
from fdjax._engine import plan as _plan
from fdjax._engine import compile as _compile
from fdjax._engine.compile import WorkJit
from fdjax._engine import Basis, Directions, Options, RandomDirections
from subprocess_json import RSS_PRELUDE, run_json

N = 300
X = jnp.linspace(-2.0, 3.0, N)
A = jax.random.normal(jax.random.key(0), (N, N)) / math.sqrt(N)
EPS = float(jnp.finfo(jnp.float64).eps)


def central_rows(n, h=1e-4):
    index = jnp.tile(jnp.arange(n, dtype=jnp.int32), 2)
    return {"index": index, "coeff": jnp.concatenate([jnp.full(n, h), jnp.full(n, -h)])}


def elementwise(v):  # vector output, no reduction
    return jnp.sin(v) * v + jnp.exp(-v * v)


def reduction(v):
    return jnp.sum(jnp.sin(v) * v)


def matmul(v):
    return jnp.tanh(A @ v) @ v


def run(f, rows, chunk_size=None, use_jit=True, perturb=None, x=X, **kw):
    perturb = Basis() if perturb is None else perturb

    def go(x, rows):
        return _engine.evaluate(f, x, perturb, rows, Options(chunk_size=chunk_size, devices=1, **kw))

    # as fdjax runs the engine: in a program compiled for its work (WorkJit)
    return np.asarray((WorkJit(go) if use_jit else go)(x, rows))


def reference(f, rows, x=X):
    """Row by row, outside any batch."""
    idx, coeff = np.asarray(rows["index"]), np.asarray(rows["coeff"])
    return np.stack([np.asarray(f(x.at[i].add(c))) for i, c in zip(idx, coeff, strict=True)])


@functools.cache
def central_reference(f):
    """``reference(f, central_rows(N))``, computed once per f (600 eager evaluations)."""
    return reference(f, central_rows(N))


SIZES = [1, 7, 64, N, 2 * N, 2 * N + 9]  # 2N is "N rows" of the plan: all rows in one chunk


# ------------------------------------------------------------------------------------------
# Chunking


@pytest.mark.parametrize("use_jit", [False, True])
def test_elementwise_f_is_bitwise_identical_for_every_chunk_size(use_jit):
    rows = central_rows(N)
    outs = [run(elementwise, rows, b, use_jit) for b in SIZES]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    np.testing.assert_allclose(outs[0], central_reference(elementwise), rtol=4 * EPS, atol=4 * EPS)


@pytest.mark.parametrize("f", [reduction, matmul], ids=["sum", "matmul"])
def test_reductions_agree_within_the_summation_round_off_bound(f):
    # XLA may reassociate a sum or a GEMM differently for different batch shapes, so the
    # strongest true statement is the summation error bound: |Δ| <= log2(n)·eps·Σ|terms|.
    rows = central_rows(N)
    outs = {b: run(f, rows, b) for b in SIZES}
    pts = jax.vmap(lambda r: Basis()(X, r))(rows)
    if f is reduction:
        scale = np.asarray(jnp.sum(jnp.abs(jnp.sin(pts) * pts), axis=1))
    else:
        # Σ_i |v_i|·(|tanh(Av)_i| + (|A||v|)_i): the dot's error passes through tanh' <= 1
        inner = jnp.abs(jnp.tanh(pts @ A.T)) + jnp.abs(pts) @ jnp.abs(A).T
        scale = np.asarray(jnp.sum(jnp.abs(pts) * inner, axis=1))
    bound = 2 * math.log2(N) * EPS * scale
    ref = central_reference(f)
    for b, o in outs.items():
        assert np.all(np.abs(o - outs[1]) <= bound), b
        assert np.all(np.abs(o - ref) <= bound), b


@pytest.mark.parametrize("f", [elementwise, reduction, matmul], ids=["elementwise", "sum", "matmul"])
@pytest.mark.parametrize("b", [3, 7, 16])
def test_for_a_fixed_chunk_size_a_row_does_not_depend_on_chunk_boundaries(f, b):
    # Every chunk is padded to exactly b rows, so every row runs in the same program.
    rows = central_rows(N)
    full = run(f, rows, b)
    # (plans shorter than b run as one chunk of their own length, a different program)
    for lo, hi in [(0, b), (3, 3 + b), (5, 28), (2 * N - b - 5, 2 * N)]:  # one chunk; remainders
        part = run(f, {k: a[lo:hi] for k, a in rows.items()}, b)
        np.testing.assert_array_equal(part, full[lo:hi])


def test_an_empty_plan_returns_no_rows():
    rows = {"index": jnp.zeros((0,), jnp.int32), "coeff": jnp.zeros((0,))}
    for b in (None, 4):
        assert run(elementwise, rows, b).shape == (0, N)
        assert run(reduction, rows, b).shape == (0,)


@pytest.mark.parametrize("num_rows", [1, 6, 13, 64])
def test_remainder_rows_are_correct(num_rows):
    rows = jax.tree_util.tree_map(lambda a: a[:num_rows], central_rows(N))
    ref = central_reference(elementwise)[:num_rows]  # the same rows, evaluated one at a time
    for b in (4, 5, 64, 100):
        out = run(elementwise, rows, b)
        assert out.shape == (num_rows, N)
        np.testing.assert_allclose(out, ref, rtol=4 * EPS, atol=4 * EPS)


def test_grad_across_chunk_sizes_within_the_fd_round_off_bound():
    f, p, x, y = examples.mlp(sizes=(6, 8, 4), batch=16)
    grads = [fdjax.grad(f, chunk_size=b)(p, x, y) for b in (1, 7, 184, 1000)]
    fx = float(f(p, x, y))
    h = np.cbrt(EPS)  # default relative step; |x_i| < 1 here except a few
    for g in grads[1:]:
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(grads[0]), strict=True):
            # a few ulps of f per evaluation, divided by 2h
            assert float(jnp.max(jnp.abs(a - b))) <= 16 * EPS * abs(fx) / h


# ------------------------------------------------------------------------------------------
# Perturbations


@pytest.mark.parametrize("coeff", [1e-3, -2.5, 1e-3j])
def test_basis_is_the_scatter_bit_for_bit(coeff):
    x = jnp.linspace(-1.0, 1.0, 17)
    for i in (0, 5, 16, -1):
        c = jnp.asarray(coeff, jnp.complex128 if isinstance(coeff, complex) else jnp.float64)
        row = {"index": jnp.int32(i), "coeff": c}
        want = x.astype(c.dtype).at[i].add(c)
        np.testing.assert_array_equal(Basis()(x, row), want)


def test_directions_and_random_directions_match_explicit_points():
    x = jnp.linspace(-1.0, 1.0, 11)
    v = jax.random.normal(jax.random.key(3), (3, 11))
    rows = {"index": jnp.array([0, 2, 1, 2], jnp.int32), "coeff": jnp.array([0.1, -0.2, 0.3, 1.0])}
    out = run(reduction, rows, 3, perturb=Directions(v), x=x)
    want = [reduction(x + c * v[i]) for i, c in zip([0, 2, 1, 2], [0.1, -0.2, 0.3, 1.0], strict=True)]
    np.testing.assert_allclose(out, want, rtol=1e-14)
    rd = RandomDirections(jax.random.key(7))
    rows = dict(rows, lo=jnp.array([0, 2, 0, 5], jnp.int32), hi=jnp.array([11, 6, 3, 11], jnp.int32))
    out = run(reduction, rows, 2, perturb=rd, x=x)
    want = [reduction(rd(x, {name: a[k] for name, a in rows.items()})) for k in range(4)]
    np.testing.assert_allclose(out, want, rtol=1e-14)


# ------------------------------------------------------------------------------------------
# Compilation and tracing contexts


def test_no_recompilation_on_a_second_call():
    traces = []

    def f(p):
        traces.append(1)  # runs once per trace, never per evaluation
        return jnp.sum(jnp.sin(p["w"]) ** 2) + p["b"] ** 2

    p = {"w": jnp.arange(5.0), "b": jnp.array(0.5)}
    g = fdjax.grad(f)
    first = g(p)
    n = len(traces)
    second = g(p)
    third = fdjax.grad(f)(jax.tree_util.tree_map(lambda a: a + 1, p))  # same shapes, new values
    assert len(traces) == n
    np.testing.assert_array_equal(first["w"], second["w"])
    assert third["w"].shape == (5,)


_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _compiles(fn):
    """``fn()`` and the number of XLA compilations it made."""
    seen = []

    def listen(event, *args, **kwargs):
        seen.append(1) if event == _COMPILE_EVENT else None

    jax.monitoring.register_event_time_span_listener(listen)
    try:
        out = fn()
    finally:
        jax.monitoring.unregister_event_time_span_listener(listen)
    return out, len(seen)


def _loss_over(data):
    """A new closure each call, as a new test (or a new call of a loss factory) writes."""

    def loss(p):
        return jnp.mean((jnp.tanh(data @ p["w"]) - 0.5) ** 2) + p["b"] ** 2

    return loss


_P = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.array(0.3)}
_DATA = jnp.asarray(np.random.default_rng(3).standard_normal((16, 6)))


def test_a_new_closure_of_the_same_code_and_constants_compiles_nothing():
    first, n_first = _compiles(lambda: fdjax.check_grad(_loss_over(_DATA), _P, mode="full"))
    again, n_again = _compiles(lambda: fdjax.check_grad(_loss_over(_DATA), _P, mode="full"))
    assert n_first >= 2 and n_again == 0  # the AD pass and the engine batch: shared
    assert first.passed and again.passed
    np.testing.assert_array_equal(again.elements.numeric, first.elements.numeric)


@pytest.mark.parametrize("scale", [2.0, -1.0])
def test_programs_are_not_shared_across_different_constants(scale):
    """Same code, same shapes, other data: a program of its own, each gradient its own."""
    fdjax.grad(_loss_over(_DATA))(_P)
    other = _loss_over(_DATA * scale)
    g, n = _compiles(lambda: fdjax.grad(other)(_P))
    assert n >= 1
    np.testing.assert_allclose(g["w"], jax.grad(other)(_P)["w"], rtol=1e-7, atol=1e-9)


def test_programs_are_not_shared_across_arguments_used():
    """Two functions that differ only in which (same-shaped) leaf they read lower to the
    same module once the unused argument is pruned: the kept arguments are in the key."""
    p = {"a": jnp.linspace(0.1, 0.9, 4), "b": jnp.linspace(1.0, 2.0, 4)}
    fa, fb = (lambda q: jnp.sum(jnp.sin(q["a"]))), (lambda q: jnp.sum(jnp.sin(q["b"])))
    la, lb = (jax.jit(f).trace(p).lower() for f in (fa, fb))
    assert la.as_text() == lb.as_text()
    assert _compile.program_key(la, None, ()) != _compile.program_key(lb, None, ())
    ga, gb = fdjax.grad(fa)(p), fdjax.grad(fb)(p)
    np.testing.assert_allclose(ga["a"], jnp.cos(p["a"]), rtol=1e-7)
    np.testing.assert_allclose(gb["b"], jnp.cos(p["b"]), rtol=1e-7)
    assert not np.any(ga["b"]) and not np.any(gb["a"])


def test_programs_that_call_back_into_python_are_never_shared():
    """The Python function of a ``pure_callback`` is bound to the executable, not written in
    the module's text: two callbacks of the same shapes lower to the same text."""

    def through(c):
        def f(v):
            out = jax.ShapeDtypeStruct(v.shape, v.dtype)
            scaled = jax.pure_callback(lambda a: np.asarray(a * c), out, v, vmap_method="expand_dims")
            return jnp.sum(jnp.sin(scaled))

        return f

    lowered = [jax.jit(through(c)).trace(X).lower() for c in (1.0, 2.0)]
    assert lowered[0].as_text() == lowered[1].as_text()
    assert _compile.program_key(lowered[0], None, ()) is None
    for c in (1.0, 2.0):
        np.testing.assert_allclose(fdjax.grad(through(c))(X), c * jnp.cos(c * X), rtol=1e-6, atol=1e-8)


def test_row_cost_is_measured_once_per_computation():
    rows = central_rows(N)
    _plan._COSTS.clear()
    for _ in range(2):  # a budget too small for one chunk: the cost is measured
        jax.eval_shape(lambda x, r: _spy_plan(matmul, x, r, memory_budget=2**16), X, rows)
    assert len(_plan._COSTS) == 1


def _spy_plan(f, x, rows, **kw):
    _spy_plan.last = _engine.chunk_plan(f, x, Basis(), rows, Options(devices=1, **kw))
    return x


def test_inside_a_users_jit_and_with_closures_over_arrays():
    w = jnp.linspace(0.5, 1.5, N)  # closed over by f

    def f(v):
        return jnp.sum(w * jnp.cos(v))

    rows = central_rows(N)

    @jax.jit
    def user(x, scale):
        g = lambda v: f(v) * scale  # closes over a tracer of the user's jit
        return _engine.evaluate(g, x, Basis(), rows, Options(devices=1))

    out = np.asarray(user(X, 2.0))
    np.testing.assert_allclose(out, 2.0 * reference(f, rows), rtol=1e-13)

    @jax.jit
    def user_grad(x):
        return fdjax.grad(lambda v: f(v) * jnp.sum(x))(x)

    np.testing.assert_allclose(user_grad(X), fdjax.grad(lambda v: f(v) * jnp.sum(X))(X), rtol=1e-12)


# ------------------------------------------------------------------------------------------
# Memory planning


def test_row_cost_is_measured_by_xla_and_counts_the_perturbed_copy():
    jax.eval_shape(lambda x, r: _spy_plan(matmul, x, r, memory_budget=2**16), X, central_rows(N))
    cost = _spy_plan.last["row_cost"]
    assert cost.source == "memory_analysis"  # CPU reports it
    assert cost.bytes >= N * 8
    assert cost.flops >= 2 * N * N  # the matvec


def test_small_plans_skip_the_measurement_when_the_over_estimate_fits_one_chunk():
    jax.eval_shape(lambda x, r: _spy_plan(matmul, x, r), X, central_rows(N))
    plan = _spy_plan.last
    assert plan["row_cost"].source == "estimate"
    assert plan["rows"] * plan["row_cost"].bytes <= _plan.CPU_SPLIT_BYTES
    assert plan["chunk_size"] == 2 * N and plan["chunks_per_device"] == 1


def test_a_long_plan_is_costed_from_the_lowered_program_without_a_compile(monkeypatch):
    # 120,000 rows (>= COST_ROWS) whose over-estimate leaves >= 8 rows per chunk: the
    # warning's FLOPs come from the lowered row program; nothing is compiled for the plan.
    from fdjax._engine import batch

    compiled = []
    monkeypatch.setattr(batch, "measure_row", lambda *a: compiled.append(a))
    rows = {"index": jnp.zeros(120_000, jnp.int32), "coeff": jnp.ones(120_000)}
    jax.eval_shape(lambda x, r: _spy_plan(matmul, x, r), X, rows)
    cost = _spy_plan.last["row_cost"]
    assert not compiled and cost.source == "estimate"
    assert cost.flops >= 2 * N * N  # the matvec, from XLA's analysis of the lowered program
    assert _spy_plan.last["chunk_size"] >= 8


def test_the_row_estimate_counts_a_fused_elementwise_chain_once():
    from fdjax._engine.plan import _jaxpr_bytes

    v = jnp.ones(1000)
    chain = jax.make_jaxpr(lambda v: jnp.sum(jnp.exp(jnp.tanh(v) * 2.0 + 1.0)))(v)
    matmuls = jax.make_jaxpr(lambda v: jnp.sum((v[:, None] * v[None, :]) @ jnp.tanh(v)))(v)
    assert 8_000 <= _jaxpr_bytes(chain.jaxpr) < 2 * 8_000  # one [1000] value live, not four
    assert _jaxpr_bytes(matmuls.jaxpr) >= 8_000_000  # the [1000, 1000] operand of the product


@pytest.mark.parametrize("budget", [10 * 2**10, 100 * 2**10, 2**20])
def test_chunk_size_respects_the_memory_budget(budget):
    jax.eval_shape(lambda x, r: _spy_plan(matmul, x, r, memory_budget=budget), X, central_rows(N))
    plan = _spy_plan.last
    assert plan["chunk_size"] == 1 or plan["chunk_size"] * plan["row_cost"].bytes <= budget
    assert plan["padded_rows"] >= plan["rows"]


@pytest.mark.parametrize("rows", [1, 9, 100, 1000, 12345])
@pytest.mark.parametrize("row_bytes", [8, 1000, 3 * 2**20])
@pytest.mark.parametrize("platform", ["cpu", "gpu"])
def test_choose_chunk_size_model(rows, row_bytes, platform):
    budget = 64 * 2**20
    b = _plan.choose_chunk_size(rows, row_bytes, budget, platform)
    n_chunks = -(-rows // b)
    assert 1 <= b <= rows
    assert b == 1 or b * row_bytes <= budget
    if platform == "cpu":
        assert b == 1 or b * row_bytes <= _plan.cache_bytes() // 2
        if rows * row_bytes > _plan.CPU_SPLIT_BYTES:
            assert b <= _plan.CPU_MAX_CHUNK
        elif rows * row_bytes <= _plan.cache_bytes() // 2:
            assert b == rows  # small enough to stay in cache: one chunk, no loop
    elif row_bytes * rows <= budget:
        assert b == rows  # an accelerator takes every row that fits in one chunk
    assert n_chunks * b - rows < 8 * n_chunks  # balanced: little padding


def test_cpu_chunks_are_capped_even_when_the_cache_would_hold_every_row(monkeypatch):
    """A VM that reports its socket's last-level cache (hundreds of MiB) still gets chunks of
    at most CPU_MAX_CHUNK (128) rows on CPU once the rows take more than CPU_SPLIT_BYTES
    (16 MiB), balanced: 1000 rows of 64 KiB -> 8 chunks of 128 (1024 padded), 300 rows -> 3
    chunks of 104 (a multiple of 8). Rows that take less run as one chunk (no loop to
    compile), and an accelerator takes them all."""
    monkeypatch.setattr(_plan, "cache_bytes", lambda: 2**30)
    assert _plan.CPU_MAX_CHUNK == 128 and _plan.CPU_SPLIT_BYTES == 16 * 2**20
    row = 64 * 2**10
    assert _plan.choose_chunk_size(1000, row, 2**30, "cpu") == 128
    assert _plan.choose_chunk_size(300, row, 2**30, "cpu") == 104
    assert _plan.choose_chunk_size(256, row, 2**30, "cpu") == 256  # 16 MiB exactly: one chunk
    assert _plan.choose_chunk_size(2600, 2612, 2**30, "cpu") == 2600  # 6.5 MiB: one chunk
    assert _plan.choose_chunk_size(1000, row, 2**30, "gpu") == 1000


MEMORY_SCRIPT = (
    RSS_PRELUDE
    + r"""
import json, resource, sys
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
from fdjax import _engine
n, rows, budget = {n}, {rows}, {budget}
x = jnp.linspace(-1.0, 1.0, n)
def f(v):  # cheap, and a temporary of the size of x per row
    return jnp.sum(jnp.tanh(v[:1000])) + jnp.sum(v * v)
jax.block_until_ready(f(x))
before = peak_rss()
idx = (jnp.arange(rows, dtype=jnp.int32) * (n // rows)).astype(jnp.int32)
r = {{"index": idx, "coeff": jnp.full((rows,), 1e-6)}}
opts = _engine.Options(memory_budget=budget, devices=1)
out = jax.jit(lambda x, r: _engine.evaluate(f, x, _engine.Basis(), r, opts))(x, r)
ok = bool(jnp.all(jnp.isfinite(out)))
peak = peak_rss()
plan = {{}}
def spy(x, r):
    plan.update(_engine.chunk_plan(f, x, _engine.Basis(), r, opts)); return x
jax.eval_shape(spy, x, r)
res = {{"before": before, "peak": peak, "b": plan["chunk_size"], "row": plan["row_cost"].bytes, "ok": ok}}
print(json.dumps(res))
"""
)


def test_memory_budget_bounds_peak_rss_for_a_subset_plan_of_a_large_vector():
    # 2e3 rows over a 1e6-parameter float64 vector (8 MB): the plan's [rows, N] array
    # would be 16 GB; with a 64 MiB budget the peak RSS grows by well under a GB.
    res = run_json(textwrap.dedent(MEMORY_SCRIPT.format(n=1_000_000, rows=2_000, budget=64 * 2**20)))
    assert res["ok"]
    assert res["b"] * res["row"] <= 64 * 2**20
    assert res["peak"] < 1.5e9
    assert res["peak"] - res["before"] < 64 * 2**20 + 256 * 2**20  # budget + compiler/runtime slack


# ------------------------------------------------------------------------------------------
# Long plans


def test_a_full_plan_over_a_huge_vector_warns_with_the_expected_time():
    f = lambda v: jnp.sum(jnp.tanh(v) ** 2)
    big = jax.ShapeDtypeStruct((10**7,), jnp.float32)
    with pytest.warns(
        _engine.LargePlanWarning, match=r"20,000,000 perturbed points; expected ≈ .*directional"
    ):
        jax.eval_shape(fdjax.grad(f), big)  # traced only: nothing runs


def test_small_plans_do_not_warn():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fdjax.grad(reduction)(X)


# ------------------------------------------------------------------------------------------
# Bad options


@pytest.mark.parametrize("name", ["chunk_size", "memory_budget"])
@pytest.mark.parametrize("value", [0, -3, 1.5, True, "64"])
def test_bad_chunk_size_and_memory_budget(name, value):
    with pytest.raises(
        ValueError, match=rf"fdjax\.grad\({name}=\.\.\.\) must be a positive int or None, got {value!r}"
    ):
        fdjax.grad(reduction, **{name: value})
    with pytest.raises(ValueError, match=rf"fdjax\.jvp\({name}=\.\.\.\)"):
        fdjax.jvp(reduction, (X,), (X,), **{name: value})


@pytest.mark.parametrize(
    "value, err, match",
    [
        (
            0,
            ValueError,
            r"fdjax\.grad\(devices=\.\.\.\) must be between 1 and the number of devices \(\d+\), got 0",
        ),
        (10**6, ValueError, r"must be between 1 and the number of devices \(\d+\), got 1000000"),
        (
            "cpu",
            TypeError,
            r"fdjax\.grad\(devices=\.\.\.\) must be None, a positive int or a non-empty sequence",
        ),
        ([], TypeError, r"non-empty sequence of jax\.Device, got \[\]"),
        ([0, 1], TypeError, r"must contain jax\.Device objects, got 0"),
        (True, TypeError, r"got True"),
    ],
)
def test_bad_devices(value, err, match):
    with pytest.raises(err, match=match):
        fdjax.grad(reduction, devices=value)


def test_duplicate_devices():
    d = jax.devices()[0]
    with pytest.raises(ValueError, match=r"fdjax\.jacobian\(devices=\.\.\.\) lists a device more than once"):
        fdjax.jacobian(reduction, devices=[d, d])


def test_good_devices_values():
    d = jax.devices()
    for value in (None, 1, d, d[0], tuple(d)):
        g = fdjax.grad(reduction, devices=value)(X)
        np.testing.assert_allclose(g, jax.grad(reduction)(X), atol=1e-8)


def test_compiled_bodies_are_bounded_and_an_evicted_one_runs_again(monkeypatch):
    """A process that checks many functions keeps the programs of the last MAX_BODIES bodies
    (and of the last MAX_SHARED programs by what they compute) only: each new function's
    programs would otherwise stay in memory for good."""
    from fdjax._engine import jit as jit_mod

    monkeypatch.setattr(jit_mod, "MAX_BODIES", 3)
    monkeypatch.setattr(jit_mod, "_JITTED", type(jit_mod._JITTED)())
    funcs = [lambda v, k=k: jnp.sum(jnp.sin(k * v)) for k in range(1, 6)]
    grads = [fdjax.grad(f) for f in funcs]
    for g in grads:
        g(X)
    assert len(jit_mod._JITTED) == 3
    # the first function's body was dropped: it runs again, with the same values
    np.testing.assert_allclose(grads[0](X), jnp.cos(X), rtol=1e-7, atol=1e-9)
    assert len(jit_mod._JITTED) == 3


def test_clear_caches_frees_every_compiled_program_and_the_next_call_compiles_again():
    """``fdjax.clear_caches()`` drops the programs of every body, transform and sweep; the
    same call then compiles anew and gives the same values."""
    from fdjax._engine import jit as jit_mod

    compiled = []

    def listen(event, *args, **kwargs):
        compiled.append(event) if event == "/jax/core/compile/backend_compile_duration" else None

    f = lambda v: jnp.sum(jnp.sin(v) ** 3)  # noqa: E731
    g = fdjax.grad(f)
    s = lambda v: fdjax.sweep(f, v, num_steps=6)  # noqa: E731
    jax.monitoring.register_event_time_span_listener(listen)
    try:
        first, swept = g(X), s(X)
        assert compiled  # the grad's and the sweep's programs
        compiled.clear()
        np.testing.assert_array_equal(g(X), first)
        assert compiled == []  # kept
        fdjax.clear_caches()
        assert not jit_mod._JITTED and all(not w.programs for w in _compile._LIVE)
        again = g(X)
        assert compiled  # compiled anew
        compiled.clear()
        np.testing.assert_array_equal(s(X).estimate, swept.estimate)
        assert compiled
    finally:
        jax.monitoring.unregister_event_time_span_listener(listen)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_allclose(first, 3 * jnp.sin(X) ** 2 * jnp.cos(X), rtol=1e-7, atol=1e-9)


def _flops(fn, *args):
    return sum(_compile.jaxpr_work(jax.make_jaxpr(fn)(*args)))  # products + loops


def test_jaxpr_flops_counts_products_loops_and_branches():
    a, b = jnp.ones((3, 4)), jnp.ones((4, 5))
    assert _flops(jnp.matmul, a, b) == 2 * 3 * 4 * 5
    x, k = jnp.ones((2, 3, 10, 10)), jnp.ones((8, 3, 3, 3))  # NCHW, OIHW
    conv = functools.partial(jax.lax.conv_general_dilated, window_strides=(1, 1), padding="SAME")
    assert _flops(conv, x, k) == 2 * (2 * 8 * 10 * 10) * (3 * 3 * 3)
    # a scan's body counts once per step; lax.map is a scan
    assert _flops(lambda m: jax.lax.map(lambda r: r @ r, m), jnp.ones((7, 4, 4))) == 7 * 2 * 4**3
    # the larger branch of a cond
    big = _flops(lambda p, m: jax.lax.cond(p, lambda m: m @ m, lambda m: m + 1, m), True, jnp.ones((6, 6)))
    assert 2 * 6**3 <= big <= 2 * 6**3 + 1  # (+ the predicate's conversion)
    # calls count their body (a jit inside, AD of a custom rule)
    assert _flops(jax.jit(jnp.matmul), a, b) == 2 * 3 * 4 * 5
    # matrix products apart from what XLA emits as its own loops (convolutions included)
    assert _compile.jaxpr_work(jax.make_jaxpr(jnp.matmul)(a, b)) == (2 * 3 * 4 * 5, 0)
    assert _compile.jaxpr_work(jax.make_jaxpr(conv)(x, k)) == (0, 2 * (2 * 8 * 10 * 10) * (3 * 3 * 3))
    assert _compile.jaxpr_work(jax.make_jaxpr(jnp.tanh)(a)) == (0, 12)
    # an unknown trip count is unbounded work
    assert _flops(lambda c: jax.lax.while_loop(lambda c: c < 3.0, lambda c: c + 1, c), 0.0) == math.inf


def test_small_programs_compile_quickly_on_cpu_and_large_ones_optimized(monkeypatch):
    """On CPU a program of little work is compiled with XLA's quick options, one of much work
    (or a loop of unknown length) with XLA's defaults; the values agree either way."""
    chosen = []
    original = _compile.compile_options

    def record(jaxpr, platform):
        options = original(jaxpr, platform)
        chosen.append(options)
        return options

    monkeypatch.setattr(_compile, "compile_options", record)
    small = lambda v: jnp.sum(jnp.sin(v) ** 2)  # noqa: E731
    np.testing.assert_allclose(fdjax.grad(small)(X), jax.grad(small)(X), rtol=1e-7, atol=1e-9)
    assert chosen == [_compile.QUICK_CPU_OPTIONS]
    assert original(jax.make_jaxpr(small)(X), "gpu") is None  # accelerators: XLA's defaults

    m = jnp.asarray(np.random.default_rng(0).standard_normal((2000, 2000)) / 50)
    assert _flops(lambda a: a @ a, m) == 2 * 2000**3 > _compile.QUICK_COMPILE_FLOPS
    assert original(jax.make_jaxpr(lambda a: a @ a)(m), "cpu") is None
    looped = lambda v: jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2), (0, v))[1]  # noqa: E731
    assert original(jax.make_jaxpr(looped)(X), "cpu") is None
    # loops of more than QUICK_COMPILE_LOOPS (here a 2e4 x 1e4 elementwise map): optimized
    assert (
        original(jax.make_jaxpr(jnp.tanh)(jax.ShapeDtypeStruct((20_000, 10_000), jnp.float64)), "cpu") is None
    )
    chosen.clear()
    # 2·300 rows of two products of 2000 rows (1e7 FLOPs each): beyond the threshold
    wide = lambda v: jnp.sum(jnp.tanh(m @ (m[:, : v.shape[0]] @ v)) ** 2)  # noqa: E731
    np.testing.assert_allclose(fdjax.grad(wide)(X), jax.grad(wide)(X), rtol=1e-6, atol=1e-8)
    assert chosen == [None]


def test_quick_compilation_is_switched_off_by_its_environment_variable(monkeypatch):
    jaxpr = jax.make_jaxpr(lambda v: jnp.sum(v**2))(X)
    for on in ("", "1", "yes"):
        monkeypatch.setenv("FDJAX_QUICK_COMPILE", on)
        assert _compile.compile_options(jaxpr, "cpu") == _compile.QUICK_CPU_OPTIONS
    for off in ("0", "false", "OFF"):
        monkeypatch.setenv("FDJAX_QUICK_COMPILE", off)
        assert _compile.compile_options(jaxpr, "cpu") is None
    monkeypatch.setenv("FDJAX_QUICK_COMPILE", "fast")
    with pytest.raises(
        ValueError, match=r"FDJAX_QUICK_COMPILE must be one of .*\(quick compilation off\).*got 'fast'"
    ):
        _compile.compile_options(jaxpr, "cpu")
