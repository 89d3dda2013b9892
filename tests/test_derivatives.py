"""fdjax.grad / jacobian / jvp against JAX's own autodiff, with and without jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax import examples


def _max_err(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y)))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    )


def _maybe_jit(fn, use_jit):
    return jax.jit(fn) if use_jit else fn


def quadratic():
    a = jnp.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    return (lambda x, a: 0.5 * x @ a @ x + jnp.sum(x)), jnp.array([0.1, -2.0, 3.0]), a


def nested():
    def f(p):
        w, (b, c), d = p["w"], p["t"], p["l"]
        return jnp.sum(jnp.sin(w) * b) + jnp.prod(c[0]) * jnp.cos(d[0]) + p["n"] * 1.0

    p = {
        "w": jnp.arange(4.0).reshape(2, 2) / 3,
        "t": (jnp.array(0.7), [jnp.array([1.5, -0.5])]),
        "l": [jnp.array(0.2)],
        "n": jnp.array(3),
    }
    return f, p


MODELS = {
    "quadratic": quadratic,
    "mlp": lambda: examples.mlp(sizes=(6, 8, 4), batch=16),
    "cnn": lambda: examples.cnn(channels=2, size=6, batch=4),
    "nested": nested,
}


@pytest.mark.parametrize("use_jit", [False, True])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_grad_matches_jax_grad_float64(model, use_jit):
    f, p, *args = MODELS[model]()
    g = _maybe_jit(fdjax.grad(f), use_jit)(p, *args)
    ref = jax.grad(f, allow_int=True)(p, *args)
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(ref)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref)):
        assert a.shape == b.shape and a.dtype == b.dtype
        if a.dtype != jax.dtypes.float0:
            # central: truncation ~ h²|f'''| + round-off ~ eps|f|/h, both ~ eps^(2/3) ≈ 3.7e-11
            np.testing.assert_allclose(a, b, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("method", ["forward", "backward", "central", "central4", "complex"])
def test_grad_float32_within_error_model(method):
    f, p, x, y = examples.mlp(sizes=(6, 8, 4), batch=16, dtype=jnp.float32)
    # complex params meet real data in the user's matmuls: needs standard promotion
    with jax.numpy_dtype_promotion("standard" if method == "complex" else "strict"):
        g = fdjax.grad(f, method=method)(p, x, y)
    ref = jax.grad(f)(p, x, y)
    stencil = fdjax.METHODS[method]
    eps = float(jnp.finfo(jnp.float32).eps)
    h = stencil.default_step(eps)
    fx = float(f(p, x, y))
    # Error model: round-off eps·|f|·Σ|w|/h plus truncation ~ h^p (derivatives of O(1) here),
    # plus the float32 rounding of jax.grad itself; a factor 20 of slack on the sum.
    sum_w = sum(abs(w) for w in stencil.weights) + abs(stencil.center_weight)
    tol = 20 * (eps * max(abs(fx), 1) * sum_w / h + h**stencil.accuracy + 10 * eps)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref)):
        assert a.dtype == jnp.float32
        assert float(jnp.max(jnp.abs(a - b))) <= tol


@pytest.mark.parametrize("use_jit", [False, True])
def test_jacobian_layout_matches_jacfwd(use_jit):
    def f(p, s):
        return {"y": jnp.tanh(p["a"] @ p["b"]) * s, "z": jnp.sum(p["a"] ** 2, axis=0)}

    p = {"a": jnp.arange(6.0).reshape(3, 2) / 7, "b": jnp.array([0.5, -1.0])}
    J = _maybe_jit(fdjax.jacobian(f), use_jit)(p, 2.0)
    ref = jax.jacfwd(f)(p, 2.0)
    assert jax.tree_util.tree_structure(J) == jax.tree_util.tree_structure(ref)
    assert jax.tree_util.tree_map(jnp.shape, J) == jax.tree_util.tree_map(jnp.shape, ref)
    assert _max_err(J, ref) < 1e-8


def test_jacobian_argnums_tuple_and_has_aux():
    f = lambda x, y: (jnp.stack([x * y, x + y**2]), {"aux": x})
    J, aux = fdjax.jacobian(f, argnums=(0, 1), has_aux=True)(jnp.array(2.0), jnp.array(3.0))
    assert float(aux["aux"]) == 2.0
    ref = jax.jacfwd(lambda x, y: f(x, y)[0], argnums=(0, 1))(jnp.array(2.0), jnp.array(3.0))
    assert isinstance(J, tuple) and _max_err(J, ref) < 1e-8


def test_grad_argnums_and_has_aux():
    f = lambda a, b, c: (jnp.sum(a * b) + c**2, {"v": a})
    (ga, gc), aux = fdjax.grad(f, argnums=(0, 2), has_aux=True)(jnp.ones(3), jnp.arange(3.0), jnp.array(1.5))
    np.testing.assert_allclose(ga, jnp.arange(3.0), atol=1e-9)
    assert abs(float(gc) - 3.0) < 1e-9 and jnp.all(aux["v"] == 1)


def test_int_leaf_is_float0_like_jax():
    f, p = nested()
    g = fdjax.grad(f)(p)
    assert g["n"].dtype == jax.dtypes.float0 and g["n"].shape == ()


@pytest.mark.parametrize("use_jit", [False, True])
def test_jvp_and_batched_jvp_match_jax(use_jit):
    f = lambda x, y: jnp.sin(x) * y + x**2
    primals = (jnp.array([0.3, 1.0]), jnp.array([2.0, -1.0]))
    tangents = (jnp.array([1.0, 0.5]), jnp.array([0.0, 2.0]))
    y, t = _maybe_jit(lambda p, t: fdjax.jvp(f, p, t), use_jit)(primals, tangents)
    y_ref, t_ref = jax.jvp(f, primals, tangents)
    assert _max_err(y, y_ref) == 0 and _max_err(t, t_ref) < 1e-8
    batch = (
        jnp.stack([tangents[0], jnp.ones(2), jnp.zeros(2)]),
        jnp.stack([tangents[1], jnp.zeros(2), jnp.zeros(2)]),
    )
    _, tb = _maybe_jit(lambda p, t: fdjax.batched_jvp(f, p, t), use_jit)(primals, batch)
    ref = jax.vmap(lambda a, b: jax.jvp(f, primals, (a, b))[1])(*batch)
    assert tb.shape == (3, 2) and _max_err(tb, ref) < 1e-8
    assert float(jnp.max(jnp.abs(tb[2]))) == 0.0  # the zero direction gives exactly 0


def test_inside_user_jit_and_closure_over_arrays():
    data = jnp.linspace(-1, 1, 7)

    def loss(w):  # closes over `data`
        return jnp.mean((jnp.tanh(w[0] * data + w[1]) - data) ** 2)

    @jax.jit
    def train_step(w):
        g = fdjax.grad(loss)(w)
        return w - 0.1 * g, g

    w = jnp.array([0.5, 0.1])
    w2, g = train_step(w)
    assert _max_err(g, jax.grad(loss)(w)) < 1e-9
    assert _max_err(w2, w - 0.1 * jax.grad(loss)(w)) < 1e-9


def test_no_recompilation_on_second_call():
    traces = []

    def f(x):
        traces.append(1)
        return jnp.sum(jnp.cos(x) * x)

    x = jnp.linspace(0, 1, 9)
    fdjax.grad(f)(x)
    n = len(traces)
    fdjax.grad(f)(x)  # a new grad object over the same f: cache hit
    fdjax.grad(f)(x + 1.0)  # new values, same shape: cache hit
    g = fdjax.grad(f)
    g(x), g(x * 2)
    assert len(traces) == n
    fdjax.grad(f)(jnp.linspace(0, 1, 10))  # a new shape retraces
    assert len(traces) > n


def test_step_pytree_and_taken_step():
    f = lambda p: jnp.sum(p["a"] ** 3) + jnp.sum(p["b"] ** 3)
    p = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([3.0])}
    # forward difference on x³: error = 3x·h + h², h = step·max(|x|, 1): measurable per leaf
    g = fdjax.grad(f, method="forward", step={"a": 1e-3, "b": jnp.array([1e-4])})(p)
    ha = 1e-3 * jnp.array([1.0, 2.0])
    hb = 1e-4 * 3.0
    np.testing.assert_allclose(g["a"] - 3 * p["a"] ** 2, 3 * p["a"] * ha + ha**2, rtol=1e-5)
    np.testing.assert_allclose(g["b"] - 27.0, 9.0 * hb + hb**2, rtol=1e-4)


def test_step_actually_taken_is_used():
    """At x = 1e8 a nominal step of 1e-9 relative (0.1) is not representable exactly; the
    estimate must use (x + h) - x, making the identity's derivative exact."""
    x = jnp.array([1e8 + 0.3])
    h = 1.234567e-9 * float(x[0])
    assert (float(x[0]) + h) - float(x[0]) != h  # the nominal step is not what is taken
    g = fdjax.grad(lambda v: jnp.sum(v), method="forward", step=1.234567e-9)(x)
    assert float(g[0]) == 1.0


def test_center_value_evaluated_once():
    calls = []

    def f(x):
        calls.append(x.shape)
        return jnp.sum(x**2)

    fdjax.grad(f, method="forward")(jnp.ones(5))
    # traced shapes: the output and precision trace, f(x) once, the memory estimate, the vmapped batch — no
    # per-parameter calls (a loop would trace f once per parameter).
    assert len(calls) <= 4
