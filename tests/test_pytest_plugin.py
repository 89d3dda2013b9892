"""The pytest plugin: reports of failing checks, the fdjax_check fixture and marker, the cache.

Each test runs a small inner pytest session (pytester). The inner sessions run in this
process where they can (JAX is imported once; x64 is on, as in conftest.py, and the inner
modules turn it on too, so that a subprocess session checks in float64 as well) and load
the plugin as a user's pytest does, from its ``pytest11`` entry point (``-p fdjax`` only
makes that explicit where plugin autoloading is off).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import textwrap

import jax
import pytest

from fdjax import pytest_plugin

pytest_plugins = ["pytester"]

INI = "[pytest]\naddopts = --strict-markers -p fdjax\nfilterwarnings = error\n"

MODEL = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp
    import pytest

    import fdjax

    jax.config.update("jax_enable_x64", True)

    @jax.custom_vjp
    def scaled_tanh(z):
        return jnp.tanh(z)

    def _fwd(z):
        return jnp.tanh(z), z

    def _bwd(z, g):
        return (g * (1 - jnp.tanh(z) ** 2) * 1.1,)  # planted bug: 10% too large

    scaled_tanh.defvjp(_fwd, _bwd)

    PARAMS = {"w": jnp.array([0.3, -0.5, 0.8], dtype=jnp.float64)}

    def buggy(p):
        return jnp.sum(scaled_tanh(p["w"]) ** 2)

    def good(p):
        return jnp.sum(jnp.tanh(p["w"]) ** 2)

    def kinked(p):  # |a| at a = 0: every measurement is a kink
        return jnp.sum(jnp.abs(p["a"]))
    """
)


@pytest.fixture
def inner(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(model=MODEL)
    return pytester


def _reports(path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())} if path.exists() else {}


# ------------------------------------------------------------------------------- registration


def test_the_plugin_is_the_pytest11_entry_point_fdjax():
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "fdjax"]
    assert ep.value == "fdjax.pytest_plugin" and ep.load() is pytest_plugin


def test_the_plugin_does_nothing_unless_asked_and_imports_no_jax(pytester):
    """A plain session, in a fresh interpreter: no JAX (numpy may come from other plugins),
    no warning, no fdjax section; the marker is registered (--strict-markers) and the options
    are in --help."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_plain="""
        import sys
        import pytest

        @pytest.mark.fdjax(mode="full")
        def test_nothing_imported():
            heavy = ("jax", "jaxlib", "matplotlib", "fdjax._check", "fdjax.report")
            assert not [m for m in sys.modules if m in heavy or m.startswith(tuple(h + "." for h in heavy))]
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "fdjax" not in result.stdout.str()
    result = pytester.runpytest_subprocess("--help")
    out = result.stdout.str()
    assert "--fdjax-report=DIR" in out and "--fdjax-report-all" in out and "--fdjax-cache" in out
    assert "fdjax_compilation_cache" in out


# ----------------------------------------------------------------------------------- reports


def test_failing_and_inconclusive_checks_write_json_and_html(inner):
    inner.makepyfile(
        test_grads="""
        import jax.numpy as jnp
        import pytest

        import fdjax
        from model import PARAMS, buggy, good, kinked

        def test_buggy():
            fdjax.assert_grad(buggy, PARAMS)

        def test_good():
            fdjax.assert_grad(good, PARAMS)

        def test_caught():
            with pytest.raises(fdjax.GradientCheckError):
                fdjax.assert_grad(buggy, PARAMS)

        def test_kinked():
            fdjax.assert_grad(kinked, {"a": jnp.zeros(3, dtype=jnp.float64)})

        @pytest.mark.fdjax(mode="full", margin=20.0)
        def test_fixture_with_marker(fdjax_check):
            r = fdjax_check(good, PARAMS)
            assert (r.mode, r.margin, bool(r.passed)) == ("full", 20.0, True)
            assert fdjax_check.defaults == {"mode": "full", "margin": 20.0}
            r = fdjax_check(good, PARAMS, mode="directional")  # a call's option wins
            assert r.mode == "directional" and fdjax_check.results[-1] is r

        @pytest.mark.fdjax(allow_inconclusive=True)
        def test_marker_allows_inconclusive(fdjax_check):
            assert not fdjax_check(kinked, {"a": jnp.zeros(3, dtype=jnp.float64)}).passed

        def test_fixture_fails(fdjax_check):
            fdjax_check(buggy, PARAMS)
        """
    )
    result = inner.runpytest_inprocess("--fdjax-report", "reports")
    result.assert_outcomes(passed=4, failed=3)
    written = _reports(inner.path / "reports")
    stems = ["test_grads.py_test_buggy", "test_grads.py_test_kinked", "test_grads.py_test_fixture_fails"]
    assert sorted(written) == sorted(f"{s}.{suffix}" for s in stems for suffix in ("json", "html"))

    doc = json.loads(written["test_grads.py_test_buggy.json"])
    assert doc["schema"] == "fdjax.report/2"
    assert (doc["verdict"]["status"], doc["check"]["status"]) == ("failed", "fail")
    assert doc["verdict"]["failing_leaves"] == ["['w']"] and doc["problem"]["num_parameters"] == 3
    assert doc["problem"]["dtype"] == "float64" and doc["meta"]["target"] == "test_grads.py::test_buggy"
    assert doc["sweep"] is None and doc["landscape"] is None
    html = written["test_grads.py_test_buggy.html"]
    assert html.startswith("<!DOCTYPE html>") and "Gradient check FAILED" in html and "test_buggy" in html
    doc = json.loads(written["test_grads.py_test_kinked.json"])
    assert (doc["verdict"]["status"], doc["verdict"]["reason"]) == ("inconclusive", "kink")
    assert json.loads(written["test_grads.py_test_fixture_fails.json"])["verdict"]["status"] == "failed"

    out = result.stdout.str()
    section = out[out.index("= fdjax =") :]
    for status, stem in zip(("FAIL", "INCONCLUSIVE", "FAIL"), stems, strict=True):
        test = stem.replace("test_grads.py_", "test_grads.py::")
        assert f"{status:<12} {test}" in section
        assert f"reports/{stem}.html  reports/{stem}.json" in section


def test_report_all_writes_passing_checks_and_markdown_without_matplotlib(inner, monkeypatch):
    inner.makepyfile(
        test_all="""
        from model import PARAMS, good

        def test_twice(fdjax_check):
            fdjax_check(good, PARAMS)
            fdjax_check(good, PARAMS, mode="directional")

        def test_no_check():
            pass
        """
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    result = inner.runpytest_inprocess("--fdjax-report", "out/reports", "--fdjax-report-all")
    result.assert_outcomes(passed=2)
    written = _reports(inner.path / "out" / "reports")
    assert sorted(written) == [
        "test_all.py_test_twice-2.json",
        "test_all.py_test_twice-2.md",
        "test_all.py_test_twice.json",
        "test_all.py_test_twice.md",
    ]
    assert json.loads(written["test_all.py_test_twice-2.json"])["check"]["mode"] == "directional"
    assert "Gradient check PASSED" in written["test_all.py_test_twice.md"]
    out = result.stdout.str()
    assert "PASS         test_all.py::test_twice" in out
    assert "need matplotlib" in out and "wrote Markdown instead of HTML" in out


def test_nothing_to_report_is_said(inner):
    inner.makepyfile(test_none="def test_ok():\n    pass\n")
    result = inner.runpytest_inprocess("--fdjax-report", "reports")
    result.assert_outcomes(passed=1)
    assert "no gradient check to report: nothing written to reports" in result.stdout.str()
    assert _reports(inner.path / "reports") == {}


@pytest.mark.slow
def test_reports_from_xdist_workers_reach_the_summary(inner):
    pytest.importorskip("xdist")
    inner.makepyfile(
        test_xdist="""
        import fdjax
        from model import PARAMS, buggy

        def test_buggy():
            fdjax.assert_grad(buggy, PARAMS)
        """
    )
    result = inner.runpytest_subprocess("-n", "1", "--fdjax-report", "reports", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert (
        "reports/test_xdist.py_test_buggy.html  reports/test_xdist.py_test_buggy.json" in result.stdout.str()
    )
    doc = json.loads((inner.path / "reports" / "test_xdist.py_test_buggy.json").read_text())
    assert doc["verdict"]["status"] == "failed" and doc["problem"]["dtype"] == "float64"


def test_report_stem():
    assert (
        pytest_plugin.report_stem("tests/test_m.py::TestA::test_b[x-1]") == "tests_test_m.py_TestA_test_b_x-1"
    )
    long = pytest_plugin.report_stem("t.py::test_" + "a" * 300)
    assert len(long) == 120 and long != pytest_plugin.report_stem("t.py::test_" + "a" * 299)


# ------------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--fdjax-report-all"], {}, "--fdjax-report-all needs --fdjax-report DIR"),
        (["--fdjax-report", ""], {}, "--fdjax-report must be a folder, got ''"),
        (
            ["--fdjax-report", "afile/sub"],
            {},
            "--fdjax-report must be a folder that can be created, got 'afile/sub'",
        ),
        (["--fdjax-cache"], {"FDJAX_CACHE": "maybe"}, "the environment variable FDJAX_CACHE must be one of"),
        (
            ["--fdjax-cache"],
            {"FDJAX_CACHE_DIR": "afile"},
            "--fdjax-cache: FDJAX_CACHE_DIR must be a folder that",
        ),
    ],
)
def test_bad_options_are_usage_errors(args, env, message, pytester, monkeypatch):
    pytester.makeini(INI)
    (pytester.path / "afile").write_text("not a folder")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_bad_marker_options_error_the_test(inner):
    inner.makepyfile(
        test_marks="""
        import pytest
        from model import PARAMS, good

        @pytest.mark.fdjax(mode="fast")
        def test_mode(fdjax_check):
            fdjax_check(good, PARAMS)

        @pytest.mark.fdjax(tolerance=1e-3)
        def test_unknown(fdjax_check):
            fdjax_check(good, PARAMS)

        @pytest.mark.fdjax("full")
        def test_positional(fdjax_check):
            fdjax_check(good, PARAMS)

        @pytest.mark.fdjax(allow_inconclusive="yes")
        def test_allow(fdjax_check):
            fdjax_check(good, PARAMS)
        """
    )
    result = inner.runpytest_inprocess("-rE")
    result.assert_outcomes(errors=4)
    out = result.stdout.str()
    assert (
        "@pytest.mark.fdjax(mode=...) must be one of ['auto', 'full', 'subset', 'directional', 'locate'], "
        "got 'fast'" in out
    )
    assert "@pytest.mark.fdjax(tolerance=...) is not an option: accepted are argnums, " in out
    assert "precision, margin, " in out and "allow_inconclusive" in out and "During handling" not in out
    assert "@pytest.mark.fdjax(...) takes keyword arguments only" in out and "got positional ('full',)" in out
    assert "@pytest.mark.fdjax(allow_inconclusive=...) must be True or False, got 'yes'" in out


def test_marker_accepts_the_options_of_check_grad():
    import inspect

    from fdjax import check_grad

    names = [p.name for p in inspect.signature(check_grad).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert {"mode", "method", "precision", "margin", "key", "step"} <= set(names)
    assert pytest_plugin._MARKER_EXTRA == ("allow_inconclusive",)


# ------------------------------------------------------------------------------------ cache


CACHE_TEST = """
import warnings

import jax
import jax.numpy as jnp

def test_cache():
    assert jax.config.jax_compilation_cache_dir == {expected!r}
    jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.ones(7)).block_until_ready()

def test_a_cache_read_error_is_not_an_error_of_the_test():
    # what JAX warns when another process is writing the entry: it compiles instead
    warnings.warn("Error reading persistent compilation cache entry for 'jit_f': ValueError", UserWarning)
"""


def test_ini_option_turns_the_cache_on_for_the_session_only(pytester):
    where = pytester.path / "jax-cache"
    pytester.makeini(INI + "fdjax_compilation_cache = jax-cache\n")
    pytester.makepyfile(test_cache=CACHE_TEST.format(expected=str(where)))
    before = jax.config.jax_compilation_cache_dir
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=2, warnings=1)
    assert f"fdjax: JAX compilation cache in {where}" in result.stdout.str()
    assert any(p.name.endswith("-cache") for p in where.iterdir())  # the program was written
    assert jax.config.jax_compilation_cache_dir == before  # the session restored JAX's options


def test_fdjax_cache_flag_uses_fdjax_cache_dir_and_fdjax_cache_0_turns_it_off(pytester, monkeypatch):
    where = pytester.path / "moved"
    monkeypatch.setenv("FDJAX_CACHE_DIR", str(where))
    pytester.makeini(INI)
    pytester.makepyfile(test_cache=CACHE_TEST.format(expected=str(where)))
    pytester.runpytest_inprocess("--fdjax-cache").assert_outcomes(passed=2, warnings=1)
    assert any(p.name.endswith("-cache") for p in where.iterdir())
    monkeypatch.setenv("FDJAX_CACHE", "0")  # off: and the warning filter is the user's again
    pytester.makepyfile(test_cache=CACHE_TEST.format(expected=None))
    pytester.runpytest_inprocess("--fdjax-cache").assert_outcomes(passed=1, failed=1)
