"""A gradient check inside a user's jitted optax train step: what it adds to the compile.

    python -m bench.train_step [--repeats R] [--modes MODE ...] [--out PATH]

A tanh MLP regression loss with N = 1,152 float32 parameters ({"w1": [16, 64], "b1": [64],
"w2": [64]}, batch 64) and an ``optax.adam`` step, jitted. Each figure comes from a fresh
``python -c`` process: the first call of the plain step, then (same process) the first call
of the same step with ``fdjax.check_grad(loss, mode=MODE)(params, ...)`` inside it, whose
verdict the step returns. Compile time is the first call minus a second call. Medians over
``--repeats`` processes; JSON in bench/results/train_step.json. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np, optax
import fdjax
mode = sys.argv[1]
r = np.random.default_rng(0)
p = {"w1": jnp.asarray(r.normal(size=(16, 64)) / 4, jnp.float32), "b1": jnp.zeros(64, jnp.float32),
     "w2": jnp.asarray(r.normal(size=64) / 8, jnp.float32)}
X = jnp.asarray(r.normal(size=(64, 16)), jnp.float32); Y = jnp.asarray(r.normal(size=64), jnp.float32)
def loss(p, X, Y):
    return jnp.mean((jnp.tanh(X @ p["w1"] + p["b1"]) @ p["w2"] - Y) ** 2)
opt = optax.adam(1e-3)
def plain(p, s, X, Y):
    g = jax.grad(loss)(p, X, Y)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s
def checked(p, s, X, Y):
    res = fdjax.check_grad(loss, mode=mode)(p, X, Y)
    p, s = plain(p, s, X, Y)
    return p, s, res.passed
out = {}
for name, step in (("plain", plain), ("checked", checked)):
    fn = jax.jit(step)
    s = opt.init(p)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        jax.block_until_ready(fn(p, s, X, Y))
        times.append(time.perf_counter() - t)
    out[name] = {"first_s": times[0], "second_s": times[1], "compile_s": times[0] - times[1]}
out["passed"] = bool(fn(p, s, X, Y)[2])
print("RESULT " + json.dumps(out))
"""


def _one(mode: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=600, cwd=ROOT, check=True
    )
    line = next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["auto", "directional"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_step.json"))
    a = ap.parse_args(argv)
    start = time.perf_counter()
    rows = []
    for mode in a.modes:
        runs = [_one(mode) for _ in range(a.repeats)]
        row = {
            "mode": mode,
            "n": 1152,
            "plain_compile_s": statistics.median(r["plain"]["compile_s"] for r in runs),
            "checked_compile_s": statistics.median(r["checked"]["compile_s"] for r in runs),
            "checked_step_s": statistics.median(r["checked"]["second_s"] for r in runs),
            "plain_step_s": statistics.median(r["plain"]["second_s"] for r in runs),
            "passed": all(r["passed"] for r in runs),
            "repeats": a.repeats,
        }
        row["ratio"] = row["checked_compile_s"] / row["plain_compile_s"]
        rows.append(row)
        print(
            f"mode={mode:12s} plain step compiles {row['plain_compile_s']:.2f} s, with the check "
            f"{row['checked_compile_s']:.2f} s ({row['ratio']:.1f}×); a checked step runs in "
            f"{row['checked_step_s'] * 1e3:.1f} ms (plain {row['plain_step_s'] * 1e3:.2f} ms); "
            f"passed={row['passed']}"
        )
    doc = {"command": "python -m bench.train_step", "seconds": time.perf_counter() - start, "rows": rows}
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
