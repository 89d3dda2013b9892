"""Progress counting, the lazy package namespace, non-finite results and pytest-friendly failures."""

from __future__ import annotations

import ast
import io
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fdjax
from fdjax.report._progress import Progress, default_style

ROOT = pathlib.Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------ progress


class _Recorder(Progress):
    """Records the order in which plan sizes and evaluations arrive."""

    def __init__(self, per_chunk=True):
        super().__init__("lines", stream=io.StringIO(), per_chunk=per_chunk)
        self.events: list[tuple[str, int]] = []

    def _planned(self, rows):
        self.events.append(("plan", rows))
        super()._planned(rows)

    def _tick(self, count):
        self.events.append(("tick", count))
        super()._tick(count)


@pytest.mark.parametrize("chunk_size", [None, 3, 7])
def test_pass_size_is_known_before_its_first_evaluation(chunk_size):
    """Every evaluation is counted, and each pass's size arrives before its evaluations."""
    f = lambda x: jnp.sum(jnp.sin(x) ** 2)  # noqa: E731
    x = jnp.linspace(0.1, 1.0, 10)
    p = _Recorder()
    counted = p.wrap(f)
    with p.stage("grad"):
        g = fdjax.grad(counted, chunk_size=chunk_size)(x)
    np.testing.assert_allclose(g, jax.grad(f)(x), rtol=1e-8)  # the wrapper changes no value
    plans = [n for kind, n in p.events if kind == "plan"]
    ticks = [n for kind, n in p.events if kind == "tick"]
    assert p.events[0][0] == "plan"
    # the plan covers the 2N perturbed points (padding included); at most f(x) comes on top
    assert 20 <= sum(plans) <= sum(ticks) <= sum(plans) + 2
    line = p.stream.getvalue().splitlines()[-1]
    assert line.startswith("fdjax: grad") and f"{sum(ticks):,} evaluations" in line


def test_a_compiled_pass_replays_its_size():
    """A second call of the same compiled pass traces nothing; its size still comes first."""
    f = lambda x: jnp.sum(jnp.cos(x) * x)  # noqa: E731
    x = jnp.linspace(0.0, 1.0, 6)
    p = _Recorder()
    grad_fn = fdjax.grad(p.wrap(f))
    with p.stage("first"):
        grad_fn(x)
    first = list(p.events)
    p.events.clear()
    with p.stage("second"):
        grad_fn(x + 1.0)
    assert first[0][0] == "plan" and p.events[0][0] == "plan"
    assert [n for k, n in p.events if k == "plan"] == [n for k, n in first if k == "plan"]
    assert sum(n for k, n in p.events if k == "tick") >= 12


def test_lines_count_the_announced_passes_and_leave_the_loss_cacheable():
    """Without a live bar the loss is not wrapped (a host callback makes a program
    uncacheable): the evaluations are the passes' sizes, the compile time XLA's own."""
    f = lambda x: jnp.sum(jnp.tanh(x) * x)  # noqa: E731
    x = jnp.linspace(0.1, 1.0, 8)
    p = _Recorder(per_chunk=None)
    assert not p.per_chunk and p.wrap(f) is f
    with p.stage("grad"):
        g = fdjax.grad(p.wrap(f))(x)
    np.testing.assert_allclose(g, jax.grad(f)(x), rtol=1e-8)
    plans = [n for kind, n in p.events if kind == "plan"]
    assert sum(plans) >= 16 and p.evaluations == sum(plans)
    assert not [e for e in p.events if e[0] == "tick"]
    line = p.stream.getvalue().splitlines()[-1]
    assert f"{sum(plans):,} evaluations" in line
    seconds = float(line.split("(compiling ")[1].split(" s)")[0])
    assert seconds > 0  # a new function: its pass was compiled in this stage
    assert Progress("bar", stream=io.StringIO()).per_chunk


def test_progress_styles_and_bad_style():
    assert default_style(io.StringIO(), quiet=False) == "lines"
    assert default_style(io.StringIO(), quiet=True) == "off"
    off = Progress("off")
    f = lambda x: x  # noqa: E731
    assert off.wrap(f) is f and not off.enabled
    with pytest.raises(ValueError, match=r"Progress\(style=...\) must be one of .*got 'loud'"):
        Progress("loud")


def test_bar_style_counts_on_a_fake_terminal():
    """The rich bar (the style a terminal gets) survives several stages and passes."""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    p = Progress("bar", stream=stream)
    f = lambda x: jnp.sum(x**3)  # noqa: E731
    counted = p.wrap(f)
    for stage in ("check", "sweep", "landscape"):
        with p.stage(stage):
            fdjax.grad(counted, chunk_size=4)(jnp.arange(5.0))
    assert p.evaluations >= 30
    text = stream.getvalue()
    assert all(stage in text for stage in ("check", "sweep", "landscape"))


# ------------------------------------------------------------------------------ lazy package


def test_package_namespace_is_complete_and_lazy():
    """Every public name resolves, and the TYPE_CHECKING imports list exactly the lazy names."""
    tree = ast.parse((ROOT / "fdjax" / "__init__.py").read_text())
    typed = {
        alias.asname: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
        if node.module is not None and alias.asname not in (None, "__version__")
    }
    assert {k: "." + v for k, v in typed.items()} == fdjax._LAZY
    assert sorted(fdjax.__all__) == sorted(fdjax._LAZY)
    for name in fdjax.__all__:
        assert getattr(fdjax, name) is not None
        assert name in dir(fdjax)
    with pytest.raises(AttributeError, match="module 'fdjax' has no attribute 'gradient'"):
        fdjax.gradient  # noqa: B018


# ------------------------------------------------------------------------ non-finite results


def test_non_finite_loss_never_reads_as_agreement():
    r = fdjax.check_grad(lambda p: jnp.sum(jnp.log(p)), jnp.array([1.0, -2.0, 3.0]))
    assert not bool(r.passed)
    for name in ("max_rel_error", "norm_ratio", "digits", "sign_agreement"):
        assert math.isnan(float(getattr(r, name))), name
    text = str(r)
    overall = next(line for line in text.splitlines() if line.strip().startswith("overall"))
    assert "0.000e+00" not in overall and "—" in overall
    d = r.to_dict()
    assert d["max_rel_error"] is None or d["max_rel_error"] != 0


def test_nan_at_one_perturbed_point_voids_that_leafs_metrics_only():
    def loss(p):
        return jnp.sum(jnp.sqrt(p["a"])) + jnp.sum(p["b"] ** 2)

    # a[0] = 1e-12: x − h is negative, sqrt gives NaN there; b is smooth
    r = fdjax.check_grad(loss, {"a": jnp.array([1e-12, 1.0]), "b": jnp.array([1.0, 2.0])})
    names = list(r.leaf_names)
    ia, ib = names.index("['a']"), names.index("['b']")
    assert math.isnan(float(r.leaves.max_rel_error[ia])) and math.isnan(float(r.leaves.digits[ia]))
    assert float(r.leaves.digits[ib]) > 8


def test_relative_error_propagates_nan():
    from fdjax._check.model import relative_error

    out = relative_error(np.array([1.0, 0.0, 1.0]), np.array([np.nan, 0.0, 1.0]), np)
    assert math.isnan(out[0]) and out[1] == 0 and out[2] == 0


# --------------------------------------------------------------------------- pytest failures


def _buggy():
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    f.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (1.05 * g * jnp.cos(x),))
    return lambda p: jnp.sum(f(p["w"])) + jnp.sum(p["b"] ** 2), {
        "w": jnp.linspace(0.1, 1.0, 6),
        "b": jnp.ones(2),
    }


def test_gradient_check_error_names_the_failing_leaves_first():
    loss, params = _buggy()
    with pytest.raises(fdjax.GradientCheckError) as info:
        fdjax.assert_grad(loss, params)
    err = info.value
    first = str(err).splitlines()[0]
    assert "FAILED" in first and "in ['w'] ([" in first and "['b']" not in first
    assert type(err).__module__ == "fdjax" and type(err).__qualname__ == "GradientCheckError"
    assert isinstance(err, AssertionError) and not bool(err.result.passed)
    # pytest hides fdjax's own frame: assert_grad sets __tracebackhide__
    frames = [tb.tb_frame for tb in _walk(info.tb)]
    assert any(fr.f_locals.get("__tracebackhide__") for fr in frames if fr.f_code.co_name == "assert_grad")


def _walk(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_an_infinite_gradient_element_taints_only_its_own_leaf():
    """inf in one leaf's gradient must not turn other leaves' directions into NaN (inf·0)."""

    @jax.custom_vjp
    def f(x):
        return jnp.sum(x**2)

    f.defvjp(lambda x: (f(x), x), lambda x, g: (g * jnp.where(x > 0.5, jnp.inf, 2 * x),))
    loss = lambda p: f(p["a"]) + jnp.sum(jnp.sin(p["b"]))  # noqa: E731
    params = {"a": jnp.array([0.1, 0.9]), "b": jnp.linspace(0.0, 1.0, 4)}
    r = fdjax.check_grad(loss, params, mode="directional")
    names = list(r.leaf_names)
    assert not bool(r.passed)
    assert bool(r.leaves.passed[names.index("['b']")]) and not bool(r.leaves.passed[names.index("['a']")])
