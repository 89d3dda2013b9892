"""The package type-checks: ``python -m mypy fdjax`` (configured in pyproject.toml) reports no error."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_mypy_reports_no_errors():
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "fdjax"],
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
g(jnp.ones(3))  # REJECT: grad keeps loss's signature, scale is missing
fdjax.check_grad(loss, jnp.ones(3), 2.0, mode="directonal")  # REJECT: not a mode
"""


def test_user_code_is_typed(tmp_path):
    """What a user writes type-checks, and the two mistakes in it are caught."""
    pytest.importorskip("mypy")
    (tmp_path / "usage.py").write_text(USAGE)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", "usage.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if ": error:" in line]
    rejected = [i + 1 for i, line in enumerate(USAGE.splitlines()) if "REJECT" in line]
    assert sorted(int(line.split(":")[1]) for line in lines) == rejected, proc.stdout
