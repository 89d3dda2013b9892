"""The fdjax pytest plugin: reports of failing gradient checks, a fixture, a marker, a cache.

Registered as the ``pytest11`` entry point ``fdjax``, so pytest loads it in every run where
fdjax is installed. It imports neither JAX nor NumPy until a test uses it, and does nothing
unless asked:

- ``--fdjax-report DIR``: for every ``fdjax.assert_grad`` (or ``fdjax_check``) that fails a
  test by raising ``fdjax.GradientCheckError`` (a FAIL, or an INCONCLUSIVE check that was not
  allowed), a JSON report document and a self-contained HTML page in DIR, named after the
  test; their paths in the ``fdjax`` section of the terminal summary. Without matplotlib (the
  ``[report]`` extra) Markdown replaces the HTML. ``--fdjax-report-all`` also writes the checks
  of ``fdjax_check`` that passed.
- ``--fdjax-cache``, or the ini option ``fdjax_compilation_cache = DIR``: JAX's persistent
  compilation cache for the session (``fdjax.enable_compilation_cache``).
- the ``fdjax_check`` fixture: ``fdjax.assert_grad`` with the defaults of the test's
  ``@pytest.mark.fdjax(...)`` marker, recording every check it runs.

The manual's page is ``docs/testing.md``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from ._check import GradCheck
    from ._check.result import GradientCheckError

MARKER = "fdjax"
_SESSION = "fdjax-session"
#: The name of the ``user_properties`` entry of a test report that lists a written report
#: (it reaches the pytest-xdist controller and the JUnit XML with the report).
PROPERTY = "fdjax_report"
_INI_CACHE = "fdjax_compilation_cache"
_MARKER_HELP = (
    "fdjax(**options): defaults of the fdjax_check fixture in this test: keyword arguments of "
    "fdjax.check_grad (mode, method, precision, margin, ...) and allow_inconclusive"
)
#: What the marker accepts besides the options of ``fdjax.check_grad``.
_MARKER_EXTRA = ("allow_inconclusive",)
_CACHE_WARNINGS = "default:Error (reading|writing) persistent compilation cache entry:UserWarning"


# ----------------------------------------------------------------------------------------------
# Options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fdjax", "fdjax gradient checks")
    group.addoption(
        "--fdjax-report",
        metavar="DIR",
        dest="fdjax_report",
        default=None,
        help="write a JSON and an HTML report (Markdown without matplotlib) of every fdjax.assert_grad "
        "or fdjax_check that fails a test into DIR, named after the test",
    )
    group.addoption(
        "--fdjax-report-all",
        action="store_true",
        dest="fdjax_report_all",
        default=False,
        help="with --fdjax-report: also write the checks of the fdjax_check fixture that passed",
    )
    group.addoption(
        "--fdjax-cache",
        action="store_true",
        dest="fdjax_cache",
        default=False,
        help=f"turn on JAX's persistent compilation cache for the session, in the {_INI_CACHE} folder, "
        "else $FDJAX_CACHE_DIR or ~/.cache/fdjax/jax",
    )
    parser.addini(
        _INI_CACHE,
        "turn on JAX's persistent compilation cache for the session, in this folder (relative to the "
        "ini file); FDJAX_CACHE=0 in the environment turns it off",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    report_dir = _report_dir(config)
    cache_dir = _cache_dir(config)
    if cache_dir is not None:
        # JAX warns when a cache entry cannot be read (another xdist worker is writing it) or
        # written, and compiles instead: shown in the summary, not an error of the test
        # (an ini filter added last wins over the user's "error").
        config.addinivalue_line("filterwarnings", _CACHE_WARNINGS)
    config.pluginmanager.register(
        _Session(report_dir, bool(config.getoption("fdjax_report_all")), cache_dir), _SESSION
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin(_SESSION)
    if session is not None:
        session.close()
        config.pluginmanager.unregister(session, _SESSION)


def _report_dir(config: pytest.Config) -> str | None:
    value = config.getoption("fdjax_report")
    if config.getoption("fdjax_report_all") and value is None:
        raise pytest.UsageError("--fdjax-report-all needs --fdjax-report DIR (the folder to write to)")
    if value is None:
        return None
    if not value.strip():
        raise pytest.UsageError(f"--fdjax-report must be a folder, got {value!r}")
    where = os.path.join(config.invocation_params.dir, os.path.expanduser(value))
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as e:
        raise pytest.UsageError(
            f"--fdjax-report must be a folder that can be created, got {value!r}: {e.strerror or e}"
        ) from None
    return os.path.normpath(where)


def _cache_dir(config: pytest.Config) -> str | None:
    from . import _cache

    ini = str(config.getini(_INI_CACHE) or "").strip()
    if not (ini or config.getoption("fdjax_cache")):
        return None
    try:
        if not _cache.switched_on():
            return None
    except ValueError as e:
        raise pytest.UsageError(f"--fdjax-cache / {_INI_CACHE}: {e}") from None
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        path, what = os.path.join(base, os.path.expanduser(ini)), f"{_INI_CACHE} (ini option)"
    else:
        moved = _cache.ENV_DIR if os.environ.get(_cache.ENV_DIR, "").strip() else "the default folder"
        path, what = None, f"--fdjax-cache: {moved}"
    try:
        return _cache.folder(path, what)
    except (TypeError, ValueError) as e:
        raise pytest.UsageError(str(e)) from None


# ----------------------------------------------------------------------------------------------
# The session: reports and the cache


class _Record:
    """A check the fixture ran, and when."""

    def __init__(self, check: GradCheck, started: float, seconds: float):
        self.check, self.started, self.seconds = check, started, seconds
        self.written = False


class _Session:
    """The plugin's state for one pytest session (registered by ``pytest_configure``)."""

    def __init__(self, report_dir: str | None, report_all: bool, cache_dir: str | None):
        self.report_dir = report_dir
        self.report_all = report_all
        self.cache_dir = cache_dir
        self.records: dict[str, list[_Record]] = {}  # node id -> the fixture's checks
        self.counts: dict[str, int] = {}  # node id -> reports written
        self.entries: list[dict[str, Any]] = []  # what the summary lists
        self._restore: Callable[[], None] | None = None
        if cache_dir is not None:
            from . import _cache

            self._restore = _cache.activate(cache_dir)

    def close(self) -> None:
        """Undo what the session set in JAX (the cache options)."""
        if self._restore is not None:
            self._restore()
            self._restore = None

    def record(self, nodeid: str, check: GradCheck, started: float, seconds: float) -> None:
        self.records.setdefault(nodeid, []).append(_Record(check, started, seconds))

    # -- hooks ---------------------------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        lines = []
        if self.cache_dir is not None:
            lines.append(f"fdjax: JAX compilation cache in {self.cache_dir}")
        if self.report_dir is not None:
            lines.append(f"fdjax: gradient check reports to {self.report_dir}")
        return lines

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        outcome = yield
        report = outcome.get_result()
        records = self.records.get(item.nodeid, [])
        if call.when == "teardown":
            self.records.pop(item.nodeid, None)
        if self.report_dir is None:
            return
        todo: list[tuple[GradCheck, float, float]] = []
        if self.report_all:
            for r in records:
                if not r.written:
                    r.written = True
                    todo.append((r.check, r.started, r.seconds))
        raised = _raised_check(call.excinfo.value if call.excinfo is not None else None)
        if raised is not None and not hasattr(report, "wasxfail"):
            mine = next((r for r in records if r.check is raised), None)
            if mine is None:
                todo.append((raised, call.start, call.duration))
            elif not mine.written:
                mine.written = True
                todo.append((raised, mine.started, mine.seconds))
        for check, started, seconds in todo:
            report.user_properties.append((PROPERTY, self._write(item.nodeid, check, started, seconds)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # here, and not where they are written, so that pytest-xdist's workers report them too
        self.entries.extend(v for k, v in report.user_properties if k == PROPERTY and isinstance(v, dict))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.report_dir is None:
            return
        tr = terminalreporter
        tr.write_sep("=", "fdjax")
        if not self.entries:
            tr.write_line(f"no gradient check to report: nothing written to {_shown(self.report_dir)}")
        for e in self.entries:
            files = [_shown(e[k]) for k in ("html", "md", "json") if e.get(k)]
            tr.write_line(f"{e['status']:<12} {e['test']}")
            tr.write_line(f"{'':<12} {'  '.join(files)}")
            for note in e.get("notes", []):
                tr.write_line(f"{'':<12} note: {note}")

    # -- writing -------------------------------------------------------------------------------

    def _write(self, nodeid: str, check: GradCheck, started: float, seconds: float) -> dict[str, Any]:
        """Write the reports of one check; returns the summary's entry (with notes on what
        could not be written: nothing is lost silently, and pytest does not crash)."""
        assert self.report_dir is not None
        from .report import render

        n = self.counts[nodeid] = self.counts.get(nodeid, 0) + 1
        stem = os.path.join(self.report_dir, report_stem(nodeid) + (f"-{n}" if n > 1 else ""))
        entry: dict[str, Any] = {"test": nodeid, "status": _status(check), "notes": []}
        try:
            doc = document(check, nodeid, started, seconds)
            pages = {"json": render(doc, "json")}
            try:
                pages["html"] = render(doc, "html")
            except ImportError as e:  # no matplotlib: the same report as Markdown
                pages["md"] = render(doc, "md")
                entry["notes"].append(f"{e}; wrote Markdown instead of HTML")
        except Exception as e:  # noqa: BLE001 - a report that cannot be made must not end the run
            entry["notes"].append(f"no report: {type(e).__name__}: {e}")
            return entry
        for suffix, text in pages.items():
            path = f"{stem}.{suffix}"
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
            except OSError as e:
                entry["notes"].append(f"cannot write {path}: {e.strerror or e}")
            else:
                entry[suffix] = path
        return entry


def _raised_check(exc: BaseException | None) -> GradCheck | None:
    """The ``GradCheck`` of a ``GradientCheckError`` (None for anything else)."""
    module = sys.modules.get("fdjax._check.result")  # not imported: no check can have raised
    if module is None or not isinstance(exc, module.GradientCheckError):
        return None
    return cast("GradientCheckError", exc).result


def _status(check: GradCheck) -> str:
    from ._check import CheckStatus

    return CheckStatus(int(check.status)).name


def _shown(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith(os.pardir) else rel


def report_stem(nodeid: str) -> str:
    """The file name (without suffix) of a test's report: its node id, with every character
    other than letters, digits, ``.``, ``-`` and ``_`` replaced by ``_``; a long id is cut and
    ends with a hash of the whole.

    Examples:
        >>> report_stem("tests/test_model.py::TestDense::test_grad[float32-2]")
        'tests_test_model.py_TestDense_test_grad_float32-2'
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._") or "test"
    if len(stem) > 120:
        stem = stem[:111] + "-" + hashlib.sha1(nodeid.encode()).hexdigest()[:8]
    return stem


def document(check: GradCheck, nodeid: str, started: float, seconds: float) -> dict[str, Any]:
    """The report document (schema ``fdjax.report/2``) of one check made in a test: the check
    section, the verdict and the problem's leaves from the ``GradCheck``; no sweep, landscape or
    gradient norms (they need the loss, which the check does not keep)."""
    import types

    from .report import _document, _run

    leaves = tuple(check.leaf_names)
    layout = types.SimpleNamespace(  # what the document reads of the flat arguments
        x=types.SimpleNamespace(dtype=check.dtype),
        size=check.size,
        float_paths=list(leaves),
        float_shapes=list(check.leaf_shapes),
        float_dtypes=[check.dtype] * len(leaves),  # the dtype each leaf was checked in
    )
    job = _run.Job(
        check=True, sweep=False, landscape=False, mode=check.mode, method=check.method, sweep_size=None
    )
    return _document.build(
        fa=layout,
        loss=float(check.value),
        job=job,
        sections={"check": check.to_dict(_run.MAX_ELEMENTS)},
        timings={"check": seconds},
        wall_time=seconds,
        started=started,
        evaluations=None,
        target=nodeid,
        command=f"python -m pytest {_quote(nodeid)}",
        notes=[
            f"the check that {nodeid} made; the step sweep, the gradient norms and the landscape "
            "need the model itself: `fdjax report module:function` makes them"
        ],
    )


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# ----------------------------------------------------------------------------------------------
# The fixture and the marker


class GradientChecker:
    """``fdjax.assert_grad`` with the defaults of the test's ``fdjax`` marker: the value of the
    ``fdjax_check`` fixture.

    ``fdjax_check(fun, *args, **kwargs)`` checks ``jax.grad(fun)`` against finite differences
    as ``fdjax.assert_grad`` does (keyword arguments of ``fdjax.check_grad`` and
    ``allow_inconclusive``; those given here override the marker's) and returns the
    ``GradCheck``, or raises ``fdjax.GradientCheckError``.

    Attributes:
        defaults: the options from ``@pytest.mark.fdjax(...)`` (the closest marker wins).
        results: every ``GradCheck`` this test ran, failing ones included.
    """

    def __init__(self, defaults: dict[str, Any], on_check: Callable[[GradCheck, float, float], None]):
        self.defaults = dict(defaults)
        self.results: list[GradCheck] = []
        self._on_check = on_check

    def __call__(self, fun: Callable, *args: Any, **kwargs: Any) -> GradCheck:
        __tracebackhide__ = True
        from ._check import GradientCheckError, assert_grad

        started, t0 = time.time(), time.perf_counter()
        try:
            result = assert_grad(fun, *args, **{**self.defaults, **kwargs})
        except GradientCheckError as e:
            self._keep(e.result, started, time.perf_counter() - t0)
            raise
        self._keep(result, started, time.perf_counter() - t0)
        return result

    def _keep(self, check: GradCheck, started: float, seconds: float) -> None:
        self.results.append(check)
        self._on_check(check, started, seconds)

    def __repr__(self) -> str:
        return f"GradientChecker(defaults={self.defaults!r}, results={len(self.results)})"


@pytest.fixture
def fdjax_check(request: pytest.FixtureRequest) -> GradientChecker:
    """``fdjax.assert_grad`` with this test's ``@pytest.mark.fdjax(...)`` defaults; it records
    every check, so that ``--fdjax-report-all`` writes the passing ones too."""
    defaults = marker_options(request.node)
    session = request.config.pluginmanager.get_plugin(_SESSION)
    nodeid = request.node.nodeid

    def on_check(check: GradCheck, started: float, seconds: float) -> None:
        if session is not None:
            session.record(nodeid, check, started, seconds)

    return GradientChecker(defaults, on_check)


def marker_options(node: pytest.Item) -> dict[str, Any]:
    """The options of the node's ``fdjax`` markers (the closest one wins for each name),
    validated; a bad one fails the test's setup with a message naming the option, the value
    and what is accepted."""
    import dataclasses
    import inspect

    from ._check import check_grad
    from ._check.api import CheckOptions
    from ._check.inputs import validate_common

    accepted = [
        p.name for p in inspect.signature(check_grad).parameters.values() if p.kind is p.KEYWORD_ONLY
    ] + list(_MARKER_EXTRA)
    merged: dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers(MARKER))):
        if mark.args:
            pytest.fail(
                f"@pytest.mark.{MARKER}(...) takes keyword arguments only ({', '.join(accepted)}), "
                f"got positional {mark.args!r}",
                pytrace=False,
            )
        unknown = sorted(set(mark.kwargs) - set(accepted))
        if unknown:
            pytest.fail(
                f"@pytest.mark.{MARKER}({unknown[0]}=...) is not an option: "
                f"accepted are {', '.join(accepted)}",
                pytrace=False,
            )
        merged.update(mark.kwargs)
    allow = merged.get("allow_inconclusive", False)
    if not isinstance(allow, bool):
        pytest.fail(
            f"@pytest.mark.{MARKER}(allow_inconclusive=...) must be True or False, got {allow!r}",
            pytrace=False,
        )
    fields = {f.name for f in dataclasses.fields(CheckOptions)}
    options = {k: v for k, v in merged.items() if k in fields}
    if "k" in options:
        options.setdefault("mode", "subset")  # k's mode may come with each call
    try:
        validate_common(f"@pytest.mark.{MARKER}", _no_function, CheckOptions(**options))
    except (TypeError, ValueError) as e:
        problem = str(e)
    else:
        return merged
    pytest.fail(problem, pytrace=False)


def _no_function(*args: Any) -> None:
    """Stands for the checked function while the marker's options are validated."""
