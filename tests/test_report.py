"""Report document, its JSON schema, the renderers, gradient norms and the landscape slice."""

import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import jsonschema
import numpy as np
import pytest

import fdjax
from fdjax import report
from fdjax._landscape import filter_normalized_direction, parameter_slice
from fdjax._pytree import flatten_args
from fdjax.report import _document


def tiny_problem():
    def loss(params, x):
        return jnp.sum(jnp.tanh(x @ params["w"] + params["b"]) ** 2)

    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2), "b": jnp.array([0.1, -0.2])}
    return loss, params, jnp.linspace(0.0, 1.0, 12).reshape(4, 3)


@pytest.fixture(scope="module")
def doc():
    loss, params, x = tiny_problem()
    return report.diagnose(
        loss,
        params,
        x,
        job=report.Job(resolution=5, num_steps=12),
        target="tiny",
        command="fdjax report tiny",
    )


def test_document_matches_schema(doc):
    jsonschema.validate(doc, report.load_schema())
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only
    assert doc["schema"] == report.SCHEMA == "fdjax.report/1"


def test_document_contents(doc):
    assert doc["problem"]["num_parameters"] == 8
    assert [leaf["path"] for leaf in doc["problem"]["leaves"]] == ["['b']", "['w']"]
    assert doc["verdict"]["passed"] is True and doc["verdict"]["status"] == "passed"
    assert doc["verdict"]["elements_checked"] == 8
    assert doc["meta"]["command"] == "fdjax report tiny" and doc["meta"]["target"] == "tiny"
    assert doc["meta"]["evaluations"] > 0
    assert set(doc["meta"]["timings_s"]) == {"check", "sweep", "landscape", "slice"}
    assert len(doc["landscape"]["loss"]) == 5 and len(doc["landscape"]["loss"][0]) == 5
    ps = doc["parameter_slice"]
    assert ps["analytic"] == pytest.approx(ps["numeric"], rel=1e-7)


@pytest.mark.parametrize(
    "bad",
    [
        {"schema": "fdjax.report/0"},
        {"verdict": {"passed": "yes"}},
        {"problem": {"num_parameters": 0}},
        {"extra": 1},
    ],
)
def test_schema_rejects_malformed_documents(doc, bad):
    broken = json.loads(json.dumps(doc))
    for k, v in bad.items():
        if isinstance(v, dict) and isinstance(broken.get(k), dict):
            broken[k].update(v)
        else:
            broken[k] = v
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report.load_schema())


def test_html_is_self_contained(doc):
    page = report.render(doc, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", page), "no external resources"
    assert "http://" not in page.replace("http://www.w3.org", "")  # SVG namespaces only
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(srcs) >= 5 and all(s.startswith("data:image/svg+xml;base64,") for s in srcs)
    embedded = re.search(
        r'<script type="application/json" id="fdjax-report">(.*?)</script>', page, re.S
    ).group(1)
    assert json.loads(embedded.replace("<\\/", "</")) == doc
    for heading in ("Per-leaf results", "Step sweep", "Layer-wise gradient norms", "Loss landscape"):
        assert heading in page


def test_markdown_and_text(doc):
    md = report.render(doc, "md")
    assert md.startswith("# fdjax report: tiny")
    assert "| leaf | shape | max rel error |" in md and "## Layer-wise gradient norms" in md
    text = report.render(doc, "text")
    assert "Gradient check PASSED" in text and "['w']" in text
    assert "\x1b[" not in text  # no colour unless asked
    assert "\x1b[" in report.render(doc, "text", color=True)


def test_plain_text_without_rich(doc, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    from fdjax.report.text import render_text

    text = render_text(doc)
    assert text.startswith("Gradient check PASSED") and "Per leaf" in text


def test_render_and_write_errors(doc, tmp_path):
    with pytest.raises(ValueError, match=r"fdjax.report.render\(format=...\) must be one of .* got 'pdf'"):
        report.render(doc, "pdf")
    with pytest.raises(ValueError, match=r"fdjax.report.write\(path=...\) needs a suffix .* got '.*r.pdf'"):
        report.write(doc, str(tmp_path / "r.pdf"))
    assert report.write(doc, str(tmp_path / "r.md")) == "md"
    assert report.write(doc, str(tmp_path / "r.out"), format="json") == "json"
    assert json.loads((tmp_path / "r.out").read_text()) == doc


def test_importing_fdjax_does_not_import_plot_libraries():
    code = "import sys, fdjax, fdjax.report; print(any(m in sys.modules for m in ('matplotlib', 'rich')))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


# ----------------------------------------------------------------------------------- gradient norms


def test_gradient_norm_flags():
    params = {"a": jnp.ones(4), "b": jnp.ones(4), "c": jnp.ones(4), "d": jnp.ones(4)}
    grads = {"a": jnp.full(4, 1.0), "b": jnp.full(4, 1e-6), "c": jnp.full(4, 1e4), "d": jnp.full(4, 2.0)}
    fa = flatten_args((params,), 0, "test")
    g = _document.gradient_norms(fa, grads)
    assert [r["flag"] for r in g["leaves"]] == ["ok", "vanishing", "exploding", "ok"]
    assert g["leaves"][0]["grad_norm"] == pytest.approx(2.0)
    assert g["leaves"][0]["ratio"] == pytest.approx(1.0)
    zero = _document.gradient_norms(fa, {**grads, "b": jnp.zeros(4)})
    assert zero["leaves"][1]["flag"] == "vanishing"


# ----------------------------------------------------------------------------------------- landscape


def test_filter_normalised_directions():
    params = {"conv": jnp.arange(1.0, 25.0).reshape(4, 6), "b": jnp.array([3.0, 4.0]), "z": jnp.zeros(3)}
    fa = flatten_args((params,), 0, "test")
    d = filter_normalized_direction(jax.random.key(0), fa)
    leaves = dict(zip(fa.float_paths, fa.unravel(d), strict=False))
    p = dict(zip(fa.float_paths, fa.unravel(fa.x), strict=False))
    np.testing.assert_allclose(
        np.linalg.norm(leaves["['conv']"], axis=1), np.linalg.norm(p["['conv']"], axis=1)
    )
    assert float(jnp.linalg.norm(leaves["['b']"])) == pytest.approx(5.0)
    assert not np.any(np.asarray(leaves["['z']"]))  # zero filters get zero directions


@pytest.mark.parametrize("jit", [False, True])
def test_landscape_matches_direct_evaluation(jit):
    loss, params, x = tiny_problem()
    f = lambda p, x: fdjax.landscape(loss, p, x, resolution=3, span=0.5, key=1)
    ls = (jax.jit(f) if jit else f)(params, x)
    assert ls.loss.shape == (3, 3)
    assert float(ls.loss[1, 1]) == pytest.approx(float(loss(params, x)), rel=1e-14)
    assert float(ls.loss0) == pytest.approx(float(loss(params, x)), rel=1e-14)
    fa = flatten_args((params, x), 0, "test")
    k1, k2 = jax.random.split(jax.random.key(1))
    d1, d2 = filter_normalized_direction(k1, fa), filter_normalized_direction(k2, fa)
    moved = fa.call_args(fa.x + 0.5 * d1 - 0.5 * d2)
    assert float(ls.loss[2, 0]) == pytest.approx(float(loss(*moved)), rel=1e-12)
    d = ls.to_dict()
    assert d["evaluations"] == 9 and len(d["alphas"]) == 3


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(resolution=1), ValueError, r"fdjax.landscape\(resolution=...\) must be an int >= 2, got 1"),
        (dict(resolution=2.5), ValueError, r"resolution=...\) must be an int >= 2, got 2.5"),
        (dict(span=0.0), ValueError, r"fdjax.landscape\(span=...\) must be positive and finite, got 0.0"),
        (dict(span=float("inf")), ValueError, r"span=...\) must be positive and finite"),
        (dict(key="seed"), TypeError, r"fdjax.landscape\(key=...\) must be an int seed or a jax.random key"),
        (dict(chunk_size=0), ValueError, r"chunk_size=...\) must be a positive int or None, got 0"),
    ],
)
def test_landscape_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fdjax.landscape(lambda w: jnp.sum(w**2), jnp.ones(3), **kwargs)


def test_landscape_rejects_bad_functions():
    with pytest.raises(TypeError, match=r"fdjax.landscape\(fun=...\) must be callable, got int"):
        fdjax.landscape(3, jnp.ones(3))
    with pytest.raises(
        TypeError, match=r"fdjax.landscape requires a function returning a real scalar, got output \(3,\)$"
    ):
        fdjax.landscape(lambda w: w * 2, jnp.ones(3))


def test_parameter_slice():
    theta, losses = parameter_slice(lambda w: jnp.sum(w**3), (jnp.array([1.0, 2.0]),), 1, [-1.0, 0.0, 0.5])
    assert theta == 2.0
    np.testing.assert_allclose(losses, [1 + 1, 1 + 8, 1 + 2.5**3])
    with pytest.raises(ValueError, match=r"parameter_slice\(index=...\) must be in \[0, 2\), got 2"):
        parameter_slice(lambda w: jnp.sum(w), (jnp.ones(2),), 2, [0.0])


# ------------------------------------------------------------------------------------------ progress


@pytest.mark.parametrize("chunk_size", [3, None])
def test_progress_counts_chunked_evaluations_without_changing_values(chunk_size):
    import io

    from fdjax.report._progress import Progress

    f = lambda w: jnp.sum(jnp.sin(w) ** 2)
    stream = io.StringIO()
    p = Progress(enabled=True, stream=stream)
    counted = p.wrap(f)
    with p.stage("grad", total=20):
        g = fdjax.grad(counted, chunk_size=chunk_size)(jnp.linspace(0.0, 1.0, 10))
    np.testing.assert_array_equal(g, fdjax.grad(f, chunk_size=chunk_size)(jnp.linspace(0.0, 1.0, 10)))
    assert p.evaluations >= 21  # 2N perturbed rows (+ padding) and f(x)
    np.testing.assert_array_equal(jax.grad(counted)(jnp.ones(3)), jax.grad(f)(jnp.ones(3)))


def test_progress_disabled_wraps_nothing():
    from fdjax.report._progress import Progress

    f = lambda w: w
    assert Progress(enabled=False).wrap(f) is f
