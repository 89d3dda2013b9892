"""The verdict corpus of issue 11: gradient-check cases for every class of wrong verdict.

Each case builds ``(f, args)`` for a dtype (the differentiated parameters are ``args[0]``
for ``check_grad``; every primal for ``check_vjp`` / ``check_jvp``) and says what a
trustworthy checker must answer, by class:

1. 16-bit floats (bfloat16, float16, mixed {bf16, f32} trees);
2. a leaf whose gradient is ~1e-10 while the rest are O(1);
3. parameters of very different scales in one tree, and functions where nothing can be checked;
4. bugs near the float32 floor (a bug that exists only in float32 code paths);
5. domain boundaries (a positive parameter of ~1e-6 inside a Cholesky, a log, a sqrt);
6. float32 losses that average large cancelling terms;
7. batched evaluation that is not faithful (XLA:CPU ``vmap`` in float32);
8. float32 ReLU nets (equinox MLPs and a max-pool CNN), several init and check keys;
9. nondeterministic f (host noise, dropout keyed by a host counter);
10. large problems (bench only): the default mode must not run O(N²) silently.

Class 0 holds regression cases taken from ``tests/check_corpus.py``.

The expectation (``VerdictCase.expected(dtype, mode)``):

- ``"fail"``: a bug that finite differences can resolve in that dtype: FAIL in every mode;
- ``"not pass"``: a bug beyond FD resolution in that dtype, or a correct function where
  nothing can be verified (f constant in float32 noise, every element a kink): never PASS;
- ``"not fail"``: a correct gradient: PASS, or INCONCLUSIVE with a reason; never FAIL;
- ``"inconclusive: nondeterministic"``: f is not a function; the gradient is not blamed;
- ``"any"``: a bug in a mode that cannot resolve it (``VerdictCase.modes``).

``outcome(result)`` reads a check's three-way outcome (``"pass"``, ``"fail"`` or
``"inconclusive: <reason>"``) and ``agrees(expected, got)`` judges it; the test
(``tests/test_verdicts.py``) and the benchmark (``bench/verdicts.py``) share both.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import check_corpus

DTYPES = {
    "float64": jnp.float64,
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
}
LOW = ("bfloat16", "float16")
BOTH = ("float64", "float32")

CLASSES = {
    0: "regression (tests/check_corpus.py)",
    1: "16-bit floats",
    2: "a leaf with a ~1e-10 gradient",
    3: "very different scales; nothing checkable",
    4: "bugs near the float32 floor",
    5: "domain boundaries",
    6: "large cancelling terms",
    7: "unfaithful batched evaluation",
    8: "float32 ReLU nets",
    9: "nondeterministic f",
    10: "large problems: the default mode",
}


# ------------------------------------------------------------------------------------------
# The case and the outcome


@dataclasses.dataclass(frozen=True)
class VerdictCase:
    """One gradient-check case of the corpus.

    Attributes:
        name: unique, lower case.
        cls: the class of issue 11 (1–10), 0 for a regression case from check_corpus.
        build: dtype -> (f, args); the dtype is a jnp dtype (``DTYPES``).
        dtypes: the dtypes (``DTYPES`` keys) the case applies to.
        buggy: the derivative under test is wrong (a planted bug).
        kind: ``"grad"`` (check_grad), ``"vjp"`` or ``"jvp"``.
        resolvable: buggy cases: the dtypes where finite differences can resolve the bug (it
            must FAIL there, and must not PASS elsewhere); None: every dtype.
        undecidable: a correct function where nothing can be verified: must not PASS.
        reason: the expected INCONCLUSIVE reason label (class 9: ``"nondeterministic"``).
        key: the check's key (random directions, subset samples).
        modes: buggy cases: the modes that must resolve the bug (an element's bug far below
            the directions' resolution: the element modes); in the others any outcome is
            accepted. None: every mode.
        tested: the dtypes ``tests/test_verdicts.py`` runs (in every mode); the benchmark runs
            every dtype. A sample: XLA compilation dominates, and the test has ~60 s.
        bench_only: too large or slow for the test; the benchmark runs it.
        note: what the case is, in a few words.
    """

    name: str
    cls: int
    build: Callable
    dtypes: tuple[str, ...]
    buggy: bool
    kind: str = "grad"
    resolvable: tuple[str, ...] | None = None
    undecidable: bool = False
    reason: str | None = None
    key: int = 0
    modes: tuple[str, ...] | None = None
    tested: tuple[str, ...] = ()
    bench_only: bool = False
    note: str = ""

    def expected(self, dtype: str, mode: str = "default") -> str:
        """``"fail"``, ``"not pass"``, ``"not fail"``, ``"inconclusive: <reason>"`` or ``"any"``
        (``mode`` is not one of ``modes``)."""
        if self.reason is not None:
            return f"inconclusive: {self.reason}"
        if self.buggy and self.modes is not None and mode not in self.modes:
            return "any"
        if self.buggy:
            return "fail" if self.resolvable is None or dtype in self.resolvable else "not pass"
        return "not pass" if self.undecidable else "not fail"


def has_outcomes(result) -> bool:
    """The result carries the three-way outcome (``status`` and ``reason``) of issue 11."""
    return hasattr(result, "status") and hasattr(result, "reason")


def outcome(result) -> str:
    """``"pass"``, ``"fail"`` or ``"inconclusive: <reason label>"`` of a ``GradCheck``.

    Uses ``result.status`` / ``result.reason`` (``fdjax.CheckStatus`` / ``fdjax.Reason``
    codes) when the result has them; otherwise FAIL when ``not result.passed``, else PASS.
    """
    if has_outcomes(result):
        import fdjax

        status = fdjax.CheckStatus(int(np.asarray(result.status)))
        if status == fdjax.CheckStatus.INCONCLUSIVE:
            return f"inconclusive: {fdjax.Reason(int(np.asarray(result.reason))).label}"
        return status.label
    return "pass" if bool(np.asarray(result.passed)) else "fail"


def agrees(expected: str, got: str) -> bool:
    """Whether the outcome ``got`` meets the expectation ``expected`` (see ``expected``)."""
    if expected == "any":
        return True
    if expected == "fail":
        return got == "fail"
    if expected == "not fail":
        return got != "fail"
    if expected == "not pass":
        return got != "pass"
    return got == expected


def n_params(case: VerdictCase, dtype: str) -> int:
    """Number of differentiated scalars of the case in ``dtype``."""
    _, args = case.build(DTYPES[dtype])
    tree = args[0] if case.kind == "grad" else args
    return sum(
        int(np.size(a))
        for a in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.asarray(a).dtype, jnp.inexact)
    )


# ------------------------------------------------------------------------------------------
# Helpers


def _rng(seed):
    return np.random.default_rng(seed)


def _cast(tree, dtype):
    """Floating leaves of ``tree`` cast to ``dtype``; the others as they are."""

    def one(a):
        a = np.asarray(a) if not isinstance(a, jax.Array) else a
        return jnp.asarray(a, dtype) if jnp.issubdtype(a.dtype, jnp.floating) else jnp.asarray(a)

    return jax.tree_util.tree_map(one, tree)


def _like(a, ref):
    """``a`` in the dtype of ``ref`` (data follow the parameters: the checker may cast them)."""
    return a.astype(jnp.result_type(ref))


def _ce(logits, y):
    """Mean softmax cross-entropy with integer labels."""
    lse = jax.nn.logsumexp(logits, axis=-1)
    return jnp.mean(lse - jnp.take_along_axis(logits, y[:, None], -1)[:, 0])


def _scaled_vjp(fn, factor=1.0, sign=1.0, when=None):
    """``fn`` (elementwise) with a custom VJP: the derivative times ``sign * factor``.

    ``when(dtype) -> bool`` limits the bug to some dtypes (the others get the true derivative).
    """

    @jax.custom_vjp
    def g(x):
        return fn(x)

    def fwd(x):
        return fn(x), x

    def bwd(x, ct):
        d = jax.grad(lambda v: jnp.sum(fn(v)))(x) * ct
        if when is None or when(x.dtype):
            d = d * (sign * factor)
        return (d,)

    g.defvjp(fwd, bwd)
    return g


def _dense(scale=1.0, transpose=False, only=None):
    """``h @ w`` with a custom VJP; ``dw`` scaled by ``scale`` or transposed (when ``only(dtype)``)."""

    @jax.custom_vjp
    def dense(h, w):
        return h @ w

    def bwd(res, g):
        h, w = res
        dw = h.T @ g
        if only is None or only(w.dtype):
            if transpose and dw.shape[0] == dw.shape[1]:
                dw = dw.T
            dw = dw * scale
        return g @ w.T, dw

    dense.defvjp(lambda h, w: (h @ w, (h, w)), bwd)
    return dense


def _tanh_mlp_data(dtype, n_in=6, hidden=8, n_out=4, batch=10, seed=0):
    r = _rng(seed)
    p = {
        "w1": r.normal(size=(n_in, hidden)) / np.sqrt(n_in),
        "b1": 0.1 * r.normal(size=hidden),
        "w2": r.normal(size=(hidden, n_out)) / np.sqrt(hidden),
        "b2": 0.1 * r.normal(size=n_out),
    }
    x = r.normal(size=(batch, n_in))
    y = r.integers(0, n_out, batch)
    return _cast(p, dtype), _cast(x, dtype), jnp.asarray(y, jnp.int32)


def _tanh_mlp(dense=jnp.matmul, act=jnp.tanh):
    def f(p, x, y):
        x = _like(x, p["w1"])
        h = act(dense(x, p["w1"]) + p["b1"])
        return _ce(dense(h, p["w2"]) + p["b2"], y)

    return f


# ------------------------------------------------------------------------------------------
# Class 1: 16-bit floats


def _lowp_sin(bug, n=8, seed=1):
    def build(dtype):
        sin = _scaled_vjp(jnp.sin, factor=2.0 if bug else 1.0)
        r = _rng(seed)
        p = _cast({"w": r.uniform(-1.5, 1.5, size=n)}, dtype)
        c = _cast(r.normal(size=n) / np.sqrt(n), dtype)

        def f(p, c):
            return jnp.sum(sin(p["w"]) * _like(c, p["w"])) + 0.7

        return f, (p, c)

    return build


def _lowp_mlp(scale, hidden=8, batch=10, seed=0):
    def build(dtype):
        dense = _dense(scale=scale)
        return _tanh_mlp(dense=dense), _tanh_mlp_data(dtype, hidden=hidden, batch=batch, seed=seed)

    return build


def _lowp_tanh_sign(bug):
    def build(dtype):
        act = _scaled_vjp(jnp.tanh, sign=-1.0 if bug else 1.0)
        return _tanh_mlp(act=act), _tanh_mlp_data(dtype, hidden=5, batch=12, seed=2)

    return build


def _mixed_tree(bug, n_in=16, hidden=8, seed=3):
    """{w: 16-bit, b and v: float32}; f computes in float32 (explicit casts)."""

    def build(dtype):
        r = _rng(seed)
        tanh = _scaled_vjp(jnp.tanh, factor=2.0 if bug else 1.0)
        p = {
            "w": jnp.asarray(r.normal(size=(n_in, hidden)) / np.sqrt(n_in), dtype),
            "b": jnp.asarray(0.1 * r.normal(size=hidden), jnp.float32),
            "v": jnp.asarray(r.normal(size=hidden) / np.sqrt(hidden), jnp.float32),
        }
        x = jnp.asarray(r.normal(size=(20, n_in)), jnp.float32)
        t = jnp.asarray(r.normal(size=20), jnp.float32)

        def f(p, x, t):
            w = p["w"].astype(jnp.float32)
            h = tanh(x @ w + p["b"].astype(jnp.float32))
            return jnp.mean((h @ p["v"].astype(jnp.float32) - t) ** 2)

        return f, (p, x, t)

    return build


def _bf16_activations(bug):
    """Mixed-precision training as people write it: matmuls and activations in bfloat16,
    whatever the parameters' dtype, the loss in float32. Checking in float32 cannot remove
    the bfloat16 rounding inside f: a 2× bug of a ~0.05 gradient under ~0.03 noise."""

    def build(dtype):
        dense = _dense(scale=2.0 if bug else 1.0)
        p, x, y = _tanh_mlp_data(dtype, hidden=8, batch=10, seed=4)

        def f(p, x, y):
            b = jnp.bfloat16
            h = jnp.tanh(dense(x.astype(b), p["w1"].astype(b)) + p["b1"].astype(b))
            logits = dense(h, p["w2"].astype(b)) + p["b2"].astype(b)
            return _ce(logits.astype(jnp.float32), y)

        return f, (p, x, y)

    return build


# ------------------------------------------------------------------------------------------
# Class 2: a leaf whose gradient is ~1e-10


def _tiny_leaf(bug, n_big=20, n_tiny=5, seed=5, scale=1e-10):
    def build(dtype):
        r = _rng(seed)
        tiny = _scaled_vjp(jnp.sin, sign=-1.0 if bug else 1.0)
        p = _cast({"w": r.uniform(-1, 1, size=n_big), "e": r.uniform(-1, 1, size=n_tiny)}, dtype)
        c = _cast(r.normal(size=n_big), dtype)

        def f(p, c):
            return jnp.sum(jnp.sin(p["w"]) * _like(c, p["w"])) + scale * jnp.sum(tiny(p["e"]))

        return f, (p, c)

    return build


def _tiny_head(bug, seed=6):
    """An MLP plus an auxiliary head whose loss weight is 1e-10 (e.g. a disabled term)."""

    def build(dtype):
        tanh = _scaled_vjp(jnp.tanh, sign=-1.0 if bug else 1.0)
        p, x, y = _tanh_mlp_data(dtype, hidden=12, batch=16, seed=seed)
        p = dict(p, aux=_cast(_rng(seed + 1).normal(size=(6, 40)) / 3, dtype))
        base = _tanh_mlp()

        def f(p, x, y):
            aux = jnp.mean(tanh(_like(x, p["aux"]) @ p["aux"]) ** 2)
            return base(p, x, y) + 1e-10 * aux

        return f, (p, x, y)

    return build


# ------------------------------------------------------------------------------------------
# Class 3: very different scales; nothing checkable


def _scales(bug, small=(4e-8, 6e-8, 3e-8), big=(2e4, 1.5e4, 3e4)):
    """A tree with parameters of ~4e-8 next to ~2e4; the small ones matter (f ~ sin(1e7·s))."""

    def build(dtype):
        sin = _scaled_vjp(jnp.sin, factor=2.0 if bug else 1.0)
        p = _cast({"small": np.asarray(small), "big": np.asarray(big)}, dtype)

        def f(p):
            return jnp.sum(sin(1e7 * p["small"])) + jnp.sum(jnp.cos(1e-4 * p["big"]))

        return f, (p,)

    return build


def _scales_regression(bug, n=40, seed=7):
    """Least squares with features in large units (coefficients ~1e-7) and an intercept ~2e4."""

    def build(dtype):
        r = _rng(seed)
        dense = _dense(scale=2.0 if bug else 1.0)
        coef = r.uniform(1, 5, size=(4, 1)) * 1e-7
        feats = r.uniform(0.5, 1.5, size=(n, 4)) * 1e6
        y = feats @ coef + 2e4 + 0.05 * r.normal(size=(n, 1))
        p = _cast({"coef": coef * (1 + 0.2 * r.normal(size=(4, 1))), "intercept": np.asarray([2e4])}, dtype)
        data = _cast({"x": feats, "y": y - 2e4}, dtype)

        def f(p, d):
            pred = dense(_like(d["x"], p["coef"]), p["coef"]) + (p["intercept"] - 2e4)
            return jnp.mean((pred - _like(d["y"], p["coef"])) ** 2)

        return f, (p, data)

    return build


def _constant_in_noise(bug, n=10, seed=8):
    """f = 1 + 1e-12·Σx²: in float32, f(x) is exactly 1 at every step FD can take."""

    def build(dtype):
        sq = _scaled_vjp(jnp.square, factor=2.0 if bug else 1.0)
        x = _cast(_rng(seed).uniform(-1, 1, size=n), dtype)
        return (lambda x: 1.0 + 1e-12 * jnp.sum(sq(x))), (x,)

    return build


def _all_kinks(dtype):
    """Every element at a kink (|x| and relu at 0, max at a tie): only subgradients exist."""
    x = jnp.zeros(6, dtype)
    return (lambda x: jnp.sum(jnp.abs(x)) + jnp.sum(jax.nn.relu(x)) + jnp.max(x)), (x,)


# ------------------------------------------------------------------------------------------
# Class 4: bugs near the float32 floor (the bug exists only in float32 code paths)


def _is_f32(dtype):
    return jnp.dtype(dtype) == jnp.float32


def _cubic_offset(bug_kind, n=9, seed=9, offset=200.0):
    """f = offset + Σ a_i x_i³/3 (a ~ 3, x ~ 1): gradient ~3 per element, norm ~9; the large
    offset puts the float32 round-off at the default step above a 3e-2 bug, a better step
    resolves it. ``bug_kind``: None (correct), "element" (+3e-2 on one element), "term"
    (the 0.015·Σx² regulariser's gradient left out)."""

    def build(dtype):
        r = _rng(seed)
        a = r.uniform(2.5, 3.5, size=n)
        x = _cast(r.uniform(0.8, 1.2, size=n), dtype)
        a = _cast(a, dtype)

        @jax.custom_vjp
        def poly(x):
            return jnp.sum(a * x**3) / 3 + 0.015 * jnp.sum(x * x)

        def bwd(x, g):
            d = a * x * x + 0.03 * x
            if bug_kind is not None and _is_f32(x.dtype):
                if bug_kind == "element":
                    d = d.at[4].add(3e-2)
                else:
                    d = a * x * x  # the float32 fast path forgets the regulariser
            return (g * d,)

        poly.defvjp(lambda x: (poly(x), x), bwd)
        return (lambda x: offset + poly(x)), (x,)

    return build


def _loss_in_float32(factor, seed=21, n_in=8, hidden=16, n_out=3, batch=24):
    """Float64 parameters of a model that computes in float32 (the parameters cast at entry,
    as a float32 model fed from float64 code does): f has float32 precision whatever x's
    dtype, so the step must follow float32's eps. The tanh's rule is scaled by ``factor``."""

    def build(dtype):
        p, x, y = _tanh_mlp_data(dtype, n_in=n_in, hidden=hidden, n_out=n_out, batch=batch, seed=seed)
        act = _scaled_vjp(jnp.tanh, factor=factor)
        mlp = _tanh_mlp(act=act)

        def f(p, x, y):
            return mlp(jax.tree.map(lambda a: a.astype(jnp.float32), p), x.astype(jnp.float32), y)

        return f, (p, x, y)

    return build


def _small_element(bug, leaf="b", at=(3,), factor=1.1, seed=4, n_in=10, n_out=7, batch=30):
    """3·mean(tanh(x W + b)²), f ~ 1.3: the element ``leaf[at]`` has a gradient of ~2e-3 (in
    float32 its error-model tolerance at the default step, ~1.5e-4, is about its bug); the
    bug scales that element's rule by ``factor``. A step sweep resolves it (~5e-6); a random
    direction, where it is ~4e-4 of the gradient, cannot."""

    def build(dtype):
        r = _rng(seed)
        p = {"W": _cast(r.normal(size=(n_in, n_out)) / 3, dtype), "b": _cast(r.normal(size=n_out) / 3, dtype)}
        x = _cast(r.normal(size=(batch, n_in)), dtype)

        @jax.custom_vjp
        def ident(v):
            return v

        ident.defvjp(lambda v: (v, None), lambda _, g: ((g.at[at].multiply(factor) if bug else g),))

        def f(q):
            w, b = (ident(q[k]) if k == leaf else q[k] for k in ("W", "b"))
            return 3 * jnp.mean(jnp.tanh(x @ w + b) ** 2)

        return f, (p,)

    return build


def _smallest_bias(factor, seed):
    """``_small_element`` with the bias element of the smallest gradient above 1e-3 (found
    when the case is built) off by ``factor``."""

    def build(dtype):
        f, (p,) = _small_element(False, seed=seed)(dtype)
        g = np.abs(np.asarray(jax.grad(f)(p)["b"], np.float64))
        at = int(np.flatnonzero(g > 1e-3)[np.argmin(g[g > 1e-3])])
        return _small_element(True, at=(at,), factor=factor, seed=seed)(dtype)

    return build


def _small_element_variants(seeds, factors) -> list[VerdictCase]:
    """Bench-only variants of ``_small_element`` in float32 (a class, not one case)."""
    return [
        VerdictCase(
            f"f32_floor_small_element_s{seed}_{round(100 * (factor - 1))}pct",
            4,
            _smallest_bias(factor, seed),
            ("float32",),
            True,
            modes=ELEMENT_MODES,
            bench_only=True,
            note=f"the smallest bias gradient above 1e-3, its rule {round(100 * (factor - 1))}% off",
        )
        for seed in seeds
        for factor in factors
    ]


def _gaussian_nll(bug, n_obs=64, n_feat=9, seed=10):
    """Gaussian NLL of a linear model (Σ over observations, its log 2π constant and an offset
    kept: f ~ 160, gradient ~ 10); the float32 path of the custom VJP scales dw by 1.003
    (up to ~5e-2 element-wise, 3e-3 of the gradient norm)."""

    def build(dtype):
        r = _rng(seed)
        X = r.normal(size=(n_obs, n_feat))
        w_true = r.normal(size=n_feat)
        y = X @ w_true + 0.3 * r.normal(size=n_obs)
        w = _cast(w_true + 0.2 * r.normal(size=n_feat), dtype)

        @jax.custom_vjp
        def predict(w, X):
            return X @ w

        def bwd(res, g):
            w, X = res
            dw = X.T @ g
            if bug and _is_f32(w.dtype):
                dw = dw * 1.003
            return dw, g[:, None] * w[None, :]

        predict.defvjp(lambda w, X: (X @ w, (w, X)), bwd)
        data = _cast({"X": X, "y": y}, dtype)

        def f(w, d):
            res = predict(w, _like(d["X"], w)) - _like(d["y"], w)
            return jnp.sum(0.5 * math.log(2 * math.pi) + 0.5 * res * res) + 100.0

        return f, (w, data)

    return build


# ------------------------------------------------------------------------------------------
# Class 5: domain boundaries


def _gp(n=8, seed=11, noise=1e-6, close=True):
    """GP negative log marginal likelihood; the noise variance (a raw positive parameter of
    ~1e-6) is added to a nearly singular RBF kernel before a Cholesky: at noise − 2h the
    matrix is not positive definite and the Cholesky returns NaN."""

    def build(dtype):
        r = _rng(seed)
        xs = np.sort(r.uniform(0, 0.3 if close else 3.0, size=n))
        ys = np.sin(3 * xs) + 0.01 * r.normal(size=n)
        p = _cast({"log_ls": np.asarray(0.0), "log_amp": np.asarray(0.1), "noise": np.asarray(noise)}, dtype)
        data = _cast({"x": xs, "y": ys}, dtype)

        def f(p, d):
            x, y = _like(d["x"], p["noise"]), _like(d["y"], p["noise"])
            ls, amp = jnp.exp(p["log_ls"]), jnp.exp(p["log_amp"])
            k = amp * jnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / ls**2)
            k = k + p["noise"] * jnp.eye(n, dtype=k.dtype)
            chol = jnp.linalg.cholesky(k)
            alpha = jax.scipy.linalg.cho_solve((chol, True), y)
            return 0.5 * y @ alpha + jnp.sum(jnp.log(jnp.diag(chol)))

        return f, (p, data)

    return build


def _log_variance(n=5, seed=12, var=1e-6):
    """Σ ½log v + r²/(2v) with variances ~1e-6 and residuals ~1e-3, next to O(1) weights."""

    def build(dtype):
        r = _rng(seed)
        p = _cast({"var": var * r.uniform(0.5, 2.0, size=n), "w": r.normal(size=4)}, dtype)
        res = _cast(1e-3 * r.normal(size=n), dtype)

        def f(p, res):
            v = p["var"]
            return jnp.sum(0.5 * jnp.log(v) + _like(res, v) ** 2 / (2 * v)) * 1e-1 + jnp.sum(jnp.tanh(p["w"]))

        return f, (p, res)

    return build


def _sqrt_jitter(n=6, seed=13):
    """A standard deviation parametrised as sqrt(jitter) with jitter ~1e-6."""

    def build(dtype):
        r = _rng(seed)
        p = _cast({"jitter": 1e-6 * r.uniform(0.5, 2.0, size=n), "mu": r.normal(size=n)}, dtype)

        def f(p):
            sd = jnp.sqrt(p["jitter"])
            return jnp.sum(1e3 * sd + (p["mu"] - 0.5) ** 2)

        return f, (p,)

    return build


# ------------------------------------------------------------------------------------------
# Class 6: large cancelling terms in float32


def _ce_logits_90(batch=64, n_in=16, n_out=10, seed=14, wrong=0.1):
    """Linear softmax classifier with logits ~ ±90; labels mostly the argmax (mean CE ~10)."""

    def build(dtype):
        r = _rng(seed)
        w = r.normal(size=(n_in, n_out)) * 90 / np.sqrt(n_in)
        x = r.normal(size=(batch, n_in))
        y = np.argmax(x @ w, -1)
        flip = r.uniform(size=batch) < wrong
        y = np.where(flip, r.integers(0, n_out, batch), y)
        p = _cast({"w": w, "b": np.zeros(n_out)}, dtype)

        def f(p, x, y):
            return _ce(_like(x, p["w"]) @ p["w"] + p["b"], y)

        return f, (p, _cast(x, dtype), jnp.asarray(y, jnp.int32))

    return build


def _cancelling_means(n=32, m=500, seed=15):
    """mean(a) − mean(b) with terms ~1e3 that cancel to ~1."""

    def build(dtype):
        r = _rng(seed)
        p = _cast({"u": r.normal(size=n) * 0.5}, dtype)
        x = _cast(r.normal(size=(m, n)), dtype)

        def f(p, x):
            z = _like(x, p["u"]) @ p["u"]
            return jnp.mean(1e3 + z + 0.1 * z**2) - jnp.mean(1e3 + 0.5 * z)

        return f, (p, x)

    return build


def _feasible_penalty(n=1000, seed=31, barrier=None):
    """100·(Σx − 1)² at a feasible x (Σx = 1 up to rounding): f = 0, ∇f = 0, but Σx rounds
    by ~eps at x ± h, and the FD values are those residues times 100 (the jitter test). With
    ``barrier``, plus 1e-3·Σ log x whose custom_vjp gradient is ``barrier`` times right."""

    def build(dtype):
        r = _rng(seed)
        x = r.random(n) + 0.1

        @jax.custom_vjp
        def log_barrier(v):
            return 1e-3 * jnp.sum(jnp.log(v))

        log_barrier.defvjp(lambda v: (log_barrier(v), v), lambda v, g: (barrier * g * 1e-3 / v,))

        def f(v):
            pen = 100.0 * (jnp.sum(v) - 1.0) ** 2
            return pen if barrier is None else pen + log_barrier(v)

        return f, (_cast(x / x.sum(), dtype),)

    return build


# ------------------------------------------------------------------------------------------
# Class 7: unfaithful batched evaluation


def _temperature(
    rows=2000, classes=10, seed=0, scale=30.0, t=1.7, elementwise=False, per_class=False, bug=1.0
):
    """t ↦ mean(max(L/t, −1) − Σ onehot·(L/t)): L a fixed rows×classes array. On XLA:CPU in
    float32, ``jit(vmap(f))`` over ≥ 23 distinct t is off by ~2e-5 relative (hundreds of
    ulps) while unbatched calls agree with float64."""

    def build(dtype):
        r = _rng(seed)
        L = _cast(r.normal(size=(rows, classes)) * scale, dtype)
        onehot = _cast(np.eye(classes)[r.integers(0, classes, rows)], dtype)
        temp = _cast(np.full(classes, t) if per_class else np.asarray(t), dtype)

        def f(t, L, onehot):
            z = _like(L, t) / t
            if elementwise:
                first = jnp.sum(jnp.maximum(z, -1.0), -1)
            else:
                first = jnp.max(z, -1)
            return jnp.mean(first - jnp.sum(_like(onehot, t) * z, -1))

        if bug == 1.0:
            return f, (temp, L, onehot)
        scaled = _scaled_vjp(lambda t: f(t, L, onehot), factor=bug)
        return (lambda t, L, onehot: scaled(t)), (temp, L, onehot)

    return build


def _interp_knots(knots=4000, n=6, seed=26, bug=1.0):
    """Σ_j interp(a_j·p_j) over a piecewise-linear table of ``knots`` random knots on [0, 10]
    (a random walk of slopes): a kink every ~2.5e-3, far denser than any float32 step
    (relative 5e-3) that resolves f. ``bug``: a custom_vjp that scales the gradient."""

    def build(dtype):
        r = _rng(seed)
        xp = np.sort(r.uniform(0.0, 10.0, knots))
        fp = np.cumsum(r.normal(size=knots)) * 0.01
        scale = r.uniform(0.5, 1.5, n)
        p0 = _cast(r.uniform(2.0, 4.0, n), dtype)

        def f(p):
            return jnp.sum(jnp.interp(p * _like(scale, p), _like(xp, p), _like(fp, p)) ** 2)

        return (f if bug == 1.0 else _scaled_vjp(f, factor=bug)), (p0,)

    return build


# ------------------------------------------------------------------------------------------
# Class 8: float32 ReLU nets (equinox)


def _eqx_mlp(in_size=16, out_size=10, width=48, depth=2, init_key=0, batch=32, data_seed=16):
    def build(dtype):
        import equinox as eqx

        model = eqx.nn.MLP(
            in_size, out_size, width, depth, activation=jax.nn.relu, key=jax.random.key(init_key)
        )
        params, static = eqx.partition(model, eqx.is_inexact_array)
        params = _cast(params, dtype)
        r = _rng(data_seed + init_key)
        x = _cast(r.normal(size=(batch, in_size)), dtype)
        y = jnp.asarray(r.integers(0, out_size, batch), jnp.int32)

        def f(params, x, y):
            m = eqx.combine(params, static)
            leaf = jax.tree_util.tree_leaves(params)[0]
            return _ce(jax.vmap(m)(_like(x, leaf)), y)

        return f, (params, x, y)

    return build


def _eqx_cnn(init_key=0, batch=8, size=8, channels=4, data_seed=17):
    """Conv(3×3, ReLU) → MaxPool(2) → Linear, on size×size single-channel images."""

    def build(dtype):
        import equinox as eqx

        k1, k2 = jax.random.split(jax.random.key(init_key))
        conv = eqx.nn.Conv2d(1, channels, 3, padding=1, key=k1)
        pool = eqx.nn.MaxPool2d(2, 2)
        half = size // 2
        lin = eqx.nn.Linear(channels * half * half, 10, key=k2)
        model = (conv, pool, lin)
        params, static = eqx.partition(model, eqx.is_inexact_array)
        params = _cast(params, dtype)
        r = _rng(data_seed + init_key)
        x = _cast(r.normal(size=(batch, 1, size, size)), dtype)
        y = jnp.asarray(r.integers(0, 10, batch), jnp.int32)

        def f(params, x, y):
            conv, pool, lin = eqx.combine(params, static)
            leaf = jax.tree_util.tree_leaves(params)[0]

            def one(img):
                return lin(pool(jax.nn.relu(conv(img))).reshape(-1))

            return _ce(jax.vmap(one)(_like(x, leaf)), y)

        return f, (params, x, y)

    return build


# ------------------------------------------------------------------------------------------
# Class 9: nondeterministic f


def _host(fn, shape, operand):
    """``jax.pure_callback(fn, shape, operand)``, called once per row under ``vmap``, with a
    zero derivative (callbacks have no JVP): a value drawn on the host at every call."""

    @jax.custom_jvp
    def call(operand):
        return jax.pure_callback(fn, shape, operand, vmap_method="sequential")

    @call.defjvp
    def _(primals, tangents):
        out = call(*primals)
        if jnp.issubdtype(shape.dtype, jnp.inexact):
            return out, jnp.zeros(shape.shape, shape.dtype)
        return out, np.zeros(shape.shape, jax.dtypes.float0)

    return call(operand)


def _host_noise(sigma=1e-3, n=12, seed=18):
    """f + host noise of size sigma from numpy (a fresh draw at every call and every row)."""

    def build(dtype):
        gen = np.random.default_rng(seed)
        x = _cast(_rng(seed).uniform(-1, 1, size=n), dtype)

        def noise(s):
            return np.asarray(sigma * gen.normal(), np.asarray(s).dtype)

        def f(x):
            s = jnp.sum(x)
            e = _host(noise, jax.ShapeDtypeStruct((), s.dtype), s)
            return jnp.sum(jnp.sin(x)) + e

        return f, (x,)

    return build


def _host_dropout(rate=0.1, seed=19):
    """A tanh MLP with dropout whose key comes from a host counter (one key per call)."""

    def build(dtype):
        counter = itertools.count()

        def next_seed(s):
            return np.asarray(next(counter), np.uint32)

        p, x, y = _tanh_mlp_data(dtype, hidden=16, batch=12, seed=seed)

        def f(p, x, y):
            x = _like(x, p["w1"])
            h = jnp.tanh(x @ p["w1"] + p["b1"])
            s = _host(next_seed, jax.ShapeDtypeStruct((), jnp.uint32), jnp.sum(h))
            keep = jax.random.bernoulli(jax.random.key(s), 1 - rate, h.shape)
            h = jnp.where(keep, h / (1 - rate), jnp.zeros_like(h))
            return _ce(h @ p["w2"] + p["b2"], y)

        return f, (p, x, y)

    return build


# ------------------------------------------------------------------------------------------
# Class 10 (bench only): large problems


def _tanh_mlp_large(n_in=64, hidden=256, n_out=10, batch=64, seed=20):
    """A two-hidden-layer tanh MLP: n_in·h + h² + 10·h + 2h + 10 parameters (85k by default)."""

    def build(dtype):
        r = _rng(seed)
        p = {
            "w1": r.normal(size=(n_in, hidden)) / np.sqrt(n_in),
            "b1": np.zeros(hidden),
            "w2": r.normal(size=(hidden, hidden)) / np.sqrt(hidden),
            "b2": np.zeros(hidden),
            "w3": r.normal(size=(hidden, n_out)) / np.sqrt(hidden),
            "b3": np.zeros(n_out),
        }
        x = _cast(r.normal(size=(batch, n_in)), dtype)
        y = jnp.asarray(r.integers(0, n_out, batch), jnp.int32)

        def f(p, x, y):
            x = _like(x, p["w1"])
            h = jnp.tanh(x @ p["w1"] + p["b1"])
            h = jnp.tanh(h @ p["w2"] + p["b2"])
            return _ce(h @ p["w3"] + p["b3"], y)

        return f, (_cast(p, dtype), x, y)

    return build


# ------------------------------------------------------------------------------------------
# Class 0: regression cases from tests/check_corpus.py


def _from_check_corpus(name: str, tested: tuple[str, ...] = ()) -> VerdictCase:
    c = check_corpus.by_name(name)
    note = "tests/check_corpus.py"
    return VerdictCase(f"corpus_{name}", 0, c.build, BOTH, c.buggy, kind=c.kind, tested=tested, note=note)


# ------------------------------------------------------------------------------------------
# The corpus

V = VerdictCase
#: The modes that measure every element (or a sample of them) one by one.
ELEMENT_MODES = ("full", "subset", "auto", "default")

CASES: list[VerdictCase] = [
    # 1. 16-bit floats
    V(
        "lowp_sin_vjp_2x",
        1,
        _lowp_sin(True),
        LOW,
        True,
        note="custom_vjp of sin 2× wrong, 8 params",
        tested=("bfloat16",),
    ),
    V("lowp_sin_vjp_ok", 1, _lowp_sin(False), LOW, False, note="the same rule, correct"),
    V("lowp_mlp_dense_dw_2x", 1, _lowp_mlp(2.0), LOW, True, note="tanh MLP, custom dense: dW 2× wrong"),
    V("lowp_mlp_dense_dw_2x_h16", 1, _lowp_mlp(2.0, hidden=16, batch=20, seed=1), ("bfloat16",), True),
    V("lowp_mlp_dense_ok", 1, _lowp_mlp(1.0), LOW, False, note="tanh MLP, custom dense correct"),
    V("lowp_mlp_tanh_sign_flip", 1, _lowp_tanh_sign(True), LOW, True, note="custom_vjp tanh: sign flipped"),
    V("mixed_tree_tanh_2x", 1, _mixed_tree(True), LOW, True, note="{w: 16-bit, b, v: float32}, tanh 2×"),
    V(
        "mixed_tree_ok",
        1,
        _mixed_tree(False),
        LOW,
        False,
        note="{w: 16-bit, b, v: float32} correct",
        tested=("bfloat16",),
    ),
    V("mixed_tree_ok_wide", 1, _mixed_tree(False, n_in=40, hidden=24, seed=4), ("bfloat16",), False),
    V(
        "bf16_activations_dense_2x",
        1,
        _bf16_activations(True),
        ("bfloat16", "float32"),
        True,
        resolvable=(),
        note="matmuls in bfloat16 inside f, dW 2×: below FD resolution whatever the precision",
    ),
    V(
        "bf16_activations_ok",
        1,
        _bf16_activations(False),
        ("bfloat16", "float32"),
        False,
        tested=("float32",),
        note="f rounds in bfloat16 inside: the error model works at bfloat16's eps",
    ),
    # 2. a leaf with a ~1e-10 gradient
    V("tiny_leaf_sign_flip", 2, _tiny_leaf(True), BOTH, True, resolvable=("float64",), tested=("float64",)),
    V(
        "tiny_leaf_sign_flip_n500",
        2,
        _tiny_leaf(True, n_big=100, n_tiny=500, seed=21),
        BOTH,
        True,
        resolvable=("float64",),
    ),
    V("tiny_leaf_ok", 2, _tiny_leaf(False), BOTH, False),
    V("tiny_head_sign_flip", 2, _tiny_head(True), BOTH, True, resolvable=("float64",)),
    V("tiny_head_ok", 2, _tiny_head(False), BOTH, False),
    # 3. very different scales; nothing checkable
    V("scales_small_doubled", 3, _scales(True), BOTH, True, resolvable=("float64",), tested=("float64",)),
    V("scales_ok", 3, _scales(False), BOTH, False, tested=("float32",)),
    V("scales_regression_coef_2x", 3, _scales_regression(True), BOTH, True, resolvable=("float64",)),
    V("scales_regression_ok", 3, _scales_regression(False), BOTH, False),
    V(
        "constant_in_f32_noise",
        3,
        _constant_in_noise(False),
        ("float32",),
        False,
        undecidable=True,
        tested=("float32",),
    ),
    V("constant_in_f32_noise_2x", 3, _constant_in_noise(True), ("float32",), True, resolvable=()),
    V(
        "all_kinks",
        3,
        _all_kinks,
        BOTH,
        False,
        undecidable=True,
        note="|x|, relu, max at 0",
    ),
    # 4. bugs near the float32 floor
    V("f32_floor_element_3e-2", 4, _cubic_offset("element"), ("float32",), True, tested=("float32",)),
    V("f32_floor_missing_term", 4, _cubic_offset("term"), ("float32",), True),
    V("f32_floor_nll_scale_3e-3", 4, _gaussian_nll(True), ("float32",), True),
    V("f32_floor_paths_in_float64", 4, _cubic_offset("element"), ("float64",), False, note="bug absent"),
    V("f32_floor_nll_in_float64", 4, _gaussian_nll(True), ("float64",), False, note="bug absent"),
    V("f32_floor_cubic_ok", 4, _cubic_offset(None), BOTH, False),
    V("f32_floor_nll_ok", 4, _gaussian_nll(False), BOTH, False),
    V(
        "f32_floor_small_element_10pct",
        4,
        _small_element(True),
        ("float32",),
        True,
        modes=ELEMENT_MODES,
        tested=("float32",),
        note="one bias element (gradient 2e-3 of f ~ 1.3) 10% off",
    ),
    V(
        "f32_floor_small_weight_8pct",
        4,
        _small_element(True, leaf="W", at=(0, 3), factor=1.08, seed=12),
        ("float32",),
        True,
        modes=ELEMENT_MODES,
        note="one small weight element 8% off",
    ),
    V("f32_floor_small_element_ok", 4, _small_element(False), BOTH, False),
    V(
        "f32_inside_tanh_2x",
        4,
        _loss_in_float32(2.0),
        ("float64",),
        True,
        tested=("float64",),
        note="float64 parameters, f computes in float32; tanh rule 2×",
    ),
    V("f32_inside_tanh_10pct", 4, _loss_in_float32(1.1, seed=22), ("float64",), True),
    V(
        "f32_inside_ok",
        4,
        _loss_in_float32(1.0),
        ("float64",),
        False,
        tested=("float64",),
        note="float64 parameters, f computes in float32; correct",
    ),
    V("f32_inside_ok_wide", 4, _loss_in_float32(1.0, seed=23, n_in=24, hidden=48), ("float64",), False),
    *_small_element_variants(range(20, 32), (1.1, 1.05)),
    # 5. domain boundaries
    V(
        "gp_noise_1e-6",
        5,
        _gp(),
        ("float64",),
        False,
        note="noise variance inside a Cholesky",
        tested=("float64",),
    ),
    V("gp_noise_1e-6_n20", 5, _gp(n=20, seed=22, noise=2e-6), ("float64",), False),
    V("log_variance_1e-6", 5, _log_variance(), BOTH, False),
    V("sqrt_jitter_1e-6", 5, _sqrt_jitter(), BOTH, False),
    # 6. large cancelling terms
    V("ce_logits_90", 6, _ce_logits_90(), BOTH, False, tested=("float32",)),
    V("ce_logits_90_b256", 6, _ce_logits_90(batch=256, seed=23), ("float32",), False),
    V("ce_logits_90_c32", 6, _ce_logits_90(batch=128, n_in=8, n_out=32, seed=24), ("float32",), False),
    V("cancelling_means_1e3", 6, _cancelling_means(), BOTH, False),
    V("feasible_penalty", 6, _feasible_penalty(), BOTH, False, note="100·(Σx − 1)² at Σx = 1, 1000 params"),
    V("feasible_penalty_n300", 6, _feasible_penalty(n=300, seed=32), BOTH, False),
    V("feasible_penalty_barrier_1pct", 6, _feasible_penalty(n=10, seed=33, barrier=1.01), BOTH, True),
    V("feasible_penalty_barrier_ok", 6, _feasible_penalty(n=300, seed=34, barrier=1.0), BOTH, False),
    # 7. unfaithful batched evaluation
    V("temperature_max", 7, _temperature(), BOTH, False, note="1 param, L 2000×10 (×30), seed 0"),
    V("temperature_max_seed2", 7, _temperature(seed=2, scale=90.0), ("float32",), False),
    V("temperature_elementwise", 7, _temperature(elementwise=True, scale=5.0), ("float32",), False),
    V(
        "temperature_per_class",
        7,
        _temperature(per_class=True),
        ("float32",),
        False,
        note="10 params",
        tested=("float32",),
    ),
    # 7/8. kinks denser than any step that resolves f (the segment test), correct and buggy
    V(
        "temperature_per_class_vjp_1pct",
        7,
        _temperature(per_class=True, bug=1.01),
        ("float32",),
        True,
        note="custom_vjp 1% off (tests/test_segment.py tests it in three modes)",
    ),
    V("temperature_per_class_seed3", 7, _temperature(per_class=True, seed=3, t=2.3), ("float32",), False),
    V("interp_4000_knots", 8, _interp_knots(), BOTH, False, note="piecewise-linear table, 6 params"),
    V("interp_4000_knots_vjp_2pct", 8, _interp_knots(bug=1.02), ("float64",), True, note="custom_vjp 2% off"),
    V("interp_4000_knots_vjp_0.5pct", 8, _interp_knots(bug=1.005, seed=27), ("float64",), True),
    V("interp_4000_knots_vjp_15pct", 8, _interp_knots(bug=1.15, seed=28), ("float32",), True),
    # 8. float32 ReLU nets
    V("eqx_mlp_relu_w48", 8, _eqx_mlp(), ("float32",), False, note="eqx.nn.MLP(16, 10, 48, 2)"),
    V("eqx_mlp_relu_w48_k1", 8, _eqx_mlp(init_key=1), ("float32",), False, key=1),
    V("eqx_mlp_relu_w48_k2", 8, _eqx_mlp(init_key=2), ("float32",), False, key=2),
    V(
        "eqx_mlp_relu_w32_d3",
        8,
        _eqx_mlp(in_size=8, width=32, depth=3, init_key=3),
        ("float32",),
        False,
        key=3,
    ),
    V("eqx_cnn_maxpool_relu", 8, _eqx_cnn(), ("float32",), False, note="conv 3×3, max-pool, linear"),
    *(
        V(
            f"eqx_mlp_relu_w32_k{k}",
            8,
            _eqx_mlp(in_size=8, width=32, depth=2, init_key=k, batch=16),
            ("float32",),
            False,
            key=k,
            tested=("float32",) if k == 1 else (),
            note="eqx.nn.MLP(8, 10, 32, 2)",
        )
        for k in range(4)
    ),
    # 9. nondeterministic f
    V("host_noise_1e-3", 9, _host_noise(), BOTH, False, reason="nondeterministic", tested=("float32",)),
    V("host_noise_1e-9", 9, _host_noise(sigma=1e-9, seed=25), ("float64",), False, reason="nondeterministic"),
    V("host_dropout", 9, _host_dropout(), BOTH, False, reason="nondeterministic"),
    # 0. regression cases from tests/check_corpus.py
    _from_check_corpus("tanh_sign_flip"),
    _from_check_corpus("dense_transposed_weight_grad"),
    _from_check_corpus("layernorm_missing_mean_term"),
    _from_check_corpus("ce_grad_scaled_1e-2"),
    _from_check_corpus("vjp_vector_missing_cross_term"),
    _from_check_corpus("jvp_vector_missing_term"),
    _from_check_corpus("relu_mlp_preactivations_at_zero"),
    _from_check_corpus("cnn_maxpool"),
    _from_check_corpus("params_1e-6_to_1e3"),
    _from_check_corpus("vjp_vector_function"),
    _from_check_corpus("jvp_custom_rule_vector_function"),
]

# Larger variants: the benchmark only.
BENCH_CASES: list[VerdictCase] = [
    *(
        V(
            f"eqx_mlp_relu_134k_k{k}",
            8,
            _eqx_mlp(in_size=256, out_size=10, width=256, depth=2, init_key=k, batch=64),
            ("float32",),
            False,
            key=k,
            bench_only=True,
            note="eqx.nn.MLP(256, 10, 256, 2), ReLU",
        )
        for k in range(8)
    ),
    V("tanh_mlp_85k", 10, _tanh_mlp_large(), ("float64",), False, bench_only=True),
    V(
        "tanh_mlp_21k",
        10,
        _tanh_mlp_large(n_in=32, hidden=128),
        ("float64", "float32"),
        False,
        bench_only=True,
    ),
    V(
        "eqx_mlp_relu_134k_default",
        10,
        _eqx_mlp(in_size=256, out_size=10, width=256, depth=2, init_key=0, batch=64),
        ("float32",),
        False,
        bench_only=True,
    ),
]


def by_name(name: str) -> VerdictCase:
    for c in CASES + BENCH_CASES:
        if c.name == name:
            return c
    raise KeyError(name)
