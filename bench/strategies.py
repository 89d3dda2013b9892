"""Structure-aware FD gradients: fdjax.grad's strategies against G, the naive batched limit.

    python bench/strategies.py [--quick] [--repeats 3] [--workloads mlp-784x125 ...]

For each workload, a full central-difference gradient (2N perturbed evaluations of f):

- ``G``: f vmapped over 2N *stored* parameter vectors (a cycled pool of at least two
  chunks of distinct vectors near x, as ``limit`` in fd_throughput.py), ``jax.lax.map``
  over chunks, at the best chunk size of 8 … 512 (each tried once on 4,096 rows, the best
  timed in the rounds). Where 2N rows would take long, G is timed on ``--g-rows`` rows and
  scaled to 2N (marked ``*``): its time is linear in the rows.
- ``dense``, ``leaf``, ``auto``: ``fdjax.grad(loss, strategy=s, devices=1)(params, *args)``,
  the plain call (compiled once before the rounds). ``dense`` is skipped where it would take
  longer than ``--dense-max`` seconds by G's estimate.

Contenders are interleaved round-robin (median of the rounds). Each row also records the
strategy each group of leaves ran (``fdjax._engine.listen_groups``), the compile time of
``auto`` (first call minus a warm call) and the largest difference between the strategies'
gradients relative to the FD round-off scale eps·|f|/h. Writes bench/results/strategies.json
and prints a Markdown table (the docs table comes from the JSON: ``python -m bench.tables``).
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
from jax.flatten_util import ravel_pytree  # noqa: E402

import fdjax  # noqa: E402
from fdjax import _engine, examples  # noqa: E402

POOL_BYTES = 128 * 2**20
CHUNKS = (8, 16, 32, 64, 128, 256, 512)
SEARCH_ROWS = 4096


# ------------------------------------------------------------------------------------------
# Workloads: (loss, params, *args), float64


def mlp(sizes, batch=64):
    return examples.mlp(tuple(sizes), batch)


def transformer(tokens=16, d=64, heads=4, batch=8, seed=0):
    """One pre-LN transformer block (attention + 4d MLP) and a linear head on the mean token."""
    rng = np.random.RandomState(seed)

    def w(*shape):
        return jnp.asarray(rng.standard_normal(shape) / np.sqrt(shape[0]))

    params = {
        "ln1": {"g": jnp.ones(d), "b": jnp.zeros(d)},
        "attn": {"q": w(d, d), "k": w(d, d), "v": w(d, d), "o": w(d, d)},
        "ln2": {"g": jnp.ones(d), "b": jnp.zeros(d)},
        "mlp": {"w1": w(d, 4 * d), "b1": jnp.zeros(4 * d), "w2": w(4 * d, d), "b2": jnp.zeros(d)},
        "head": {"w": w(d, 10), "b": jnp.zeros(10)},
    }
    x = jnp.asarray(rng.standard_normal((batch, tokens, d)))
    y = jnp.asarray(rng.randint(0, 10, batch), jnp.int32)

    def norm(h, p):
        mu = jnp.mean(h, -1, keepdims=True)
        var = jnp.var(h, -1, keepdims=True)
        return (h - mu) / jnp.sqrt(var + 1e-5) * p["g"] + p["b"]

    def loss(p, x, y):
        a = norm(x, p["ln1"])
        q, k, v = (a @ p["attn"][n] for n in "qkv")
        split = lambda t: t.reshape(t.shape[:-1] + (heads, d // heads))  # noqa: E731
        s = jnp.einsum("bthd,bshd->bhts", split(q), split(k)) / np.sqrt(d // heads)
        o = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, -1), split(v)).reshape(a.shape)
        h = x + o @ p["attn"]["o"]
        m = norm(h, p["ln2"])
        h = h + jnp.tanh(m @ p["mlp"]["w1"] + p["mlp"]["b1"]) @ p["mlp"]["w2"] + p["mlp"]["b2"]
        return examples.softmax_cross_entropy(jnp.mean(h, 1) @ p["head"]["w"] + p["head"]["b"], y)

    return loss, params, x, y


def cnn():
    return examples.cnn(channels=16, size=16, batch=32)


def cnn_2conv(size=16, channels=(16, 32), batch=32, seed=0):
    """Two [conv 3×3 → ReLU → 2×2 max-pool] blocks (NCHW/OIHW) and a dense head: most of the
    parameters are convolution kernels (the second conv's 4,608 of 9,930)."""
    rng = np.random.RandomState(seed)
    c_in, side, params = 1, size, {}
    for i, c in enumerate(channels):
        params[f"conv{i}"] = {
            "w": jnp.asarray(rng.standard_normal((c, c_in, 3, 3)) / np.sqrt(9 * c_in)),
            "b": jnp.full(c, 0.05),
        }
        c_in, side = c, side // 2
    feat = c_in * side * side
    params["dense"] = {"w": jnp.asarray(rng.standard_normal((feat, 10)) / np.sqrt(feat)), "b": jnp.zeros(10)}
    images, labels = examples.digits(batch, size, seed, jnp.float64)

    def loss(p, images, labels):
        h = images
        for i in range(len(channels)):
            h = jax.lax.conv_general_dilated(
                h, p[f"conv{i}"]["w"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")
            )
            h = jax.nn.relu(h + p[f"conv{i}"]["b"][None, :, None, None])
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = h.reshape(h.shape[0], -1)
        return examples.softmax_cross_entropy(h @ p["dense"]["w"] + p["dense"]["b"], labels)

    return loss, params, images, labels


WORKLOADS = {
    "mlp-784x125": lambda: mlp((784, 125, 10)),
    "mlp-1e3": lambda: mlp((28, 28, 10)),
    "mlp-1e4": lambda: mlp((96, 96, 10)),
    "mlp-1e5": lambda: mlp((310, 310, 10)),
    "mlp-1e6": lambda: mlp((995, 995, 10)),
    "mlp-6layer": lambda: mlp((64, 128, 128, 128, 128, 128, 10)),
    "cnn": cnn,
    "cnn-2conv": cnn_2conv,
    "transformer": transformer,
}
QUICK = ("mlp-1e3", "mlp-1e4", "mlp-6layer", "cnn", "cnn-2conv", "transformer")


# ------------------------------------------------------------------------------------------
# G: f at stored vectors


def make_g(flat_loss, x0, rows: int, b: int):
    """f vmapped over ``rows`` stored vectors (a cycled pool) in chunks of b."""
    n = x0.shape[0]
    n_chunks = -(-rows // b)
    # at least two distinct chunks: with one, the chunk's evaluation is loop-invariant and
    # XLA hoists it out of the loop (G would be one chunk's time)
    pool_chunks = min(n_chunks, max(2, POOL_BYTES // (b * n * x0.dtype.itemsize)))
    noise = jax.random.normal(jax.random.key(0), (pool_chunks, b, n), x0.dtype)
    pool = jax.block_until_ready(x0[None, None] + 1e-3 * noise)
    run = jax.jit(
        lambda pool: jax.lax.map(lambda i: jax.vmap(flat_loss)(pool[i % pool_chunks]), jnp.arange(n_chunks))
    )
    jax.block_until_ready(run(pool))
    return lambda: run(pool), n_chunks * b


def best_g(flat_loss, x0, rows: int) -> tuple[int, float]:
    """The chunk size with the fastest G (one timed call each after compiling, on at most
    ``SEARCH_ROWS`` rows)."""
    best = None
    rows = min(rows, SEARCH_ROWS)
    for b in CHUNKS:
        if b > rows or 2 * b * x0.shape[0] * x0.dtype.itemsize > 4 * POOL_BYTES:
            break  # more rows than the plan, or a pool of two chunks over 512 MiB
        call, done = make_g(flat_loss, x0, rows, b)
        t = C.timed(call) * rows / done
        if best is None or t < best[1]:
            best = (b, t)
    assert best is not None
    return best


# ------------------------------------------------------------------------------------------


def run_workload(
    name: str, repeats: int, g_rows_max: int, dense_max: float, which=("dense", "leaf", "auto")
) -> dict:
    loss, params, *args = WORKLOADS[name]()
    x0, unravel = ravel_pytree(params)
    n = int(x0.shape[0])
    rows = 2 * n

    def flat_loss(v):
        return loss(unravel(v), *args)

    g_rows = min(rows, g_rows_max)
    b, _ = best_g(flat_loss, x0, g_rows)
    g_call, g_done = make_g(flat_loss, x0, g_rows, b)
    scale = rows / g_done
    g_est = C.timed(g_call) * scale
    contenders = {"G": g_call}
    groups, compile_s, grads = {}, {}, {}
    for s in which:
        if s == "dense" and g_est > dense_max:
            continue
        grad = fdjax.grad(loss, strategy=s, devices=1)
        log: list = []
        t0 = time.perf_counter()
        with _engine.listen_groups(log.append):
            grads[s] = jax.block_until_ready(grad(params, *args))
        first = time.perf_counter() - t0
        compile_s[s] = first - C.timed(lambda grad=grad: grad(params, *args))
        groups[s] = (
            [
                {
                    "leaves": list(g.leaves),
                    "strategy": g.strategy,
                    "rows": g.rows,
                    "detail": g.detail,
                    "chunk": g.chunk_size,
                }
                for g in log[-1]
            ]
            if log
            else [{"leaves": "all", "strategy": "dense", "rows": rows, "detail": ""}]
        )
        contenders[s] = lambda grad=grad: grad(params, *args)
    times = C.interleaved(contenders, repeats)
    med = {k: C.median(v) for k, v in times.items()}
    med["G"] *= scale
    f0 = float(loss(params, *args))
    h = float(np.cbrt(np.finfo(np.float64).eps))
    roundoff = np.finfo(np.float64).eps * abs(f0) / h
    ref = ravel_pytree(grads.get("dense", grads.get("leaf", grads["auto"])))[0]
    agree = {s: float(jnp.max(jnp.abs(ravel_pytree(g)[0] - ref))) / roundoff for s, g in grads.items()}
    out = {
        "workload": name,
        "N": n,
        "rows": rows,
        "G_chunk": b,
        "G_rows_timed": g_done,
        "G_extrapolated": g_done < rows,
        "seconds": med,
        "over_G": {k: med[k] / med["G"] for k in med if k != "G"},
        "auto_over_dense": med["auto"] / med["dense"] if "dense" in med and "auto" in med else None,
        "compile_s": compile_s,
        "groups": groups,
        "max_diff_over_roundoff": agree,
        "times": times,
        "loadavg_after": C.machine().get("loadavg"),
    }
    print(f"{name}: N={n:,} " + " ".join(f"{k}={v:.3g}s" for k, v in med.items()), file=sys.stderr)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", nargs="+", default=None, choices=sorted(WORKLOADS))
    p.add_argument("--quick", action="store_true", help="small workloads only: " + ", ".join(QUICK))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--g-rows", type=int, default=20_000, help="G is timed on at most this many rows")
    p.add_argument(
        "--strategies", nargs="+", default=["dense", "leaf", "auto"], choices=["dense", "leaf", "auto"]
    )
    p.add_argument("--dense-max", type=float, default=120.0, help="skip dense above this many seconds (est.)")
    args = p.parse_args(argv)
    names = args.workloads or (QUICK if args.quick else tuple(WORKLOADS))
    results = [
        run_workload(n, args.repeats, args.g_rows, args.dense_max, tuple(args.strategies)) for n in names
    ]
    payload = {"machine": C.machine(), "results": results}
    C.publish("strategies.json", payload, None, "strategies")
    return payload


if __name__ == "__main__":
    main()
