"""Shared pieces of the benchmarks: the model family, timers, the device's peak rates, output.

Benchmarks are not tests: they print figures and never assert on time. Timings on a
shared machine are noisy, so contenders are interleaved (round-robin, one call each per
round) and medians are reported; the machine's load average is recorded with them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

RESULTS = Path(__file__).resolve().parent / "results"


def setup() -> None:
    """float64 on; on GPU/TPU matmuls at full precision (FD needs every bit; no TF32)."""
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")


# ------------------------------------------------------------------------------------------
# The model: a one-hidden-layer tanh MLP (d inputs, d hidden, 10 classes), softmax
# cross-entropy on a batch of 64. N = d² + 11·d + 10 parameters.

WIDTHS = {1_000: 28, 10_000: 96, 100_000: 310, 1_000_000: 995}


def width_for(n: int) -> int:
    """Width d with d² + 11d + 10 ≈ n."""
    return WIDTHS.get(n) or int(round((-11 + (121 - 4 * (10 - n)) ** 0.5) / 2))


def mlp_problem(n: int, batch: int = 64, dtype=jnp.float64):
    """``(loss, params, X, Y, flat_loss, x0, matmul_flops_per_eval)`` for N ≈ n."""
    from fdjax import examples

    d = width_for(n)
    sizes = (d, d, 10)
    loss, params, X, Y = examples.mlp(sizes, batch, dtype)
    x0, unravel = ravel_pytree(params)

    def flat_loss(v):
        return loss(unravel(v), X, Y)

    flops = 2 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return loss, params, X, Y, flat_loss, x0, flops


# ------------------------------------------------------------------------------------------
# Timing


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call, waiting for the result."""
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Round-robin timing: each round calls every contender once, in a new order each round
    (a seeded shuffle: a rotation would keep every contender right after the same one, and a
    contender that leaves the caches cold would slow its successor in every round)."""
    names = list(contenders)
    times: dict[str, list[float]] = {k: [] for k in names}
    order = np.random.default_rng(0)
    for _ in range(repeats):
        for i in order.permutation(len(names)):
            times[names[i]].append(timed(contenders[names[i]]))
    return times


def median(xs) -> float:
    return float(statistics.median(xs))


# ------------------------------------------------------------------------------------------
# Device peaks


def matmul_sizes() -> tuple[int, ...]:
    return (256, 512, 1024) if jax.default_backend() == "cpu" else (2048, 4096, 8192)


def peak_contenders(dtype=jnp.float64) -> dict[str, tuple[Callable[[], object], float]]:
    """Square matmuls (GEMM) of several sizes: name -> (call, FLOPs per call)."""
    out = {}
    f = jax.jit(lambda a, b: a @ b)
    for n in matmul_sizes():
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        b = jax.random.normal(jax.random.key(1), (n, n), dtype)
        reps = max(1, int(2e9 / (2 * n**3))) if jax.default_backend() == "cpu" else 10

        def call(a=a, b=b, reps=reps):
            r = None
            for _ in range(reps):
                r = f(a, b)
            return r

        jax.block_until_ready(call())
        out[f"matmul{n}"] = (call, 2.0 * n**3 * reps)
    return out


def peak_gflops(times: dict[str, list[float]], flops: dict[str, float]) -> tuple[float, dict]:
    """Peak = the best median rate over the matmul sizes; also returns every size's rate."""
    rates = {k: flops[k] / median(times[k]) / 1e9 for k in flops}
    return max(rates.values()), rates


def bandwidth_contender(nbytes: int = 256 * 2**20):
    """``y = 2x + 1`` over nbytes of float32: (call, bytes moved per call)."""
    n = nbytes // 4
    x = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda x: 2 * x + 1)
    jax.block_until_ready(f(x))
    return (lambda: f(x)), 2.0 * nbytes


# ------------------------------------------------------------------------------------------
# Machine and output


def machine() -> dict:
    info = {
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": _cpu_model(),
    }
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict, out: str | Path | None = None) -> Path:
    """Write ``payload`` to ``out`` (default: bench/results/``name``)."""
    path = RESULTS / name if out is None else Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_jsonable))
    return path


def publish(name: str, payload: dict, out: str | Path | None, table: str) -> Path:
    """``write_json``, then (when the default JSON was written) the docs table ``table`` of
    ``bench/tables.py``, generated from that JSON, printed; the path goes to stderr."""
    path = write_json(name, payload, out)
    if out is None:
        from bench.tables import TABLES

        print(TABLES[table]())
    print(f"\nwrote {path}", file=sys.stderr)
    return path


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def run_python(code: str, env: dict | None = None, timeout: float = 1800) -> dict:
    """Run ``code`` in a fresh interpreter; it must print one JSON line last."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
