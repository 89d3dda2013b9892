"""The package type-checks: ``python -m mypy fdjax`` and ``pyright`` (both configured in
pyproject.toml) report no error, and user code is typed for both: what a user writes is
accepted and the mistakes in USAGE (its ``# REJECT`` lines) are reported, nothing else."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


#: Both mypy tests run on one worker, in this order, with one cache: the second reads the
#: analysis of fdjax and JAX that the first wrote (their options are the same: pyproject.toml's).
MYPY = pytest.mark.xdist_group("mypy")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("mypy_cache"))


@MYPY
def test_mypy_reports_no_errors(mypy_cache):
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", mypy_cache, "fdjax"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mypy fdjax failed:\n{proc.stdout}{proc.stderr}"


USAGE = """
import jax.numpy as jnp
import fdjax

def loss(p: jnp.ndarray, scale: float) -> jnp.ndarray:
    return jnp.sum(p**2) * scale

g = fdjax.grad(loss)
g(jnp.ones(3), 2.0)
fdjax.jacobian(loss)(jnp.ones(3), 2.0)
r = fdjax.check_grad(loss, jnp.ones(3), 2.0, mode="directional")
status: fdjax.CheckStatus = fdjax.CheckStatus(int(r.elements.status[0]))
r2: fdjax.GradCheck = fdjax.check_grad(loss, mode="full")(jnp.ones(3), 2.0)
r3: fdjax.GradCheck = fdjax.check_grad(loss, jnp.ones(3), 2.0, has_aux=False, precision="native")
g(jnp.ones(3))  # REJECT: grad keeps loss's signature, scale is missing
fdjax.check_grad(loss, jnp.ones(3), 2.0, mode="directonal")  # REJECT: not a mode
fdjax.check_grad(loss, mode="directonal")  # REJECT: not a mode (the transform form)
fdjax.check_grad(loss, jnp.ones(3), 2.0, precision="float16")  # REJECT: not a precision
r4: fdjax.GradCheck = fdjax.check_grad(loss, mode="full")  # REJECT: the transform form is not a GradCheck
"""

#: The lines of USAGE (1-based) that a type checker must reject, and only these.
REJECTED = [i + 1 for i, line in enumerate(USAGE.splitlines()) if "REJECT" in line]


@MYPY
def test_user_code_is_typed(tmp_path, mypy_cache):
    """What a user writes type-checks, and the mistakes in it (its REJECT lines) are caught."""
    pytest.importorskip("mypy")
    usage = tmp_path / "usage.py"
    usage.write_text(USAGE)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", mypy_cache, str(usage)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert sorted(int(line.split(":")[1]) for line in lines) == REJECTED, proc.stdout


def _pyright() -> str:
    """The ``pyright`` command (on PATH or next to this Python), else the test is skipped.

    Not in the ``[test]`` extra: the pip package fetches Node on its first run, which CI may
    not reach; a developer or a CI job with pyright installed runs these checks.
    """
    path = os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("pyright", path=path)
    if exe is None:
        pytest.skip("could not find the pyright command")
    return exe


def _run_pyright(args: list[str], cwd: pathlib.Path) -> tuple[list[dict], str]:
    """Pyright's error diagnostics (``--outputjson``) for ``args``, and them as text."""
    proc = subprocess.run(
        [_pyright(), "--outputjson", "--pythonpath", sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright did not run (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    text = "\n".join(
        f"{d.get('file', '?')}:{d['range']['start']['line'] + 1}: {d['message']}" for d in errors
    )
    return errors, text


def test_pyright_reports_no_errors():
    """``pyright`` in the repository root (configured in pyproject.toml) checks fdjax/."""
    errors, text = _run_pyright([], ROOT)
    assert not errors, f"pyright failed:\n{text}"


def test_user_code_is_typed_for_pyright(tmp_path):
    """The same user code under pyright: accepted, and the same mistakes caught."""
    (tmp_path / "usage.py").write_text(USAGE)
    errors, text = _run_pyright(["usage.py"], tmp_path)
    # pyright may report one mistake twice (the call and the argument): compare the lines
    assert sorted({d["range"]["start"]["line"] + 1 for d in errors}) == REJECTED, text
