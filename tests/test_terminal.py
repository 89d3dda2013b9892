"""The fdjax command as a person runs it: on a terminal (a pseudo-terminal), piped, and quiet.

Every job subcommand runs in a fresh process with all of its stages. On a terminal the
progress bar runs (rich); piped, one line per stage goes to stderr; with -q nothing but a
document asked for reaches stdout. Timings are not asserted (machines are shared); the
order and content of what is printed are.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time

import pytest

from fdjax.cli import main
from tests.test_cli import TINY

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
STAGE = re.compile(r"^fdjax: (check|sweep|landscape|slice)\s+([\d,]+) evaluations", re.M)


def _env(cache) -> dict[str, str]:
    """The child's environment: the command's persistent compilation cache on (its default),
    in ``cache``, a folder of this test session (nothing is written to ~/.cache)."""
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(JAX_PLATFORMS="cpu", COLUMNS="120", TERM="xterm-256color", FDJAX_CACHE="1")
    env.update(FDJAX_CACHE_DIR=str(cache))
    return env


@pytest.fixture(autouse=True)
def _no_compilation_cache(monkeypatch):
    """In this process the command's persistent compilation cache stays off: it would change
    JAX's options for the other tests, and write to ~/.cache."""
    monkeypatch.setenv("FDJAX_CACHE", "0")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The children's compilation cache, shared by this module's commands: a program one
    command compiled (the check of tiny_model:problem, say) is read back by the next."""
    return tmp_path_factory.mktemp("fdjax-cache")


def run_in_pty(argv: list[str], cwd, cache, timeout: float = 300) -> tuple[int, str]:
    """``python -m fdjax *argv`` with stdin, stdout and stderr on one pseudo-terminal.

    The child is started by ``subprocess`` (fork + exec in C), not ``pty.fork``: forking
    this multithreaded, JAX-importing process from Python would run JAX's at-fork hook.
    """
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fdjax", *argv],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=_env(cache),
        start_new_session=True,
        close_fds=True,
    )
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"fdjax {argv} did not finish in {timeout} s:\n" + b"".join(chunks).decode())
        ready, _, _ = select.select([leader], [], [], 1.0)
        if not ready:
            if proc.poll() is not None and not select.select([leader], [], [], 0)[0]:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    code = proc.wait(timeout=30)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "\n")
    return code, text


def run_piped(argv: list[str], cwd, cache, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fdjax", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(cache),
        timeout=timeout,
    )


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "tiny_model.py").write_text(TINY)
    return tmp_path


FAST_REPORT = ["--sweep-size", "8", "--resolution", "5"]


@pytest.mark.slow
def test_main_job_on_a_terminal(tmp_path, cache):
    """`fdjax` alone on a TTY: every stage under the bar, the summary, the report file."""
    code, text = run_in_pty([], tmp_path, cache)
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "Error" not in text, text[-3000:]
    assert text.lstrip().startswith("report fdjax.examples:cnn, writing fdjax-report.html")
    for stage in ("import JAX", "check", "sweep", "landscape", "slice"):
        assert re.search(rf"^{stage}\b", text, re.M), (stage, text[-3000:])
    assert "Gradient check PASSED" in text and "Step sweep" in text and "wrote fdjax-report.html" in text
    assert (tmp_path / "fdjax-report.html").stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, code, expect",
    [
        (["check", "tiny_model:problem"], 0, "Gradient check PASSED"),
        (["check", "tiny_model:buggy"], 1, "Gradient check FAILED"),
        (["check", "tiny_model:kinked"], 3, "Gradient check INCONCLUSIVE"),
        (["sweep", "tiny_model:problem"], 0, "Step sweep"),
        (["report", "tiny_model:problem", "-o", "r.json", *FAST_REPORT], 0, "wrote r.json"),
        (["report", "tiny_model:buggy", "-o", "r.md", *FAST_REPORT], 1, "wrote r.md"),
        (
            ["calc", "--theta", "0.75", "--eps", "0.001", "--J-plus", "0.188999", "--J-minus", "0.186001"],
            0,
            "1.499",
        ),
    ],
)
def test_each_subcommand_on_a_terminal(argv, code, expect, tiny, cache):
    got, text = run_in_pty(argv, tiny, cache)
    assert got == code, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert expect in text
    if argv[0] in ("check", "report"):
        assert re.search(r"^check\s+[\d,]+ evaluations", text, re.M), text[-3000:]
    if argv[0] == "report":
        assert re.search(r"^sweep\s+[\d,]+ evaluations", text, re.M)
        assert re.search(r"^landscape\s+[\d,]+ evaluations", text, re.M)
        assert (tiny / argv[argv.index("-o") + 1]).exists()


def test_piped_report_prints_one_line_per_stage_to_stderr(tiny, cache):
    r = run_piped(["report", "tiny_model:problem", "-o", "r.json", *FAST_REPORT], tiny, cache)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "fdjax: report tiny_model:problem, writing r.json"
    assert all(line.startswith("fdjax: ") for line in lines), r.stderr
    stages = STAGE.findall(r.stderr)
    assert [s for s, _ in stages] == ["check", "sweep", "landscape", "slice"]
    # the counts are the evaluations the document records, stage by stage
    doc = json.loads((tiny / "r.json").read_text())
    assert sum(int(n.replace(",", "")) for _, n in stages) <= doc["meta"]["evaluations"]
    assert "Gradient check PASSED" in r.stdout and "wrote r.json" in r.stdout


@pytest.mark.parametrize("command", ["check", "sweep", "report"])
def test_quiet_prints_nothing_but_what_was_asked(command, tiny, monkeypatch, capsys):
    """-q: nothing on stdout or stderr, unless a document is asked for with --format."""
    monkeypatch.chdir(tiny)
    monkeypatch.syspath_prepend(str(tiny))
    extra = ["-o", "out.json"] if command == "report" else []
    if command != "check":
        extra += FAST_REPORT[:2]
    assert main([command, "tiny_model:problem", "-q", *extra]) == 0
    assert capsys.readouterr() == ("", "")
    if command == "report":
        assert json.loads((tiny / "out.json").read_text())["verdict"]["passed"] is True
        return
    assert main([command, "tiny_model:problem", "-q", "--format", "json", *extra]) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out)["schema"].startswith("fdjax.report/")


@pytest.mark.parametrize("target, code", [("buggy", 1), ("kinked", 3)])
def test_quiet_check_exits_with_its_verdict_and_no_output(target, code, tiny, monkeypatch, capsys):
    """-q: a failed check exits 1, an inconclusive one 3, in silence; --exit-zero exits 0."""
    monkeypatch.chdir(tiny)
    monkeypatch.syspath_prepend(str(tiny))
    assert main(["check", f"tiny_model:{target}", "-q"]) == code
    assert capsys.readouterr() == ("", "")
    assert main(["check", f"tiny_model:{target}", "-q", "--exit-zero"]) == 0
    assert capsys.readouterr() == ("", "")


def test_report_of_a_nan_loss_is_written_and_says_why(tiny, monkeypatch, capsys):
    (tiny / "nan_model.py").write_text(
        "import jax.numpy as jnp\n"
        "def loss(p):\n"
        "    return jnp.sum(jnp.log(p))\n"
        "PARAMS = jnp.array([1.0, -2.0, 3.0])\n"
    )
    monkeypatch.chdir(tiny)
    monkeypatch.syspath_prepend(str(tiny))
    # f(x) is NaN: nothing can be verified, so the check is inconclusive (exit 3), not failed.
    assert main(["report", "nan_model:loss", "--params", "nan_model:PARAMS", "-o", "nan.json"]) == 3
    out, err = capsys.readouterr()
    doc = json.loads((tiny / "nan.json").read_text())
    assert doc["verdict"]["passed"] is False and doc["sweep"] is None
    assert (doc["verdict"]["status"], doc["verdict"]["reason"]) == ("inconclusive", "nonfinite")
    assert any("the loss is nan at the point itself" in n for n in doc["notes"])
    assert "non-finite" in out and "wrote nan.json" in out


def test_help_and_calc_do_not_import_jax(tmp_path, cache):
    """`fdjax --help` and `fdjax calc` are pure Python: JAX is never imported."""
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['fdjax'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('fdjax', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('JAX-LOADED' if any(m == 'jax' or m.startswith(('jax.', 'jaxlib')) for m in sys.modules) "
        "else 'NO-JAX', file=sys.stderr)\n"
    )
    for argv in (
        ["--help"],
        ["check", "--help"],
        ["calc", "--eps", "0.5", "--J-plus", "2.25", "--J-minus", "0.25"],
    ):
        r = subprocess.run(
            [sys.executable, "-c", probe, *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=_env(cache),
        )
        assert r.returncode == 0, r.stderr
        assert r.stderr.strip().endswith("NO-JAX"), (argv, r.stderr)
