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
