"""FD gradient throughput: fdjax.grad against a per-element loop and the batched-eval limit.

    python bench/fd_throughput.py [--sizes 1000 10000 100000] [--repeats 3] [--quick]

The loss is a one-hidden-layer tanh MLP (d inputs, d hidden units, 10 classes) with
softmax cross-entropy on a batch of 64 in float64; d is chosen so that N = d² + 11d + 10
is close to 1e3, 1e4, 1e5. For each N, in one process, interleaved round-robin with
median of the repeats:

- ``loop``: a Python loop that perturbs a NumPy parameter vector in place and calls the
  jitted loss twice per parameter (what per-element gradient checkers do). At N ≥ 1e5 it
  is timed on a subset of the parameters and extrapolated to 2N calls (marked ``*``).
- ``fdjax``: ``fdjax.grad(loss, strategy="dense")(params, X, Y)``, central differences
  (2N perturbed evaluations plus f(x) once, and the NaN checks): the dense path, every row
  batching the whole of x (the engine's throughput workload; the structure-aware
  strategies, the default, are benchmarked by bench/strategies.py).
- ``limit``: the loss vmapped over 2N arbitrary parameter vectors given as a precomputed
  batch, in the chunks fdjax chose (``jax.lax.map`` over chunks of B); the vectors come
  from a pool of min(2N, 256 MiB) distinct vectors, cycled (2N full copies at N = 1e5
  would be 160 GB).
- ``peak``: float64 square matmuls (256, 512, 1024) in the same rounds; the peak is the
  best median rate. Achieved GFLOP/s count the matmul FLOPs of 2N evaluations,
  2·64·(d² + 10d) each.

Compile time is ``jax.jit(fdjax.grad(loss)).lower(...).compile()`` with the engine's cost
cache cleared: what a first call pays on top of a warm one (the first call minus the
median warm call is recorded too, but at N = 1e5 a call takes tens of seconds and that
difference drowns in the machine's noise). A last check runs a 1e4-row plan over a
1e6-parameter MLP in a fresh process and reports its peak RSS (VmHWM).
Writes bench/results/fd_throughput.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as C  # noqa: E402

C.setup()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fdjax  # noqa: E402
from fdjax import _engine  # noqa: E402

POOL_BYTES = 256 * 2**20


def engine_plan(flat_loss, x0, num_rows, opts=None) -> dict:
    """The engine's chunk plan for a Basis plan of num_rows rows (traced, not run)."""
    opts = _engine.Options(devices=1) if opts is None else opts
    rows = {"index": jnp.zeros(num_rows, jnp.int32), "coeff": jnp.zeros(num_rows, x0.dtype)}
    plan = {}

    def spy(x, r):
        plan.update(_engine.chunk_plan(flat_loss, x, _engine.Basis(), r, opts))
        return x

    jax.eval_shape(spy, x0, rows)
    return plan


def make_limit(flat_loss, x0, num_rows: int, b: int, devices: int = 1):
    """f vmapped over num_rows precomputed vectors in chunks of b (a cycled pool).

    With several devices the chunks are split over a 1-D mesh as the engine splits its
    rows (the pool is replicated): the same evaluations, the same chunks per device.
    """
    n = x0.shape[0]
    per_device = -(-num_rows // devices)
    n_chunks = -(-per_device // b)
    pool_chunks = max(1, min(n_chunks * devices, POOL_BYTES // (b * n * x0.dtype.itemsize)))
    noise = jax.random.normal(jax.random.key(0), (pool_chunks, b, n), x0.dtype)
    pool = jax.block_until_ready(x0[None, None] + 1e-3 * noise)
    del noise
    one_chunk = jax.vmap(flat_loss)

    def chunks(pool, first):
        return jax.lax.map(lambda i: one_chunk(pool[(first + i) % pool_chunks]), jnp.arange(n_chunks))

    if devices == 1:
        limit = jax.jit(lambda pool: chunks(pool, 0))
    else:
        from jax.sharding import Mesh, PartitionSpec as P

        mesh = Mesh(np.asarray(jax.devices()[:devices], dtype=object), ("rows",))
        body = lambda pool: chunks(pool, jax.lax.axis_index("rows") * n_chunks)  # noqa: E731
        limit = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=P(), out_specs=P("rows"), check_vma=False))
    return (lambda: limit(pool)), pool_chunks * b


def compile_time(build) -> float:
    """Seconds to trace, lower and compile (the engine's one-row measurement included)."""
    from fdjax._engine import plan as _plan

    _plan._COSTS.clear()
    t0 = time.perf_counter()
    build()
    return time.perf_counter() - t0


def make_loop(flat_loss, x0, n_params: int):
    """Per-element central differences over the first n_params parameters (NumPy x)."""
    f = jax.jit(flat_loss)
    x = np.array(x0)
    h = np.cbrt(np.finfo(x.dtype).eps) * np.maximum(np.abs(x), 1.0)
    float(f(x))

    def run():
        g = np.empty(n_params)
        for i in range(n_params):
            old = x[i]
            x[i] = old + h[i]
            fp = float(f(x))
            x[i] = old - h[i]
            fm = float(f(x))
            x[i] = old
            g[i] = (fp - fm) / (2 * h[i])
        return g

    return run


def bench_size(n: int, repeats: int, loop_full_max: int, peaks: dict) -> dict:
    loss, params, X, Y, flat_loss, x0, flops = C.mlp_problem(n)
    N = int(x0.shape[0])
    R = 2 * N
    grad = fdjax.grad(loss, devices=1, strategy="dense")
    compile_s = compile_time(lambda: jax.jit(grad).lower(params, X, Y).compile())
    t0 = time.perf_counter()
    jax.block_until_ready(grad(params, X, Y))
    first_fd = time.perf_counter() - t0
    plan = engine_plan(flat_loss, x0, R)
    b = plan["chunk_size"]
    limit, pool_rows = make_limit(flat_loss, x0, R, b)
    t0 = time.perf_counter()
    jax.block_until_ready(limit())
    first_limit = time.perf_counter() - t0
    loop_params = N if N <= loop_full_max else max(200, loop_full_max // 20)
    loop = make_loop(flat_loss, x0, loop_params)
    contenders = {"fdjax": lambda: grad(params, X, Y), "limit": limit, "loop": loop}
    contenders.update({k: v[0] for k, v in peaks.items()})
    times = C.interleaved(contenders, repeats)
    t_fd, t_lim = C.median(times["fdjax"]), C.median(times["limit"])
    peak, _ = C.peak_gflops({k: times[k] for k in peaks}, {k: v[1] for k, v in peaks.items()})
    t_loop = C.median(times["loop"]) * N / loop_params
    useful = R * flops
    return {
        "N": N,
        "d": C.width_for(n),
        "rows": R,
        "chunk_size": b,
        "chunks": plan["chunks_per_device"],
        "row_bytes": plan["row_cost"].bytes if plan["row_cost"] else None,
        "row_bytes_source": plan["row_cost"].source if plan["row_cost"] else None,
        "limit_pool_rows": pool_rows,
        "flops_per_eval": flops,
        "loop_s": t_loop,
        "loop_extrapolated": loop_params < N,
        "loop_params_timed": loop_params,
        "fdjax_s": t_fd,
        "limit_s": t_lim,
        "fdjax_over_limit": t_fd / t_lim,
        "loop_over_fdjax": t_loop / t_fd,
        "fdjax_gflops": useful / t_fd / 1e9,
        "peak_gflops_same_rounds": peak,
        "pct_peak": 100 * useful / t_fd / 1e9 / peak,
        "limit_gflops": useful / t_lim / 1e9,
        "compile_fdjax_s": compile_s,
        "first_minus_warm_fdjax_s": first_fd - t_fd,
        "compile_limit_s": first_limit - t_lim,
        "best_fdjax_over_limit": min(times["fdjax"]) / min(times["limit"]),
        "best_fdjax_gflops": useful / min(times["fdjax"]) / 1e9,
        "loadavg_after": C.machine().get("loadavg"),
        "times": {k: times[k] for k in ("fdjax", "limit", "loop")},
        "peak_times": {k: times[k] for k in peaks},
    }


MEMORY_CHECK = r"""
import json, resource, time, sys
sys.path.insert(0, {root!r})
from bench import _common as C
from bench._rss import peak_rss
C.setup()
import jax, jax.numpy as jnp
from fdjax import _engine
loss, params, X, Y, flat_loss, x0, flops = C.mlp_problem({n})
N = int(x0.shape[0])
jax.block_until_ready(flat_loss(x0))
base = peak_rss()
R = {rows}
rows = {{"index": (jnp.arange(R, dtype=jnp.int32) * (N // R)).astype(jnp.int32),
        "coeff": jnp.full((R,), 1e-5, x0.dtype)}}
run = jax.jit(lambda x, r: _engine.evaluate(flat_loss, x, _engine.Basis(), r, _engine.Options(devices=1)))
t = time.perf_counter(); out = jax.block_until_ready(run(x0, rows)); t = time.perf_counter() - t
peak = peak_rss()
plan = {{}}
def spy(x, r):
    plan.update(_engine.chunk_plan(flat_loss, x, _engine.Basis(), r, _engine.Options(devices=1))); return x
jax.eval_shape(spy, x0, rows)
print(json.dumps({{"N": N, "rows": R, "peak_rss_bytes": peak, "rss_before_plan_bytes": base,
                  "seconds_incl_compile": t, "gflops": R * flops / t / 1e9, "chunk_size": plan["chunk_size"],
                  "row_bytes": plan["row_cost"].bytes, "finite": bool(jnp.all(jnp.isfinite(out)))}}))
"""


def memory_check(n: int = 1_000_000, rows: int = 10_000) -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    return C.run_python(MEMORY_CHECK.format(root=root, n=n, rows=rows))


def report(results: list[dict], peak: float, rates: dict, mem: dict | None) -> str:
    header = [
        "N",
        "loop (s)",
        "fdjax (s)",
        "limit (s)",
        "fdjax/limit",
        "loop/fdjax",
        "fdjax GFLOP/s",
        "limit GFLOP/s",
        "fdjax % of peak (GFLOP/s)",
        "chunk B",
        "compile (s)",
    ]
    rows = []
    for r in results:
        star = "*" if r["loop_extrapolated"] else ""
        rows.append(
            [
                f"{r['N']:,}",
                f"{r['loop_s']:.3g}{star}",
                r["fdjax_s"],
                r["limit_s"],
                r["fdjax_over_limit"],
                r["loop_over_fdjax"],
                r["fdjax_gflops"],
                r["limit_gflops"],
                f"{r['pct_peak']:.0f}% of {r['peak_gflops_same_rounds']:.0f}",
                r["chunk_size"],
                r["compile_fdjax_s"],
            ]
        )
    text = [C.markdown_table(header, rows)]
    text.append(
        f"\nPeak float64 matmul: {peak:.1f} GFLOP/s over the whole run (best median of "
        + ", ".join(f"{k[6:]}³: {v:.1f}" for k, v in rates.items())
        + "); each row's % of peak uses the peak measured in that row's own rounds. "
        "`*`: loop timed on a subset of parameters and extrapolated to 2N calls."
    )
    if mem:
        text.append(
            f"Memory: a {mem['rows']:,}-row plan over N = {mem['N']:,} "
            f"(float64 MLP, chunk {mem['chunk_size']}) "
            f"peaked at {mem['peak_rss_bytes'] / 2**30:.2f} GiB RSS "
            f"({mem['rss_before_plan_bytes'] / 2**30:.2f} GiB before the plan), "
            f"{mem['seconds_incl_compile']:.1f} s incl. compile, {mem['gflops']:.0f} GFLOP/s."
        )
    return "\n".join(text)


def targets(results: list[dict], peak: float, mem: dict | None) -> list[str]:
    out = []
    by_n = {r["N"]: r for r in results}

    def near(n):
        cands = [k for k in by_n if 0.5 * n <= k <= 2 * n]
        return by_n[cands[0]] if cands else None

    for r in results:
        if r["N"] >= 5_000:
            out.append(f"fdjax/limit at N={r['N']:,}: {r['fdjax_over_limit']:.3f} (target <= 1.10)")
    for n, t in ((10_000, 4), (1_000, 10)):
        r = near(n)
        if r:
            out.append(f"loop/fdjax at N={r['N']:,}: {r['loop_over_fdjax']:.1f} (target >= {t})")
    r = near(100_000)
    if r:
        out.append(
            f"fdjax at N={r['N']:,}: {r['pct_peak']:.0f}% of the peak matmul rate measured in the same "
            f"rounds, {r['peak_gflops_same_rounds']:.0f} GFLOP/s (target >= 60%)"
        )
        out.append(f"compile at N={r['N']:,}: {r['compile_fdjax_s']:.2f} s (target <= 1 s)")
    if mem:
        out.append(
            f"peak RSS, {mem['rows']:,} rows over N={mem['N']:,}: "
            f"{mem['peak_rss_bytes'] / 2**30:.2f} GiB (target < 1.5 GB)"
        )
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--repeats", type=int, default=5, help="rounds for N < 1e5 (N >= 1e5: 3)")
    p.add_argument("--loop-full-max", type=int, default=20_000, help="largest N whose loop runs in full")
    p.add_argument("--no-memory", action="store_true", help="skip the 1e6-parameter RSS check")
    args = p.parse_args(argv)
    peaks = C.peak_contenders()
    results = []
    for n in args.sizes:
        reps = args.repeats if n < 100_000 else min(args.repeats, 3)
        results.append(bench_size(n, reps, args.loop_full_max, {k: v for k, v in peaks.items()}))
        print(f"N={results[-1]['N']:,} done", file=sys.stderr)
    all_peak_times = {k: [t for r in results for t in r["peak_times"][k]] for k in peaks}
    peak, rates = C.peak_gflops(all_peak_times, {k: v[1] for k, v in peaks.items()})
    mem = None if args.no_memory else memory_check()
    table = report(results, peak, rates, mem)
    goals = targets(results, peak, mem)
    print(table)
    print()
    print("\n".join(f"- {g}" for g in goals))
    payload = {
        "machine": C.machine(),
        "peak_matmul_gflops": peak,
        "peak_matmul_by_size": rates,
        "results": results,
        "memory_check": mem,
        "targets": goals,
        "table_markdown": table,
    }
    path = C.write_json("fd_throughput.json", payload)
    print(f"\nwrote {path}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
