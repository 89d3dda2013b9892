"""The benchmark suite: throughput from N = 1e3 to 1e6, chunk sizes, compile time, devices.

    python -m bench            (or: python bench/run.py)  [--quick] [--sizes ...]

Runs unchanged on CPU, GPU and TPU (float64, matmul precision "highest"). Same model as
bench/fd_throughput.py: a tanh MLP (d, d, 10) with softmax cross-entropy on a batch of 64.
For each N it times, interleaved, median of repeats:

- ``fdjax``: the engine on a central-difference Basis plan. Up to N = 1e4 this is the whole
  ``fdjax.grad`` (2N rows); above, a plan of R rows spread over all parameters (the
  throughput of a full gradient; a full 2N plan at 1e6 is O(N²) work);
- ``limit``: the same number of evaluations on precomputed parameter vectors (vmap, the
  same chunks): the batched-evaluation floor;
- ``loop``: a per-element Python loop over a subset of the parameters, per evaluation;
- a device peak: float64 square matmuls and, on accelerators, a streaming copy.

Reports evaluations per second, the ratio to the limit, the speed-up over the loop,
achieved GFLOP/s (and GB/s from XLA's cost analysis) against the measured peaks, compile
time, a chunk-size curve, and the scaling with the number of devices: real devices when
there are several, otherwise 1, 2 and 4 CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count`` in subprocesses (these share the same
cores, so on a CPU they show the overhead of sharding rather than a speed-up).
Writes bench/results/suite.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as C  # noqa: E402

C.setup()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import fdjax  # noqa: E402
from bench.tables import throughput_table  # noqa: E402
from bench.fd_throughput import compile_time, engine_plan, make_limit, make_loop  # noqa: E402
from fdjax import _engine  # noqa: E402


def spread_rows(n: int, num_rows: int, dtype) -> dict:
    """A central-difference plan over num_rows/2 coordinates spread evenly over [0, n)."""
    k = max(1, num_rows // 2)
    idx = (jnp.arange(k, dtype=jnp.int64) * n // k).astype(jnp.int32)
    h = jnp.asarray(6e-6, dtype)
    return {"index": jnp.concatenate([idx, idx]), "coeff": jnp.concatenate([jnp.full(k, h), jnp.full(k, -h)])}


def engine_call(flat_loss, x0, rows, opts):
    run = jax.jit(lambda x, r: _engine.evaluate(flat_loss, x, _engine.Basis(), r, opts))
    return lambda: run(x0, rows)


def rows_for(n: int, flops: float, peak: float, seconds: float) -> int:
    """Rows for one timed call of about ``seconds`` at half the peak (even, <= 2N)."""
    r = int(seconds * 0.5 * peak * 1e9 / flops)
    return max(64, min(2 * n, r - r % 2))


def throughput(n: int, peak: float, bw: float | None, repeats: int, seconds: float, ndev: int) -> dict:
    loss, params, X, Y, flat_loss, x0, flops = C.mlp_problem(n)
    N = int(x0.shape[0])
    R = rows_for(N, flops, peak, seconds)
    full = R == 2 * N and N <= 20_000
    opts = _engine.Options(devices=ndev)
    if full:
        grad = fdjax.grad(loss, devices=ndev)
        fd = lambda: grad(params, X, Y)  # noqa: E731
    else:
        fd = engine_call(flat_loss, x0, spread_rows(N, R, x0.dtype), opts)
    if full:
        compile_s = compile_time(lambda: jax.jit(grad).lower(params, X, Y).compile())
    else:
        rows = spread_rows(N, R, x0.dtype)
        run = jax.jit(lambda x, r: _engine.evaluate(flat_loss, x, _engine.Basis(), r, opts))
        compile_s = compile_time(lambda: run.lower(x0, rows).compile())
    jax.block_until_ready(fd())
    plan = engine_plan(flat_loss, x0, R, opts)
    limit, pool_rows = make_limit(flat_loss, x0, R, plan["chunk_size"], plan["devices"])
    jax.block_until_ready(limit())
    loop_params = min(N, 100)
    loop = make_loop(flat_loss, x0, loop_params)
    times = C.interleaved({"fdjax": fd, "limit": limit, "loop": loop}, repeats)
    t_fd, t_lim = C.median(times["fdjax"]), C.median(times["limit"])
    per_loop_eval = C.median(times["loop"]) / (2 * loop_params)
    cost = plan["row_cost"]
    out = {
        "N": N,
        "rows": R,
        "plan": "fdjax.grad (2N rows)" if full else f"{R:,}-row spread Basis plan",
        "chunk_size": plan["chunk_size"],
        "devices": plan["devices"],
        "evals_per_s": R / t_fd,
        "limit_evals_per_s": R / t_lim,
        "loop_evals_per_s": 1 / per_loop_eval,
        "fdjax_over_limit": t_fd / t_lim,
        "speedup_over_loop": per_loop_eval * R / t_fd,
        "gflops": R * flops / t_fd / 1e9,
        "pct_peak_flops": 100 * R * flops / t_fd / 1e9 / peak,
        "compile_s": compile_s,
        "limit_pool_rows": pool_rows,
    }
    if cost is not None and cost.bytes_accessed == cost.bytes_accessed:
        out["gbytes_per_s"] = R * cost.bytes_accessed / t_fd / 1e9
        if bw:
            out["pct_peak_bandwidth"] = 100 * out["gbytes_per_s"] / bw
    return out


def chunk_curve(n: int, repeats: int, sizes=(1, 4, 16, 64, 256, 1024)) -> list[dict]:
    loss, params, X, Y, flat_loss, x0, flops = C.mlp_problem(n)
    N = int(x0.shape[0])
    R = min(2 * N, 8192)
    rows = spread_rows(N, R, x0.dtype)
    calls = {
        f"B={b}": engine_call(flat_loss, x0, rows, _engine.Options(chunk_size=b, devices=1)) for b in sizes
    }
    auto = engine_plan(flat_loss, x0, R)["chunk_size"]
    calls[f"auto (B={auto})"] = engine_call(flat_loss, x0, rows, _engine.Options(devices=1))
    for c in calls.values():
        jax.block_until_ready(c())
    times = C.interleaved(calls, repeats)
    return [
        {
            "chunk": k,
            "N": N,
            "rows": R,
            "evals_per_s": R / C.median(v),
            "gflops": R * flops / C.median(v) / 1e9,
        }
        for k, v in times.items()
    ]


SCALING = r"""
import json, sys
sys.path.insert(0, {root!r})
from bench import run as S, _common as C
import jax
res = S.throughput({n}, {peak}, None, {repeats}, {seconds}, {k})
res["device_count"] = jax.device_count()
print(json.dumps(res))
"""


def device_scaling(n: int, peak: float, repeats: int, seconds: float) -> list[dict]:
    count = jax.device_count()
    out = []
    if count == 1 and jax.default_backend() != "cpu":
        return out  # one accelerator: nothing to scale over (forced devices are CPU-only)
    if count > 1:
        k = 1
        while k <= count:
            out.append(dict(throughput(n, peak, None, repeats, seconds, k), forced=False))
            k *= 2
        return out
    root = str(Path(__file__).resolve().parent.parent)
    for k in (1, 2, 4):
        env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={k}"}
        code = SCALING.format(root=root, n=n, peak=peak, repeats=repeats, seconds=seconds, k=k)
        out.append(dict(C.run_python(code, env=env), forced=True))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    p.add_argument("--repeats", type=int, default=None, help="timed calls per contender (5; quick 3)")
    p.add_argument("--seconds", type=float, default=None, help="duration of one timed call (1; quick 0.3)")
    p.add_argument("--chunk-n", type=int, default=10_000, help="parameters of the chunk-size curve (10,000)")
    p.add_argument("--quick", action="store_true", help="3 repeats, shorter calls, no device scaling")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/suite.json)")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 1.0
    for name in ("repeats", "seconds", "chunk_n"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    info = C.machine()
    peaks = C.peak_contenders()
    ptimes = C.interleaved({k: v[0] for k, v in peaks.items()}, 5)
    peak, rates = C.peak_gflops(ptimes, {k: v[1] for k, v in peaks.items()})
    bw = None
    if info["backend"] != "cpu":
        call, nbytes = C.bandwidth_contender()
        bw = nbytes / C.median(C.interleaved({"copy": call}, 5)["copy"]) / 1e9
    print(
        f"peak float64 matmul {peak:.1f} GFLOP/s" + (f", copy bandwidth {bw:.0f} GB/s" if bw else ""),
        file=sys.stderr,
    )
    ndev = jax.device_count()
    results = []
    for n in args.sizes:
        results.append(throughput(n, peak, bw, args.repeats, args.seconds, ndev))
        print(f"N={results[-1]['N']:,} done", file=sys.stderr)
    curve = chunk_curve(args.chunk_n, args.repeats)
    scaling = [] if args.quick else device_scaling(10_000, peak, args.repeats, args.seconds)

    head = (
        f"{info['device_kind']} × {info['device_count']} ({info['backend']}), jax {info['jax']}; "
        f"peak float64 matmul {peak:.1f} GFLOP/s" + (f", copy {bw:.0f} GB/s" if bw else "")
    )
    t1 = throughput_table(results, bandwidth=bool(bw))
    t2 = C.markdown_table(
        ["chunk", "evals/s", "GFLOP/s"], [[c["chunk"], c["evals_per_s"], c["gflops"]] for c in curve]
    )
    t3 = (
        C.markdown_table(
            ["devices", "forced", "evals/s", "fdjax/limit", "chunk B/device"],
            [
                [s["devices"], s["forced"], s["evals_per_s"], s["fdjax_over_limit"], s["chunk_size"]]
                for s in scaling
            ],
        )
        if scaling
        else "(skipped: --quick, or a single accelerator)"
    )
    text = (
        f"{head}\n\n### Throughput\n\n{t1}\n\n"
        f"### Chunk size (N = {curve[0]['N']:,}, {curve[0]['rows']:,} rows)\n\n{t2}"
        f"\n\n### Devices (N ≈ 1e4)\n\n{t3}"
    )
    print(text)
    payload = {
        "machine": info,
        "peak_matmul_gflops": peak,
        "peak_matmul_by_size": rates,
        "copy_gbytes_per_s": bw,
        "throughput": results,
        "chunk_curve": curve,
        "device_scaling": scaling,
        "table_markdown": text,
    }
    path = C.write_json("suite.json", payload, args.out)
    print(f"\nwrote {path}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
