"""Structure-aware plans (``fdjax._engine.structure``, ``linear``): leaf by leaf and the
linear-consumer rewrite give the dense plan's values within FD round-off, on the models
people write, and fall back (never a wrong value) where the rewrite does not apply."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fdjax
from fdjax import _engine, examples
from fdjax._engine import Layout, Options, evaluate_coordinates, listen_groups
from fdjax._engine import structure
from fdjax._engine.compile import WorkJit
from fdjax._engine.structure import MAX_GROUPS, leaf_groups
from fdjax._pytree import flatten_args


@pytest.fixture(autouse=True)
def _structured_small_plans(monkeypatch):
    """The small models here take the structured plans (auto runs dense below MIN_ROWS)."""
    monkeypatch.setattr(structure, "MIN_ROWS", 0)


def _values(loss, params, args, strategy, *, index=None, dtype_step=None):
    """f at x ± h·e_i (all i, or ``index``) under one strategy, and the groups that ran."""
    fa = flatten_args((params, *args), 0, "test")
    x = fa.x
    eps = float(jnp.finfo(x.dtype).eps)
    h = eps ** (1 / 3) * jnp.maximum(jnp.abs(x), 1)
    h = (x + h) - x
    idx = np.arange(x.shape[0]) if index is None else np.asarray(index)
    coeff = jnp.stack([h[idx], -h[idx]])
    layout = Layout(fa.float_sizes, lambda pieces: loss(*fa.call_pieces(pieces)))
    log: list = []
    opts = Options(devices=1, strategy=strategy)
    # as fdjax runs the engine: in a program compiled for its work (WorkJit)
    run = WorkJit(
        lambda x, c: evaluate_coordinates(lambda v: loss(*fa.call_args(v)), x, c, opts, layout, index)
    )
    with listen_groups(log.append):
        vals = run(x, coeff)
    f0 = loss(params, *args)
    return vals, h[idx], f0, (log[-1] if log else [])


def _agree(loss, params, *args, index=None, expect=None, factor=8.0, against_ad=True):
    """auto and leaf against dense: |difference| <= factor·eps·|f| per value (a difference of
    two FD values at step h is then far below their own round-off eps·|f|/h)."""
    dense, h, f0, _ = _values(loss, params, args, "dense", index=index)
    eps = float(jnp.finfo(dense.dtype).eps)
    scale = factor * eps * max(float(jnp.max(jnp.abs(dense))), abs(float(f0)), 1e-300)
    ran = {}
    for strategy in ("leaf", "auto"):
        vals, _, _, groups = _values(loss, params, args, strategy, index=index)
        assert vals.shape == dense.shape
        err = float(jnp.max(jnp.abs(vals - dense)))
        assert err <= scale, (strategy, err, scale)
        ran[strategy] = sorted({g.strategy for g in groups})
        assert sum(g.rows for g in groups) == dense.size
    if expect is not None:
        assert ran["auto"] == expect, ran
    # the FD gradient from the auto values agrees with jax.grad (a real derivative, not noise)
    if against_ad and index is None and dense.dtype == jnp.float64:
        vals, h, _, _ = _values(loss, params, args, "auto")
        fd = (vals[0] - vals[1]) / (2 * h)
        ad = ravel_pytree(jax.grad(loss)(params, *args))[0]
        np.testing.assert_allclose(fd, ad, rtol=1e-5, atol=1e-7)
    return ran


def test_mlp_weights_rewritten_biases_batched():
    loss, params, x, y = examples.mlp((12, 9, 5), 16)
    ran = _agree(loss, params, x, y)
    assert "linear" in ran["auto"] and "leaf" in ran["auto"]


def test_mlp_float32():
    loss, params, x, y = examples.mlp((12, 9, 5), 16, jnp.float32)
    _agree(loss, params, x, y, factor=16)


def test_equinox_mlp_weight_is_lhs_under_vmap():
    model = eqx.nn.MLP(6, 3, 10, 2, activation=jnp.tanh, key=jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x = jax.random.normal(jax.random.key(1), (8, 6))

    def loss(p, x):
        m = eqx.combine(p, static)
        return jnp.mean(jax.vmap(m)(x) ** 2)

    ran = _agree(loss, params, x)
    assert "linear" in ran["auto"]


def test_attention_einsum_consumers():
    def loss(p, x):
        q, k, v = x @ p["q"], x @ p["k"], x @ p["v"]
        s = jax.nn.softmax(jnp.einsum("td,sd->ts", q, k) / 2.0, axis=-1)
        return jnp.sum(jnp.tanh(s @ v @ p["o"]))

    rng = np.random.RandomState(0)
    params = {n: jnp.asarray(rng.standard_normal((8, 8)) / 3) for n in "qkvo"}
    x = jnp.asarray(rng.standard_normal((5, 8)))
    assert _agree(loss, params, x)["auto"] == ["linear"]


def test_transposed_and_cast_weight():
    """The leaf reaches the product through a reshape, a transpose and a cast."""

    def loss(p, x):
        w = p["w"].reshape(4, 6).T.astype(jnp.float32).astype(jnp.float64)
        return jnp.sum(jnp.sin(x @ w) ** 2) + jnp.sum(p["b"] ** 2)

    rng = np.random.RandomState(1)
    params = {"w": jnp.asarray(rng.standard_normal(24)), "b": jnp.asarray(rng.standard_normal(70))}
    x = jnp.asarray(rng.standard_normal((3, 6)))
    fa_groups = _values(loss, params, (x,), "auto")[3]
    by_leaf = {g.leaves: g.strategy for g in fa_groups}
    assert by_leaf[(1,)] == "linear"
    # f sees w rounded to float32, so FD and jax.grad differ by that rounding; the rewrite
    # moves the element by the same float32-rounded step as the dense plan
    _agree(loss, params, x, against_ad=False)


def _conv_case(name):
    """A loss of (params, x) whose kernel ``params["k"]`` is a convolution's rhs."""
    rng = np.random.RandomState(3)

    def arr(*shape):
        return jnp.asarray(rng.standard_normal(shape) / 2)

    def conv(x, k, **kw):
        return jax.lax.conv_general_dilated(x, k, **kw)

    if name == "equinox":  # NCHW / OIHW, under vmap over the batch, ReLU and max-pool after
        model = eqx.nn.Conv2d(2, 8, 3, padding=1, key=jax.random.key(0))
        params, static = eqx.partition(model, eqx.is_inexact_array)
        pool = eqx.nn.MaxPool2d(2, 2)

        def eqx_loss(p, x):
            m = eqx.combine(p, static)
            return jnp.mean(jax.vmap(lambda xi: pool(jax.nn.relu(m(xi))))(x) ** 2)

        return eqx_loss, params, arr(3, 2, 6, 6), ".weight"
    kw: dict
    if name == "nhwc_strided_dilated":
        kw = dict(
            window_strides=(2, 1),
            padding="VALID",
            rhs_dilation=(2, 1),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        x, k = arr(2, 9, 8, 3), arr(3, 2, 3, 5)
    elif name == "grouped_channels_last_out":  # 2 feature groups, output in another layout
        kw = dict(
            window_strides=(1, 1),
            padding=((2, 0), (1, 1)),
            feature_group_count=2,
            dimension_numbers=("NCHW", "OIHW", "NHWC"),
        )
        x, k = arr(2, 4, 5, 5), arr(6, 2, 3, 2)
    elif name == "transposed_1d":  # lhs dilation (a transposed convolution), one spatial axis
        kw = dict(
            window_strides=(1,), padding=((2, 2),), lhs_dilation=(2,), dimension_numbers=("NWC", "WIO", "NCW")
        )
        x, k = arr(3, 7, 4), arr(3, 4, 6)
    else:
        raise ValueError(name)
    params = {"k": k, "b": arr(70)}

    def loss(p, x):
        return jnp.sum(jnp.tanh(conv(x, p["k"], **kw)) ** 2) + jnp.sum(jnp.sin(p["b"]))

    return loss, params, x, "['k']"


@pytest.mark.parametrize(
    "name", ["equinox", "nhwc_strided_dilated", "grouped_channels_last_out", "transposed_1d"]
)
def test_conv_kernels_rewritten(name):
    """A convolution's kernel takes the rewrite (one input window per row) in any layout,
    with strides, padding, dilations and feature groups: the dense plan's values, and the
    FD gradient agrees with jax.grad."""
    loss, params, x, leaf = _conv_case(name)
    _agree(loss, params, x)
    fa = flatten_args((params, x), 0, "test")
    position = fa.float_paths.index(next(p for p in fa.float_paths if p.endswith(leaf)))
    groups = {g.leaves: g for g in _values(loss, params, (x,), "auto")[3]}
    assert groups[(position,)].strategy == "linear", groups
    assert groups[(position,)].detail == "conv_general_dilated (kernel)"


def test_conv_float32_cnn():
    loss, params, images, labels = examples.cnn(channels=8, size=6, batch=4, dtype=jnp.float32)
    ran = _agree(loss, params, images, labels, factor=16)
    assert "linear" in ran["auto"]


def test_conv_input_is_not_rewritten():
    """Perturbing a convolution's input (not its kernel) falls back: exact values."""
    rng = np.random.RandomState(4)
    k = jnp.asarray(rng.standard_normal((4, 2, 3, 3)))

    def loss(p):
        y = jax.lax.conv_general_dilated(p["x"], k, (1, 1), "SAME")
        return jnp.sum(jnp.tanh(y) ** 2) + jnp.sum(jnp.sin(p["b"]))

    params = {"b": jnp.asarray(rng.standard_normal(70)), "x": jnp.asarray(rng.standard_normal((2, 2, 5, 5)))}
    assert _agree(loss, params)["auto"] == ["leaf"]


def _fallback_case(name):
    rng = np.random.RandomState(2)
    if name == "embedding":

        def loss(p, ids):
            return jnp.sum(jnp.tanh(p["e"][ids] @ p["w"]))

        params = {
            "e": jnp.asarray(rng.standard_normal((70, 3))),
            "w": jnp.asarray(rng.standard_normal((3, 2))),
        }
        return loss, params, (jnp.asarray([1, 5, 5, 9, 69]),), "['e']"
    if name == "scan":

        def loss(p, x):
            def step(h, _):
                return jnp.tanh(h @ p["w"]), None

            return jnp.sum(jax.lax.scan(step, x, None, length=3)[0]) + jnp.sum(p["b"])

        params = {
            "b": jnp.asarray(rng.standard_normal(70)),
            "w": jnp.asarray(rng.standard_normal((9, 9)) / 3),
        }
        return loss, params, (jnp.ones((2, 9)),), "['w']"
    if name == "custom_vjp":

        @jax.custom_vjp
        def mm(a, w):
            return a @ w

        mm.defvjp(lambda a, w: (a @ w, (a, w)), lambda r, g: (g @ r[1].T, r[0].T @ g))

        def loss(p, x):
            return jnp.sum(jnp.sin(mm(x, p["w"]))) + jnp.sum(p["b"] ** 2)

        params = {"b": jnp.asarray(rng.standard_normal(70)), "w": jnp.asarray(rng.standard_normal((9, 8)))}
        return loss, params, (jnp.ones((2, 9)),), "['w']"
    if name == "weight_decay":

        def loss(p, x):
            return jnp.sum(jnp.tanh(x @ p["w"])) + 1e-2 * jnp.sum(p["w"] ** 2) + jnp.sum(jnp.sin(p["b"]))

        params = {"b": jnp.asarray(rng.standard_normal(70)), "w": jnp.asarray(rng.standard_normal((9, 8)))}
        return loss, params, (jnp.ones((2, 9)),), "['w']"

    def loss(p, x):  # "no_product": a leaf used without any product
        return jnp.sum(p["w"] ** 3) + jnp.sum(jnp.cos(x @ p["v"]))

    params = {"v": jnp.asarray(rng.standard_normal((3, 70))), "w": jnp.asarray(rng.standard_normal(66))}
    return loss, params, (jnp.ones((2, 3)),), "['w']"


@pytest.mark.parametrize("name", ["embedding", "scan", "custom_vjp", "weight_decay", "no_product"])
def test_fallbacks_are_exact(name):
    """Where a leaf's first use is not one linear product, auto batches that leaf alone
    (a gathered table, a weight inside scan or custom_vjp, a weight also
    used by a penalty, a leaf without a product): the values stay the dense plan's."""
    loss, params, args, leaf = _fallback_case(name)
    _agree(loss, params, *args)
    fa = flatten_args((params, *args), 0, "test")
    position = fa.float_paths.index(next(p for p in fa.float_paths if p.endswith(leaf)))
    groups = {g.leaves: g for g in _values(loss, params, args, "auto")[3]}
    assert (position,) in groups, (fa.float_paths, groups)
    assert groups[(position,)].strategy == "leaf", groups[(position,)]


def test_subset_index_in_any_order():
    loss, params, x, y = examples.mlp((12, 9, 5), 16)
    n = ravel_pytree(params)[0].shape[0]
    index = np.random.RandomState(3).permutation(n)[:40]
    _agree(loss, params, x, y, index=index)


def test_traced_index_with_static_leaves():
    """Coordinates drawn at run time (subset checks): the leaf of each is static, its place
    in the leaf is not. The values equal the dense plan's at the same coordinates."""
    loss, params, x, y = examples.mlp((12, 9, 5), 16)
    fa = flatten_args((params, x, y), 0, "test")
    starts = np.concatenate([[0], np.cumsum(fa.float_sizes)])
    per_leaf = [min(6, s) for s in fa.float_sizes]
    leaf_of = np.repeat(np.arange(len(per_leaf)), per_leaf)
    layout = Layout(fa.float_sizes, lambda pieces: loss(*fa.call_pieces(pieces)))

    def draw(key):
        keys = jax.random.split(key, len(per_leaf))
        return jnp.concatenate(
            [
                int(starts[i]) + jax.random.choice(kk, fa.float_sizes[i], (k,), replace=False)
                for i, (kk, k) in enumerate(zip(keys, per_leaf))
            ]
        ).astype(jnp.int32)

    def run(key, x0, strategy):
        idx = draw(key)
        coeff = jnp.stack([jnp.full(idx.shape, 1e-4), jnp.full(idx.shape, -1e-4)])
        opts = Options(devices=1, strategy=strategy)
        f = lambda v: loss(*fa.call_args(v))
        leaves = None if strategy == "dense" else leaf_of
        return idx, evaluate_coordinates(f, x0, coeff, opts, layout, idx, leaves)

    log: list = []
    with listen_groups(log.append):
        idx, auto = jax.jit(lambda k, x0: run(k, x0, "auto"))(jax.random.key(7), fa.x)
    assert {g.strategy for g in log[-1]} == {"linear", "leaf"}
    idx_dense, dense = jax.jit(lambda k, x0: run(k, x0, "dense"))(jax.random.key(7), fa.x)
    np.testing.assert_array_equal(idx, idx_dense)
    scale = 8 * 2.2e-16 * float(jnp.max(jnp.abs(dense)))
    assert float(jnp.max(jnp.abs(auto - dense))) <= scale
    # a real perturbation: the difference of the two rows is the central difference
    fd = (auto[0] - auto[1]) / 2e-4
    ad = ravel_pytree(jax.grad(loss)(params, x, y))[0][idx]
    np.testing.assert_allclose(fd, ad, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="leaf_of has shape"):
        x0, three = jnp.zeros(int(starts[-1])), np.asarray(idx[:3])
        evaluate_coordinates(lambda v: 0.0, x0, jnp.ones((1, 3)), Options(), layout, three, leaf_of)


def test_subset_check_runs_the_structured_plan():
    loss, params, x, y = examples.mlp((12, 9, 5), 16)
    log: list = []
    with listen_groups(log.append):
        res = fdjax.check_grad(loss, params, x, y, mode="subset", k=5)
    assert res.passed
    assert log and {"linear", "leaf"} <= {g.strategy for g in log[-1]}

    @jax.custom_vjp  # every gradient 3x too large
    def scaled(p):
        return p

    scaled.defvjp(lambda p: (p, None), lambda _, g: (jax.tree.map(lambda a: 3 * a, g),))
    res = fdjax.check_grad(lambda p, x, y: loss(scaled(p), x, y), params, x, y, mode="subset", k=5)
    assert not res.passed


def test_mixed_dtype_tree():
    """A float32 layer in a float64 tree: x is float64, the float32 leaf's rows move it by a
    float32-rounded step, and its product is float32 (rounding eps32·|P|, as dense)."""

    def loss(p, x):
        h = jnp.tanh(x.astype(jnp.float32) @ p["a"])
        return jnp.sum(jnp.sin(h.astype(jnp.float64) @ p["b"]))

    rng = np.random.RandomState(5)
    params = {
        "a": jnp.asarray(rng.standard_normal((12, 9)), jnp.float32),
        "b": jnp.asarray(rng.standard_normal((9, 8))),
    }
    x = jnp.asarray(rng.standard_normal((6, 12)))
    dense, *_ = _values(loss, params, (x,), "dense")
    auto, _, _, groups = _values(loss, params, (x,), "auto")
    assert {g.strategy for g in groups} == {"linear"}
    scale = 8 * float(jnp.finfo(jnp.float32).eps) * float(jnp.max(jnp.abs(dense)))
    assert float(jnp.max(jnp.abs(auto - dense))) <= scale


def test_grad_strategies_agree_and_match_jax():
    loss, params, x, y = examples.mlp((10, 7, 4), 8)
    ad = ravel_pytree(jax.grad(loss)(params, x, y))[0]
    got = {s: ravel_pytree(fdjax.grad(loss, strategy=s)(params, x, y))[0] for s in ("dense", "leaf", "auto")}
    for s, g in got.items():
        np.testing.assert_allclose(g, ad, rtol=1e-6, atol=1e-8, err_msg=s)
    # within the round-off of one FD difference: eps·|f|/h
    f0 = float(loss(params, x, y))
    scale = 2.2e-16 * max(abs(f0), 1) / float(np.cbrt(2.2e-16))
    assert float(jnp.max(jnp.abs(got["auto"] - got["dense"]))) <= 4 * scale
    # jitted by the user: the same values
    jitted = jax.jit(fdjax.grad(loss))(params, x, y)
    np.testing.assert_allclose(ravel_pytree(jitted)[0], got["auto"], rtol=0, atol=4 * scale)


def test_leaf_groups_bounded():
    sizes = [5, 300, 70, 1000, 64, 63, 2, 900, 500, 80, 81, 82, 0]
    groups = leaf_groups(sizes, "auto")
    assert len(groups) <= MAX_GROUPS
    flat = sorted(i for g in groups for i in g)
    assert flat == [i for i, s in enumerate(sizes) if s]
    singles = {g[0] for g in groups if len(g) == 1}
    assert 3 in singles and 7 in singles and 6 not in singles and 5 not in singles
    assert leaf_groups(sizes, "dense") == [tuple(i for i, s in enumerate(sizes) if s)]
    # a 100-leaf model: still at most MAX_GROUPS programs
    assert len(leaf_groups([100] * 100, "auto")) == MAX_GROUPS


def test_small_auto_plans_run_dense(monkeypatch):
    monkeypatch.setattr(structure, "MIN_ROWS", 8192)
    loss, params, x, y = examples.mlp((12, 9, 5), 16)
    assert [g.strategy for g in _values(loss, params, (x, y), "auto")[3]] == []
    assert {g.strategy for g in _values(loss, params, (x, y), "leaf")[3]} == {"leaf"}


def test_bad_strategy_is_named():
    with pytest.raises(
        ValueError, match=r"fdjax.grad: strategy must be one of 'auto', 'dense', 'leaf', got 'fast'"
    ):
        fdjax.grad(lambda x: jnp.sum(x), strategy="fast")  # type: ignore[arg-type]


def test_complex_step_runs_dense():
    def loss(p):
        return jnp.sum(jnp.sin(p["w"] @ p["v"])) * p["b"][0]

    rng = np.random.RandomState(4)
    params = {
        "w": jnp.asarray(rng.standard_normal((9, 9))),
        "v": jnp.asarray(rng.standard_normal(9)),
        "b": jnp.ones(70),
    }
    log: list = []
    with listen_groups(log.append):
        g = fdjax.grad(loss, method="complex")(params)
    assert log == []  # no structured plan: the complex rows run dense
    np.testing.assert_allclose(
        ravel_pytree(g)[0], ravel_pytree(jax.grad(loss)(params))[0], rtol=1e-10, atol=1e-12
    )


def test_sharded_rows_two_devices():
    """Every group's rows sharded over two devices: the same values as one device."""
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", True)
        import fdjax
        from fdjax import examples
        from jax.flatten_util import ravel_pytree
        from fdjax._engine import structure
        structure.MIN_ROWS = 0
        loss, params, x, y = examples.mlp((12, 9, 5), 16)
        one = ravel_pytree(fdjax.grad(loss, devices=1, chunk_size=8)(params, x, y))[0]
        two = ravel_pytree(fdjax.grad(loss, devices=2, chunk_size=8)(params, x, y))[0]
        assert len(jax.devices()) == 2
        assert bool(jnp.all(one == two)), float(jnp.max(jnp.abs(one - two)))
        print("ok")
        """
    )
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_engine_reexports():
    assert _engine.Layout is Layout


_SWEEP = """
import sys
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import fdjax
fdjax.enable_compilation_cache(sys.argv[1])
r = np.random.default_rng(0)
p = {"w1": jnp.asarray(r.normal(size=(35, 27))), "b1": jnp.zeros(27), "w2": jnp.ones(27), "b2": jnp.zeros(())}
X, Y = jnp.asarray(r.normal(size=(64, 35))), jnp.asarray(r.normal(size=64))
loss = lambda p: jnp.mean((jnp.tanh(X @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - Y) ** 2)
jax.block_until_ready(fdjax.sweep(loss, p).estimate)
"""


def test_structured_program_is_the_same_in_every_process(tmp_path):
    """The persistent compilation cache keys a program by its text: a second process must
    build the structured plan's program exactly as the first did (its shared values once
    came in the order of a set of jaxpr variables, by id), or it compiles it again."""
    cache = tmp_path / "cache"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _SWEEP, str(cache)], check=True, timeout=300)
    rows = [f.name for f in cache.iterdir() if f.name.startswith("jit__call")]
    assert len(rows) == 1, rows


def test_escalation_groups_elements_by_leaf():
    """``host._by_leaf``: the elements grouped by leaf, each group padded to a power of two
    by repeating its first, and where each element landed."""
    from fdjax._check.host import _by_leaf

    items = np.array([9, 1, 7, 0, 3, 12], np.int32)  # leaves of sizes 4 (0-3), 5 (4-8), 6 (9-14)
    src, pos, counts = _by_leaf(items, ((2, 2), (5,), (3, 2)))
    assert counts == (4, 1, 2)
    assert items[src].tolist() == [1, 0, 3, 1, 7, 9, 12]
    np.testing.assert_array_equal(items[src][pos], items)


def test_escalation_pads_large_groups_by_at_most_an_eighth():
    """``host._bucket``: a power of two up to ``FINE_BUCKETS_ABOVE`` (few programs), above it
    at most 12.5% more rows than asked (a 1e6-parameter full check escalates ~1e5 elements
    at 40 rows each: padding to the next power of two spent 41% over its budget), in at most
    8 sizes per octave."""
    from fdjax._check.host import FINE_BUCKETS_ABOVE, _bucket, _by_leaf

    small = np.arange(1, FINE_BUCKETS_ABOVE + 1)
    got = np.array([_bucket(int(n)) for n in small])
    assert _bucket(0) == 0 and np.all(got >= small) and np.all(got < 2 * small)
    assert np.all(got & (got - 1) == 0)  # powers of two
    for lo in (FINE_BUCKETS_ABOVE, 1 << 17):
        n = np.arange(lo + 1, 2 * lo + 1)
        got = np.array([_bucket(int(m)) for m in n])
        assert np.all(got >= n) and np.all(got <= n + lo // 8) and np.unique(got).size == 8
    _, _, counts = _by_leaf(np.arange(5000), ((5000,),))
    assert counts == (5120,)


def test_large_escalation_runs_the_structured_plan(monkeypatch):
    """A float32 MLP checked in full: hundreds of elements are unresolved at the first step
    and escalated (≥ 8192 rows), through the linear plan, with the verdicts of the dense
    plan; a 3x wrong gradient still fails."""
    from fdjax._check import host

    # 3,610 parameters: the budget (the first pass's ~4N evaluations) holds 8192 rows of
    # 40 (10 steps × 4 offsets) whatever else the first pass spent
    loss, params, x, y = examples.mlp((64, 48, 10), 32, dtype=jnp.float32)
    log: list = []
    with listen_groups(log.append):
        res = fdjax.check_grad(loss, params, x, y, mode="full")
    assert res.passed and res.escalated * 40 >= host.STRUCTURED_ROWS
    assert len(log) >= 2 and "linear" in {g.strategy for g in log[-1]}
    monkeypatch.setattr(host, "STRUCTURED_ROWS", 1 << 60)  # the same escalation, dense
    log.clear()
    with listen_groups(log.append):
        dense = fdjax.check_grad(loss, params, x, y, mode="full")
    assert log == []  # the first batch's program is reused; a dense escalation has no plan
    assert dense.escalated == res.escalated
    same = np.asarray(dense.elements.status) == np.asarray(res.elements.status)
    assert same.mean() > 0.99  # float32 rows of two plans round differently

    @jax.custom_vjp  # every gradient 3x too large
    def scaled(p):
        return p

    scaled.defvjp(lambda p: (p, None), lambda _, g: (jax.tree.map(lambda a: 3 * a, g),))
    monkeypatch.undo()
    bad = fdjax.check_grad(lambda p, x, y: loss(scaled(p), x, y), params, x, y, mode="full")
    assert not bad.passed
