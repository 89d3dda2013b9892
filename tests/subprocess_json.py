"""Runs in a fresh interpreter: for device-count flags and peak-memory measurements that
must not share this process's JAX state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Prepend to a script that calls ``peak_rss()`` (bytes, the process's VmHWM).
RSS_PRELUDE = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom bench._rss import peak_rss\n"


def run_command(args: list[str], env: dict | None = None, timeout: float = 600, cwd=None):
    """Run ``python *args``; assert it exits 0 and return the CompletedProcess.

    The parent's ``XLA_FLAGS`` are dropped so that only ``env`` sets the device count.
    """
    full = dict(os.environ)
    full.pop("XLA_FLAGS", None)
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full, timeout=timeout, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def run_json(code: str, env: dict | None = None, timeout: float = 600) -> dict:
    """Run ``code`` with ``python -c``; it must print one JSON object as its last line.

    The parent's ``XLA_FLAGS`` are dropped so that only ``env`` sets the device count.
    """
    full = dict(os.environ)
    full.pop("XLA_FLAGS", None)
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
