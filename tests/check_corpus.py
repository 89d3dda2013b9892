"""The gradient-check corpus: plausible buggy custom rules and correct traps.

Every case builds ``(f, args)`` for a dtype. Buggy cases carry a ``ref`` builder: the same
function with a correct derivative, so that a test can measure the planted bug's relative
size ‖a_bug − a_ref‖/‖a_ref‖ (of the quantity the check compares: the gradient, the
Hessian-vector product for ``order=2``, the contracted VJP/JVP).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import fdjax.examples as ex

__all__ = ["Case", "BUGGY", "CORRECT", "by_name"]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    build: Callable  # dtype -> (f, args)
    ref: Callable | None = None  # dtype -> (f_correct, args), buggy cases only
    kind: str = "grad"  # "grad" | "vjp" | "jvp"
    order: int = 1
    nominal: float = 1e-1  # planted relative size class (buggy cases): at least half of it

    @property
    def buggy(self) -> bool:
        return self.ref is not None


def _rng(seed):
    return np.random.default_rng(seed)


def _cast(tree, dtype):
    return jax.tree_util.tree_map(
        lambda a: (
            jnp.asarray(a, dtype) if np.issubdtype(np.asarray(a).dtype, np.floating) else jnp.asarray(a)
        ),
        tree,
    )


def _mlp_data(dtype, n_in=6, hidden=8, n_out=4, batch=10, seed=0, square=False):
    r = _rng(seed)
    p = {
        "w1": r.normal(size=(n_in, hidden)) / np.sqrt(n_in),
        "b1": 0.1 * r.normal(size=hidden),
        "w2": r.normal(size=(hidden, n_out)) / np.sqrt(hidden),
        "b2": 0.1 * r.normal(size=n_out),
    }
    if square:
        p["wh"] = r.normal(size=(hidden, hidden)) / np.sqrt(hidden)
    x = r.normal(size=(batch, n_in))
    y = r.integers(0, n_out, batch)
    return _cast(p, dtype), _cast(x, dtype), jnp.asarray(y, jnp.int32)


def ce(logits, y):
    """Mean softmax cross-entropy with integer labels."""
    return ex.softmax_cross_entropy(logits, y)


def mlp(p, x, y, act=jnp.tanh, dense=jnp.matmul, loss=ce, norm=None):
    h = act(dense(x, p["w1"]) + p["b1"])
    if norm is not None:
        h = norm(h)
    if "wh" in p:
        h = act(dense(h, p["wh"]))
    return loss(dense(h, p["w2"]) + p["b2"], y)


def _plain(model):
    """build(dtype) -> (model, (params, x, y)) on the small MLP data."""

    def build(dtype, model=model):
        return model, _mlp_data(dtype)

    return build


def _plain_sq(model):
    def build(dtype, model=model):
        return model, _mlp_data(dtype, square=True)

    return build


# ------------------------------------------------------------------------------------------
# Custom rules: a correct version and a buggy version of each.


def _square(bug):
    @jax.custom_vjp
    def square(x):
        return x * x

    square.defvjp(lambda x: (x * x, x), lambda x, g: ((g * x if bug else 2 * g * x),))
    return square


def _tanh(bug):
    @jax.custom_vjp
    def tanh(x):
        return jnp.tanh(x)

    def fwd(x):
        y = jnp.tanh(x)
        return y, y

    def bwd(y, g):
        d = g * (1 - y * y)
        return (-d if bug else d,)

    tanh.defvjp(fwd, bwd)
    return tanh


def _dense(transpose=False, scale=0.0, element=None, bias_mean=False):
    @jax.custom_vjp
    def dense(h, w):
        return h @ w

    def bwd(res, g):
        h, w = res
        dw = h.T @ g
        if transpose and dw.shape[0] == dw.shape[1]:  # the shape check cannot see it
            dw = dw.T
        if scale:
            dw = dw * (1 + scale)
        if element is not None:
            dw = dw.at[element].multiply(-1.0)
        return g @ w.T, dw

    dense.defvjp(lambda h, w: (h @ w, (h, w)), bwd)
    return dense


def _ce(bug, scale=0.0):
    @jax.custom_vjp
    def softmax_ce(logits, y):
        return ce(logits, y)

    def fwd(logits, y):
        return ce(logits, y), (jax.nn.softmax(logits, axis=-1), y)

    def bwd(res, g):
        p, y = res
        onehot = jax.nn.one_hot(y, p.shape[-1], dtype=p.dtype)
        d = p if bug else p - onehot
        return g * d * (1 + scale) / p.shape[0], None

    softmax_ce.defvjp(fwd, bwd)
    return softmax_ce


def _layernorm(bug):
    eps = 1e-5

    @jax.custom_vjp
    def layernorm(x):
        mu = jnp.mean(x, -1, keepdims=True)
        return (x - mu) / jnp.sqrt(jnp.var(x, -1, keepdims=True) + eps)

    def fwd(x):
        mu = jnp.mean(x, -1, keepdims=True)
        inv = 1 / jnp.sqrt(jnp.var(x, -1, keepdims=True) + eps)
        xhat = (x - mu) * inv
        return xhat, (xhat, inv)

    def bwd(res, g):
        xhat, inv = res
        mean_g = 0.0 if bug else jnp.mean(g, -1, keepdims=True)
        return (inv * (g - mean_g - xhat * jnp.mean(g * xhat, -1, keepdims=True)),)

    layernorm.defvjp(fwd, bwd)
    return layernorm


def _conv1d(bug):
    """Valid cross-correlation y_i = Σ_j k_j x_{i+j}; the input gradient needs the flipped kernel."""

    @jax.custom_vjp
    def conv(x, k):
        return jnp.correlate(x, k, "valid")

    def bwd(res, g):
        x, k = res
        dx = jnp.correlate(g, k, "full") if bug else jnp.convolve(g, k, "full")
        return dx, jnp.correlate(x, g, "valid")

    conv.defvjp(lambda x, k: (jnp.correlate(x, k, "valid"), (x, k)), bwd)
    return conv


def _conv_build(bug):
    def build(dtype):
        conv = _conv1d(bug)
        r = _rng(3)
        p = _cast({"k1": r.normal(size=3) / 2, "k2": r.normal(size=3) / 2, "v": r.normal(size=8) / 3}, dtype)
        xs = _cast(r.normal(size=(5, 12)), dtype)

        def f(p, xs):
            def one(x):
                h = jnp.tanh(conv(x, p["k1"]))
                return jnp.tanh(conv(h, p["k2"])) @ p["v"]

            return jnp.mean(jax.vmap(one)(xs) ** 2)

        return f, (p, xs)

    return build


def _one_element_build(bug):
    def build(dtype):
        dense = _dense(element=(17, 42) if bug else None)
        r = _rng(4)
        p = _cast({"w": r.normal(size=(100, 100)) / 10, "v": r.normal(size=100) / 10}, dtype)
        x = _cast(r.normal(size=(4, 100)), dtype)

        def f(p, x):
            return jnp.mean(jnp.tanh(dense(x, p["w"])) @ p["v"]) + 0.01 * jnp.sum(p["w"] ** 2)

        return f, (p, x)

    return build


def _scaled_build(delta):
    """The logits' gradient off by a factor 1 + delta: every gradient has relative error delta."""

    def build(dtype):
        loss = _ce(False, scale=delta)
        return (lambda p, x, y: mlp(p, x, y, loss=loss)), _mlp_data(dtype)

    return build


def _sin2(bug):
    """sin with a custom_jvp whose derivative is right but whose own derivative may be wrong."""

    @jax.custom_jvp
    def cos_rule(x):
        return jnp.cos(x)

    cos_rule.defjvp(lambda p, t: (jnp.cos(p[0]), (1.0 if bug else -1.0) * jnp.sin(p[0]) * t[0]))

    @jax.custom_jvp
    def sin(x):
        return jnp.sin(x)

    sin.defjvp(lambda p, t: (jnp.sin(p[0]), cos_rule(p[0]) * t[0]))
    return sin


def _order2_build(bug):
    def build(dtype):
        sin = _sin2(bug)
        r = _rng(5)
        p = _cast({"w": r.normal(size=7), "c": r.normal(size=7)}, dtype)
        return (lambda p: jnp.sum(sin(p["w"]) * p["c"]) + jnp.sum(p["w"] ** 3) / 6), (p,)

    return build


def _softplus(bug):
    @jax.custom_jvp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    softplus.defjvp(
        lambda p, t: (jnp.logaddexp(p[0], 0.0), jax.nn.sigmoid((2.0 if bug else 1.0) * p[0]) * t[0])
    )
    return softplus


def _gelu(bug):
    def cdf(x):
        return 0.5 * (1 + jax.scipy.special.erf(x / math.sqrt(2.0)))

    @jax.custom_jvp
    def gelu(x):
        return x * cdf(x)

    def jvp(p, t):
        (x,), (dx,) = p, t
        pdf = jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        d = cdf(x) if bug else cdf(x) + x * pdf
        return gelu(x), d * dx

    gelu.defjvp(jvp)
    return gelu


def _rnn_cell(bug):
    @jax.custom_vjp
    def tanh(a):
        return jnp.tanh(a)

    def fwd(a):
        y = jnp.tanh(a)
        return y, (a if bug else y)

    def bwd(y, g):
        return (g * (1 - y * y),)

    tanh.defvjp(fwd, bwd)
    return tanh


def _rnn_build(bug=None):
    def build(dtype):
        act = jnp.tanh if bug is None else _rnn_cell(bug)
        r = _rng(6)
        p = _cast(
            {"W": r.normal(size=(5, 5)) / 2.5, "U": r.normal(size=(3, 5)) / 2, "v": r.normal(size=5)}, dtype
        )
        xs = _cast(r.normal(size=(6, 4, 3)), dtype)  # time, batch, features

        def f(p, xs):
            def step(h, x):
                h = act(h @ p["W"] + x @ p["U"])
                return h, h @ p["v"]

            _, ys = jax.lax.scan(step, jnp.zeros((4, 5), xs.dtype), xs)
            return jnp.mean(ys**2)

        return f, (p, xs)

    return build


def _lse(bug):
    @jax.custom_vjp
    def lse(z):
        m = jnp.max(z, -1, keepdims=True)
        return (m + jnp.log(jnp.sum(jnp.exp(z - m), -1, keepdims=True)))[..., 0]

    def fwd(z):
        out = lse(z)
        return out, (z, out)

    def bwd(res, g):
        z, out = res
        p = jnp.exp(z - jnp.max(z, -1, keepdims=True)) if bug else jnp.exp(z - out[..., None])
        return (g[..., None] * p,)

    lse.defvjp(fwd, bwd)
    return lse


def _lse_ce(bug):
    lse = _lse(bug)

    def loss(logits, y):
        return jnp.mean(lse(logits) - jnp.take_along_axis(logits, y[:, None], -1)[:, 0])

    return loss


def _pairprod(bug):
    """y_i = x_i·x_{i−1} (cyclic): a vector function with a custom VJP."""

    @jax.custom_vjp
    def f(x):
        return x * jnp.roll(x, 1)

    def bwd(x, g):
        d = g * jnp.roll(x, 1)
        if not bug:
            d = d + jnp.roll(g * x, -1)
        return (d,)

    f.defvjp(lambda x: (f(x), x), bwd)
    return f


def _outer_sum(bug):
    """y = x·Σx with a custom JVP: t·Σx + x·Σt."""

    @jax.custom_jvp
    def f(x):
        return x * jnp.sum(x)

    def jvp(p, t):
        (x,), (dx,) = p, t
        d = dx * jnp.sum(x)
        if not bug:
            d = d + x * jnp.sum(dx)
        return f(x), d

    f.defjvp(jvp)
    return f


def _vec_build(maker, bug, kind):
    def build(dtype):
        fn = maker(bug)
        x = _cast(_rng(7).normal(size=9), dtype)
        return (lambda x: jnp.tanh(fn(x))), (x,)

    return build


def _bias_mean(bug):
    @jax.custom_vjp
    def add_bias(h, b):
        return h + b

    def bwd(_, g):
        return g, (jnp.mean(g, 0) if bug else jnp.sum(g, 0))

    add_bias.defvjp(lambda h, b: (h + b, None), bwd)
    return add_bias


def _bias_build(bug):
    def build(dtype):
        add = _bias_mean(bug)

        def f(p, x, y):
            h = jnp.tanh(add(x @ p["w1"], p["b1"]))
            return ce(h @ p["w2"] + p["b2"], y)

        return f, _mlp_data(dtype)

    return build


def _pair(make, **kw):
    """(buggy case, reference) from a maker taking ``bug``."""
    return dict(build=make(True), ref=make(False), **kw)


def _model(bug_rule, **mlp_kw):
    """make(bug): the MLP with ``bug_rule(bug)`` in the places marked None in ``mlp_kw``."""

    def make(bug):
        rule = bug_rule(bug)
        kw = {k: (rule if v is None else v) for k, v in mlp_kw.items()}
        return _plain(lambda p, x, y: mlp(p, x, y, **kw))

    return make


def _square_model(bug):
    sq = _square(bug)
    return _plain(lambda p, x, y: mlp(p, x, y) + 0.1 * jnp.sum(sq(p["w1"])))


def _transposed_model(bug):
    dense = _dense(transpose=bug)
    return _plain_sq(lambda p, x, y: mlp(p, x, y, dense=dense))


BUGGY = [
    Case("square_missing_factor", **_pair(_square_model)),
    Case("tanh_sign_flip", **_pair(_model(_tanh, act=None))),
    Case("dense_transposed_weight_grad", **_pair(_transposed_model)),
    Case("softmax_ce_without_onehot", **_pair(_model(_ce, loss=None))),
    Case("layernorm_missing_mean_term", **_pair(_model(_layernorm, norm=None))),
    Case("conv_backward_unflipped_kernel", **_pair(_conv_build)),
    Case("one_wrong_element_of_10k_weight", **_pair(_one_element_build), nominal=1e-2),
    Case("ce_grad_scaled_1e-1", build=_scaled_build(1e-1), ref=_scaled_build(0.0), nominal=1e-1),
    Case("ce_grad_scaled_1e-2", build=_scaled_build(1e-2), ref=_scaled_build(0.0), nominal=1e-2),
    Case("ce_grad_scaled_1e-3", build=_scaled_build(1e-3), ref=_scaled_build(0.0), nominal=1e-3),
    Case("ce_grad_scaled_1e-4", build=_scaled_build(1e-4), ref=_scaled_build(0.0), nominal=1e-4),
    Case("wrong_second_derivative_only", **_pair(_order2_build), order=2),
    Case("softplus_custom_jvp_wrong", **_pair(_model(_softplus, act=None))),
    Case("gelu_custom_jvp_missing_term", **_pair(_model(_gelu, act=None))),
    Case("rnn_bptt_uses_preactivation", **_pair(_rnn_build)),
    Case("lse_vjp_unnormalised", **_pair(_model(_lse_ce, loss=None))),
    Case("bias_grad_mean_not_sum", **_pair(_bias_build)),
    Case("vjp_vector_missing_cross_term", **_pair(lambda bug: _vec_build(_pairprod, bug, "vjp")), kind="vjp"),
    Case("jvp_vector_missing_term", **_pair(lambda bug: _vec_build(_outer_sum, bug, "jvp")), kind="jvp"),
]


# ------------------------------------------------------------------------------------------
# Correct traps.


def _relu_near_zero(dtype):
    p, x, y = _mlp_data(dtype, batch=6)
    x = x.at[1].set(x[0] + jnp.asarray(1e-7, dtype) * jnp.arange(x.shape[1], dtype=dtype))
    p = dict(p, b1=-(x[0] @ p["w1"]))  # example 0: every pre-activation exactly 0
    return (lambda p, x, y: mlp(p, x, y, act=jax.nn.relu)), (p, x, y)


def _abs_max_clip(dtype):
    x = jnp.asarray([0.0, 0.3, 0.5, -0.5, 1e-9, 0.3 + 1e-9, 0.7, -2.0, 2.0], dtype)

    def f(x):
        return jnp.sum(jnp.abs(x)) + jnp.sum(jnp.maximum(x, 0.3)) + jnp.sum(jnp.clip(x, -0.5, 0.5) ** 2)

    return f, (x,)


def _cnn(dtype):
    loss, params, images, labels = ex.cnn(channels=2, size=6, batch=4, dtype=dtype)
    return loss, (params, images, labels)


def _logits50(dtype):
    p, x, y = _mlp_data(dtype)
    p = dict(p, w2=p["w2"] * 60)
    return mlp, (p, x, y)


def _param_span(dtype):
    p = jnp.asarray(np.logspace(-6, 3, 10), dtype)

    def f(p):
        return jnp.sum(jnp.log1p(p * p)) + jnp.sum(p * jnp.sin(p)) + jnp.sum(jnp.tanh(1e4 * p))

    return f, (p,)


def _loss_1e6(dtype):
    return (lambda p, x, y: 1e6 * (1 + mlp(p, x, y))), _mlp_data(dtype)


def _grads_1e10(dtype):
    return (lambda p, x, y: 1e-10 * mlp(p, x, y)), _mlp_data(dtype)


def _dead_relu(dtype):
    p, x, y = _mlp_data(dtype)
    p = dict(p, b1=p["b1"].at[::2].set(-100.0))
    return (lambda p, x, y: mlp(p, x, y, act=jax.nn.relu)), (p, x, y)


def _stop_gradient_lse(dtype):
    def loss(logits, y):
        m = jax.lax.stop_gradient(jnp.max(logits, -1, keepdims=True))
        lse = m[:, 0] + jnp.log(jnp.sum(jnp.exp(logits - m), -1))
        return jnp.mean(lse - jnp.take_along_axis(logits, y[:, None], -1)[:, 0])

    return (lambda p, x, y: mlp(p, x, y, loss=loss)), _mlp_data(dtype)


def _custom_vjp_ok(dtype):
    dense, ln, loss = _dense(), _layernorm(False), _ce(False)
    return (lambda p, x, y: mlp(p, x, y, dense=dense, norm=ln, loss=loss)), _mlp_data(dtype)


def _custom_jvp_ok(dtype):
    sp, ge = _softplus(False), _gelu(False)
    return (lambda p, x, y: mlp(p, x, y, act=lambda h: sp(h) + ge(h))), _mlp_data(dtype)


def _huber(dtype):
    x = jnp.asarray([-2.0, -1.0, -0.3, 0.0, 0.5, 1.0, 1.5], dtype)
    return (lambda x: jnp.sum(jnp.where(jnp.abs(x) <= 1, 0.5 * x * x, jnp.abs(x) - 0.5))), (x,)


def _topk_ties(dtype):
    x = jnp.asarray([3.0, 1.0, 3.0, 2.0, 2.0, -1.0, 0.5], dtype)
    return (lambda x: jnp.sum(jnp.sort(x)[-3:] * jnp.asarray([1.0, 2.0, 3.0], dtype))), (x,)


def _exp_curvature(dtype):
    x = jnp.asarray(np.linspace(-1, 1, 9), dtype)
    return (lambda x: jnp.sum(jnp.exp(4 * x)) + jnp.sum(x**4)), (x,)


def _int_leaves(dtype):
    p, x, y = _mlp_data(dtype)
    p = dict(p, power=jnp.asarray(2, jnp.int32))

    def f(p, x, y):
        return mlp(p, x, y) + 0.01 * jnp.sum(p["w1"] ** 2) * p["power"].astype(p["w1"].dtype)

    return f, (p, x, y)


def _vjp_ok(dtype):
    return _vec_build(_pairprod, False, "vjp")(dtype)


def _jvp_ok(dtype):
    return _vec_build(_outer_sum, False, "jvp")(dtype)


CORRECT = [
    Case("relu_mlp_preactivations_at_zero", build=_relu_near_zero),
    Case("abs_max_clip_at_kinks", build=_abs_max_clip),
    Case("cnn_maxpool", build=_cnn),
    Case("softmax_ce_logits_50", build=_logits50),
    Case("params_1e-6_to_1e3", build=_param_span),
    Case("loss_1e6", build=_loss_1e6),
    Case("gradients_1e-10", build=_grads_1e10),
    Case("dead_relus", build=_dead_relu),
    Case("scan_rnn", build=_rnn_build(None)),
    Case("stop_gradient_stable_lse", build=_stop_gradient_lse),
    Case("custom_vjp_rules_correct", build=_custom_vjp_ok),
    Case("custom_jvp_rules_correct", build=_custom_jvp_ok),
    Case("huber_piecewise", build=_huber),
    Case("sort_top3_with_ties", build=_topk_ties),
    Case("exp_curvature", build=_exp_curvature),
    Case("integer_leaf_held_fixed", build=_int_leaves),
    Case("tanh_mlp_second_order", build=_plain(mlp), order=2),
    Case("vjp_vector_function", build=_vjp_ok, kind="vjp"),
    Case("jvp_custom_rule_vector_function", build=_jvp_ok, kind="jvp"),
]


def by_name(name: str) -> Case:
    for c in BUGGY + CORRECT:
        if c.name == name:
            return c
    raise KeyError(name)
