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
from fdjax import _check, _json, report
from fdjax._landscape import filter_normalized_direction, parameter_slice
from fdjax._pytree import flatten_args
from fdjax.report import _document, _views, html, plots
from fdjax.report._format import num
from fdjax.report.text import render_text


#: The tests that share a module-scoped report (each ``report.diagnose`` compiles a check, a
#: sweep and a landscape) run next to each other, on one xdist worker (tests/conftest.py): split
#: over workers, each worker would diagnose the same problem again.
DOCS = pytest.mark.xdist_group("report-docs")
KINKED = pytest.mark.xdist_group("report-kinked")
NAN = pytest.mark.xdist_group("report-nan")


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


@DOCS
def test_document_matches_schema(doc):
    jsonschema.validate(doc, report.load_schema())
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only
    assert doc["schema"] == report.SCHEMA == "fdjax.report/2"


@DOCS
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


@DOCS
@pytest.mark.parametrize(
    "bad",
    [
        {"schema": "fdjax.report/0"},
        {"verdict": {"passed": "yes"}},
        {"verdict": {"status": "kinks only"}},
        {"verdict": {"reason": "none"}},
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


def one_percent_wrong_problem():
    """The tiny problem with a tanh whose custom VJP is 1 % too large: ['w'] and ['b'] fail."""

    @jax.custom_vjp
    def tanh(x):
        return jnp.tanh(x)

    tanh.defvjp(lambda x: (jnp.tanh(x), jnp.tanh(x)), lambda y, g: (g * (1 - y**2) * 1.01,))

    def loss(params, x):
        return jnp.sum(tanh(x @ params["w"] + params["b"]) ** 2)

    _, params, x = tiny_problem()
    return loss, params, x


@pytest.fixture(scope="module")
def failing_doc():
    loss, params, x = one_percent_wrong_problem()
    # num_steps as in ``doc``: the same problem shapes, so the sweep's ladder analysis
    # (compiled per shape, independent of f) is reused.
    return report.diagnose(loss, params, x, job=report.Job(resolution=3, num_steps=12), target="wrong")


@pytest.fixture(scope="module")
def directional_doc():
    loss, params, x = one_percent_wrong_problem()
    job = report.Job(mode="directional", k=6, sweep=False, landscape=False)
    return report.diagnose(loss, params, x, job=job, target="wrong-directional")


def nonfinite_doc(which):
    loss, params, x = tiny_problem()
    if which == "loss":  # f(x) itself is NaN

        def f(p, x):
            return loss(p, x) * jnp.nan
    else:  # sqrt at 0: the analytic derivative of ['b'][0] is inf

        def f(p, x):
            return loss(p, x) + jnp.sqrt(p["b"][0] - 0.1)

    return report.diagnose(f, params, x, job=report.Job(sweep=False, landscape=False), target=which)


@pytest.fixture(scope="module")
def nan_loss_doc():
    return nonfinite_doc("loss")


@pytest.fixture(scope="module")
def nan_element_doc():
    return nonfinite_doc("element")


@pytest.fixture(params=["nan_loss_doc", "nan_element_doc"])
def nan_doc(request):
    return request.getfixturevalue(request.param)


@DOCS
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


@DOCS
def test_markdown_and_text(doc):
    md = report.render(doc, "md")
    assert md.startswith("# fdjax report: tiny")
    assert "| leaf | shape | checked | inconclusive | max rel error |" in md
    assert "## Layer-wise gradient norms" in md
    text = report.render(doc, "text")
    assert "Gradient check PASSED" in text and "['w']" in text
    assert "\x1b[" not in text  # no colour unless asked
    assert "\x1b[" in report.render(doc, "text", color=True)


@DOCS
def test_plain_text_without_rich(doc, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    from fdjax.report.text import render_text

    text = render_text(doc)
    assert text.startswith("Gradient check PASSED") and "Per leaf" in text


@DOCS
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


# ------------------------------------------------------------------------------------ what the report shows


def _collection(ax, label):
    found = [c for c in ax.collections if c.get_label() == label]
    return found[0].get_offsets() if found else np.zeros((0, 2))


@DOCS
def test_disagreement_plot_puts_a_one_percent_error_above_the_line(failing_doc):
    check = failing_doc["check"]
    dis = _views.disagreement(check)
    assert dis["what"] == "elements" and [g[0] for g in dis["groups"]] == ["['b']", "['w']"]
    failed = np.asarray(dis["status"]) == "fail"
    assert failed.all()  # every element of both leaves is 1 % wrong
    assert np.all(dis["ratio"][failed] > 1)
    fig = plots.disagreement_figure(dis["x"], dis["ratio"], dis["status"], dis["names"], dis["groups"])
    ax = fig.axes[0]
    y = _collection(ax, "failed")[:, 1]
    assert y.size == failed.sum() and np.all(y > 1)
    assert any(np.allclose(line.get_ydata(), 1.0) for line in ax.get_lines())  # the tolerance
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    worst = _views.worst_elements(check, 1, failed_only=True)[0]
    assert any(t.startswith(worst["name"] + ":") for t in legend), legend
    plots.require_matplotlib().close(fig)
    page = report.render(failing_doc, "html")
    assert 'alt="disagreement"' in page and "Analytic vs numeric" not in page


def test_disagreement_plot_passing_and_nonfinite_points():
    fig = plots.disagreement_figure(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        [0.01, 0.5, float("nan"), float("inf"), 3.0, 0.2],
        ["pass", "pass", "nonfinite", "fail", "kink", "inconclusive"],
        ["a", "b", "c", "d", "e", "f"],
        [("leaf", 0.0, 1.0)],
    )
    ax = fig.axes[0]
    passed, bad = _collection(ax, "passed")[:, 1], _collection(ax, "non-finite")[:, 1]
    assert np.all(passed < 1) and bad.size == 1 and passed.size == 2
    # Neither a kink nor another inconclusive measurement reads as passed or failed.
    assert _collection(ax, "kink (inconclusive)")[:, 1].tolist() == [3.0]
    assert _collection(ax, "inconclusive")[:, 1].tolist() == [0.2]
    assert bad[0] > 10 * passed.max() and _collection(ax, "failed")[0, 1] >= bad[0]  # the top band
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "c: non-finite" in legend and "d: inf × tol" in legend
    plots.require_matplotlib().close(fig)


def test_html_and_markdown_have_a_directions_table(directional_doc):
    check = directional_doc["check"]
    rows = _views.direction_rows(check)
    assert rows and rows[0]["status"] == "fail"  # worst first
    assert len(rows) == len(check["directions"]["status"])
    page = report.render(directional_doc, "html")
    section = re.search(r'<section class="card" id="directions">(.*?)</section>', page, re.S).group(1)
    head = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", section)
    assert head[0] == "status" and "AD ∇f·v" in head and "FD" in head and "tolerance" in head
    assert len(re.findall(r"<tr", section)) == len(rows) + 1
    for r in rows:
        assert f"#{r['direction']} {r['kind']}" in section
        assert num(r["analytic"], 8) in section and num(r["numeric"], 8) in section
    dis = _views.disagreement(check)
    assert dis["what"] == "directions" and len(dis["x"]) == len(rows)
    md = report.render(directional_doc, "md")
    assert "## Directions" in md and "| status | direction | support |" in md
    assert directional_doc["verdict"]["directions_checked"] == len(rows)
    assert directional_doc["verdict"]["elements_checked"] == 0
    jsonschema.validate(directional_doc, report.load_schema())


@DOCS
def test_slice_is_drawn_at_the_checks_step(doc, failing_doc):
    ps = doc["parameter_slice"]
    view = _views.slice_view(ps)
    fig = plots.parameter_slice_figure(view)
    top, bottom = fig.axes
    lines = {line.get_label().split(":")[0]: line for line in top.get_lines()}
    fd = next(v for k, v in lines.items() if k.startswith("FD secant at h"))
    ad = next(v for k, v in lines.items() if k.startswith("tangent"))
    # At the check's step a correct gradient's secant and tangent are one line: closer than a
    # thousandth of the plot's height everywhere.
    height = np.subtract(*top.get_ylim()[::-1])
    assert np.max(np.abs(fd.get_ydata() - ad.get_ydata())) < 1e-3 * height
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert any(plots._g(ps["numeric"]) in t for t in legend) and any(
        plots._g(ps["analytic"]) in t for t in legend
    )
    # The wide secants converge to the tangent as ε shrinks (truncation, not a wrong gradient).
    gaps = np.abs(view["secant_slopes"] - view["analytic"])
    assert gaps[0] < gaps[-1] / 100
    plots.require_matplotlib().close(fig)
    caption = html.figures(doc)["secant"][1]
    assert num(ps["numeric"], 8) in caption and num(ps["analytic"], 8) in caption
    assert "for display" not in caption
    # A 1 % wrong gradient: the secant at h stays 1 % away from the tangent.
    bad = _views.slice_view(failing_doc["parameter_slice"])
    assert abs(bad["numeric"] - bad["analytic"]) > 5e-3 * abs(bad["analytic"])


@DOCS
def test_every_plot_font_is_readable(doc, failing_doc):
    for d in (doc, failing_doc):
        for name, (fig, _) in html._make_figures(d).items():
            sizes = plots.text_sizes(fig)
            small = [(s, t) for s, t in sizes if s < plots.FONT["min"]]
            assert sizes and not small, f"{name}: {small}"
            # Drawn no wider than the page shows it, so the fonts are not scaled down much.
            assert fig.get_figwidth() <= plots.WIDTH + 1e-9, name
            plots.require_matplotlib().close(fig)


@DOCS
def test_sweep_error_against_jax_grad_is_explained(doc, failing_doc):
    good = report.render(doc, "html")
    assert "<th>|FD − jax.grad|</th>" in good and "which passed the check" in good
    bad = report.render(failing_doc, "html")
    assert "<th>|FD − AD| ⚠</th>" in bad and "meaningless as an error of the FD estimate" in bad
    assert "\\|FD − AD\\| ⚠" in report.render(failing_doc, "md")  # escaped for the table
    # Its plot uses the sweep's own differences, not the distance to the failing jax.grad.
    curves = _views.sweep_curves(failing_doc["sweep"], failing_doc["problem"]["leaves"], trusted=False)
    assert curves and all(c["error_label"].startswith("|D(h) − D(h/") for c in curves)
    trusted = _views.sweep_curves(doc["sweep"], doc["problem"]["leaves"], trusted=True)
    assert all(c["error_label"] == "|D(h) − jax.grad|" for c in trusted)


@NAN
def test_nonfinite_values_never_read_as_agreement(nan_doc):
    jsonschema.validate(nan_doc, report.load_schema())
    v = nan_doc["verdict"]
    assert v["passed"] is False and v["nonfinite"] >= 1 and v["status"] in ("failed", "inconclusive")
    assert v["max_rel_error"] is None and v["digits"] is None and v["norm_ratio"] is None
    rows = _views.leaf_rows(nan_doc["check"])
    bad = [r for r in rows if r["nonfinite"]]
    assert bad and all(r["verdict"] in ("FAILED (non-finite)", "inconclusive (non-finite)") for r in bad)
    assert all(r["max_rel_error"] is None and r["digits"] is None for r in bad)
    worst = [w for w in _views.worst_elements(nan_doc["check"], 20) if w["outcome"] == "nonfinite"]
    assert worst and all(w["rel_error"] is None and w["why"].startswith("non-finite") for w in worst)
    assert all(w["status"] == "inconclusive" and w["reason"] == "nonfinite" for w in worst)
    assert all(np.isnan(e["rel_error"][e["nonfinite"]]).all() for e in _views.elements(nan_doc["check"]))
    page = report.render(nan_doc, "html")
    leaves = re.search(r'id="leaves">(.*?)</section>', page, re.S).group(1)
    trs = re.findall(r"<tr[^>]*>(.*?)</tr>", leaves)
    for r in bad:
        row = next(tr for tr in trs if html._e(r["path"]) in tr)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert "non-finite" in cells[0] and cells[5:8] == ["—", "—", "—"], cells
    facts = re.search(r'id="verdict">(.*?)</section>', page, re.S).group(1)
    assert "<dt>max rel error</dt><dd>—</dd>" in facts and "0.00e+00" not in facts
    md = report.render(nan_doc, "md")
    assert "| **max rel error** | — |" in md
    text = report.render(nan_doc, "text")
    assert "0.00e+00" not in text.split("Worst")[0]


@NAN
def test_nan_loss_report(nan_loss_doc, nan_element_doc):
    # f(x) itself NaN: nothing can be verified (INCONCLUSIVE); an infinite analytic derivative
    # where f is finite is wrong (FAILED).
    v = nan_loss_doc["verdict"]
    assert (v["status"], v["reason"]) == ("inconclusive", "nonfinite") and v["remedy"]
    assert v["headline"].startswith("Gradient check INCONCLUSIVE")
    assert nan_element_doc["verdict"]["status"] == "failed"
    assert nan_element_doc["verdict"]["failing_leaves"] == ["['b']"]
    assert nan_loss_doc["problem"]["loss"] is None
    assert nan_loss_doc["parameter_slice"] is None and nan_loss_doc["sweep"] is None
    assert all(r["flag"] == "nonfinite" for r in nan_loss_doc["gradient_norms"]["leaves"])
    flags = {r["path"]: r["flag"] for r in nan_element_doc["gradient_norms"]["leaves"]}
    assert flags["['b']"] == "nonfinite"
    page = report.render(nan_loss_doc, "html")
    assert "<dt>loss</dt><dd>not finite</dd>" in page
    assert "<dt>elements checked</dt><dd>0</dd>" in page


# ------------------------------------------------------------------------------------ inconclusive


def kinked_problem():
    """|a| at a = 0 beside the tiny problem's smooth ['w']: every measurement of ['a'] is a kink."""

    def loss(params, x):
        return jnp.sum(jnp.abs(params["a"])) + jnp.sum(jnp.tanh(x @ params["w"]) ** 2)

    _, params, x = tiny_problem()
    return loss, {"a": jnp.zeros(3), "w": params["w"]}, x


@pytest.fixture(scope="module")
def kinked_doc():
    loss, params, x = kinked_problem()
    return report.diagnose(loss, params, x, job=report.Job(resolution=3, num_steps=8), target="kinked")


@KINKED
def test_inconclusive_document(kinked_doc):
    jsonschema.validate(kinked_doc, report.load_schema())
    check, v = kinked_doc["check"], kinked_doc["verdict"]
    assert check["schema"] == "fdjax.check/3"
    assert (check["status"], check["reason"], check["passed"]) == ("inconclusive", "kink", False)
    assert check["mode"] in ("full", "subset", "directional", "locate") and check["notes"]
    assert kinked_doc["options"]["mode"] == "auto" and v["mode"] == check["mode"]
    assert (v["status"], v["reason"], v["passed"]) == ("inconclusive", "kink", False)
    assert v["remedy"] == fdjax.Reason.KINK.remedy()
    assert v["headline"].startswith("Gradient check INCONCLUSIVE") and "To resolve" not in v["headline"]
    assert v["failing_leaves"] == [] and v["inconclusive_leaves"] == [{"path": "['a']", "reason": "kink"}]
    assert v["inconclusive"] >= 3 and v["check_notes"] == check["notes"]
    rows = {r["path"]: r for r in _views.leaf_rows(check)}
    assert rows["['a']"]["verdict"] == "inconclusive (kink)" and rows["['a']"]["max_rel_error"] is None
    assert rows["['w']"]["verdict"] == "ok"
    worst = _views.worst_elements(check, 3)
    assert [w["outcome"] for w in worst] == ["kink"] * 3 and all(
        w["why"].startswith("kink: D+") for w in worst
    )
    # jax.grad was not verified: the sweep's distance to it is not called its error.
    assert not _views.reference_trusted(check)
    assert any("INCONCLUSIVE" in n for n in kinked_doc["notes"])
    # The one-parameter chart shows an element the check could not verify.
    assert kinked_doc["parameter_slice"]["parameter"].startswith("['a']")


@KINKED
def test_inconclusive_report_renders_the_reason_and_remedy(kinked_doc):
    remedy = fdjax.Reason.KINK.remedy()
    meaning = fdjax.Reason.KINK.describe()
    note = kinked_doc["check"]["notes"][0]
    text = render_text(kinked_doc, width=400)
    assert text.startswith("Gradient check INCONCLUSIVE") and "PASSED" not in text and "FAILED" not in text
    assert f"to resolve: {remedy}" in text and meaning in text and f"check note: {note}" in text
    assert re.search(r"\['a'\].*inconclusive \(kink\)", text)
    md = report.render(kinked_doc, "md")
    assert "**⚠️ Gradient check INCONCLUSIVE" in md and f"To resolve: {remedy}" in md
    assert "| _inconclusive (kink)_ | `['a']` |" in md and "| _kink_ | `['a'][0]` |" in md
    assert f"> check note: {note}" in md
    page = report.render(kinked_doc, "html")
    verdict = re.search(r'<section class="card verdict (\w+)" id="verdict">(.*?)</section>', page, re.S)
    assert verdict.group(1) == "inconclusive"
    assert '<span class="badge">INCONCLUSIVE</span>' in verdict.group(2)
    assert f"<strong>To resolve:</strong> {html._e(remedy)}" in verdict.group(2)
    assert f"<li>{html._e(note)}</li>" in verdict.group(2)
    leaves = re.search(r'id="leaves">(.*?)</section>', page, re.S).group(1)
    assert '<tr class="warn"><td class="status"><span class="pill warn">inconclusive (kink)</span>' in leaves
    assert html._e(meaning) in leaves and html._e(remedy) in leaves
    assert "was not verified (the check was INCONCLUSIVE)" in page
    assert 'class="pill bad"' not in page.split('id="sweep"')[0]  # nothing reads as a failure


@DOCS
def test_a_passing_check_renders_no_inconclusive_state(doc):
    v = doc["verdict"]
    assert (v["status"], v["reason"], v["remedy"], v["inconclusive_leaves"]) == ("passed", None, None, [])
    page = report.render(doc, "html")
    assert 'class="card verdict pass"' in page and "To resolve" not in page
    assert "To resolve" not in report.render(doc, "md") and "to resolve" not in report.render(doc, "text")


@pytest.mark.parametrize(
    "status, reason, expect",
    [
        ("pass", "none", ("pass", "ok", "ok")),
        ("fail", "none", ("fail", "bad", "failed")),
        ("inconclusive", "kink", ("kink", "warn", "kink")),
        ("inconclusive", "nonfinite", ("nonfinite", "warn", "non-finite")),
        ("inconclusive", "not_measured", ("not_measured", "warn", "not measured")),
        ("unchecked", "none", ("unchecked", "info", "unchecked")),
    ],
)
def test_outcome_labels(status, reason, expect):
    assert (
        _views.outcome(status, reason),
        _views.tone(status),
        _views.outcome_text(status, reason),
    ) == expect


def test_schema_knows_every_outcome_label():
    defs = report.load_schema()["$defs"]
    assert defs["status"]["enum"] == [s.label for s in fdjax.CheckStatus]
    assert defs["reason"]["enum"] == [r.label for r in fdjax.Reason]
    assert defs["check"]["properties"]["schema"]["const"] == _json.CHECK_SCHEMA
    assert set(defs["check"]["properties"]["mode"]["enum"]) == set(_check.MODES) - {"auto"}


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
    p = Progress("lines", stream=stream, per_chunk=True)  # the live bar's counting
    counted = p.wrap(f)
    with p.stage("grad"):
        g = fdjax.grad(counted, chunk_size=chunk_size)(jnp.linspace(0.0, 1.0, 10))
    np.testing.assert_array_equal(g, fdjax.grad(f, chunk_size=chunk_size)(jnp.linspace(0.0, 1.0, 10)))
    assert p.evaluations >= 21  # 2N perturbed rows (+ padding) and f(x)
    np.testing.assert_array_equal(jax.grad(counted)(jnp.ones(3)), jax.grad(f)(jnp.ones(3)))


def test_progress_disabled_wraps_nothing():
    from fdjax.report._progress import Progress

    f = lambda w: w
    assert Progress("off").wrap(f) is f
