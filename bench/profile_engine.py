"""Where the time of one engine call goes: XLA's per-fusion profile, next to the GEMM alone.

    python bench/profile_engine.py [--n 100000] [--rows 2048] [--chunk auto]

Runs the engine on a central-difference plan over the tanh MLP of bench/fd_throughput.py
under ``jax.profiler.trace`` and sums the device time of every XLA fusion (the matmuls
are the ``ynn_fusion``/``dot`` entries, the perturbed copy of the weights in the GEMM's
layout is ``copy_bitcast_fusion``). It also times the first layer's merged GEMM alone,
[64, d] × [d, B·d], and a square matmul, interleaved, so the ceiling set by the GEMM's
own rate is visible.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as C  # noqa: E402

C.setup()

import jax  # noqa: E402

from bench.fd_throughput import engine_plan  # noqa: E402
from bench.run import spread_rows  # noqa: E402
from fdjax import _engine  # noqa: E402


def fusion_profile(call) -> dict[str, float]:
    """Seconds per XLA op name (summed over calls) for one run of ``call``."""
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            jax.block_until_ready(call())
        path = glob.glob(f"{d}/**/*.json.gz", recursive=True)[0]
        with gzip.open(path) as fh:
            events = json.load(fh)
    events = events["traceEvents"] if isinstance(events, dict) else events
    total: collections.Counter = collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and ("fusion" in name or name.startswith(("dot", "copy", "transpose"))):
            total[name] += e.get("dur", 0) / 1e6
    return dict(total)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--rows", type=int, default=2048)
    p.add_argument("--chunk", default="auto")
    args = p.parse_args(argv)
    loss, params, X, Y, flat_loss, x0, flops = C.mlp_problem(args.n)
    N, d = int(x0.shape[0]), C.width_for(args.n)
    rows = spread_rows(N, args.rows, x0.dtype)
    b = engine_plan(flat_loss, x0, args.rows)["chunk_size"] if args.chunk == "auto" else int(args.chunk)
    opts = _engine.Options(chunk_size=b, devices=1)
    run = jax.jit(lambda x, r: _engine.evaluate(flat_loss, x, _engine.Basis(), r, opts))
    engine = lambda: run(x0, rows)  # noqa: E731
    jax.block_until_ready(engine())
    prof = fusion_profile(engine)
    busy = sum(prof.values())
    print(f"N = {N:,} (d = {d}), {args.rows} rows, chunk B = {b}: per-op device time")
    for k, v in sorted(prof.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {k:32s} {1e3 * v:9.2f} ms  {100 * v / busy:5.1f}%")
    a = jax.random.normal(jax.random.key(0), (64, d), x0.dtype)
    w = jax.random.normal(jax.random.key(1), (d, b * d), x0.dtype)
    sq = jax.random.normal(jax.random.key(2), (1024, 1024), x0.dtype)
    mm = jax.jit(lambda a, b: a @ b)
    reps = max(1, int(2e9 / (2 * 64 * d * b * d)))

    def gemm():
        r = None
        for _ in range(reps):
            r = mm(a, w)
        return r

    times = C.interleaved({"engine": engine, "gemm": gemm, "square": lambda: mm(sq, sq)}, 7)
    g_engine = args.rows * flops / C.median(times["engine"]) / 1e9
    g_gemm = reps * 2 * 64 * d * b * d / C.median(times["gemm"]) / 1e9
    g_sq = 2 * 1024**3 / C.median(times["square"]) / 1e9
    print(
        f"engine {g_engine:.1f} GFLOP/s; merged GEMM [64,{d}]x[{d},{b * d}] alone {g_gemm:.1f}; "
        f"1024³ matmul {g_sq:.1f} (medians of 7 interleaved rounds)"
    )


if __name__ == "__main__":
    main()
