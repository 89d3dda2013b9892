"""Rows per chunk on CPU: the engine's choice against fixed chunk sizes, per workload.

    python -m bench.chunk_sizes [--repeats 5] [--workloads NAME ...] [--out PATH]

For each workload (float64, a full central-difference gradient: 2N perturbed evaluations
in one plan), ``jax.jit(fdjax.grad(loss, strategy=S, chunk_size=B))`` for B in ``SIZES``
and the default (``chunk_size=None``: the engine's rule, ``fdjax._engine.plan.
choose_chunk_size``), and the default without ``CPU_MAX_CHUNK`` (the rule before that cap,
traced in the same run), each compiled once, then timed interleaved (a new order each
round; median of ``--repeats`` rounds). Reports seconds per gradient, every B as a ratio to the best fixed B
of the same rounds, and the B the default chose (from the plans it traced). Writes
bench/results/chunk_sizes.json and prints the table of ``bench/tables.py``
(``chunk-sizes``). Measures, never asserts.
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
from fdjax import examples  # noqa: E402
from fdjax._engine import batch as _batch  # noqa: E402
from fdjax._engine import plan as _plan  # noqa: E402

SIZES = (16, 64, 128, 256, 512, 1024, 4096)


def _quad(n: int):
    x = jnp.linspace(0.1, 1.0, n)
    return (lambda v: jnp.sum(jnp.sin(v) ** 2 * v)), (x,)


def _mlp(*sizes: int, batch: int = 64):
    return _example(examples.mlp, sizes=sizes, batch=batch)


def _example(build, **kw):
    loss, params, *data = build(**kw)
    return (lambda p: loss(p, *data)), (params,)


#: name -> (description, strategy, builder)
WORKLOADS = {
    "sum-sin-1e3": ("Σ sin(x)²·x, N = 1,000", "dense", lambda: _quad(1_000)),
    "sum-sin-1e4": ("Σ sin(x)²·x, N = 10,000", "dense", lambda: _quad(10_000)),
    "mlp-16-32-10": ("tanh MLP 16-32-10, batch 64", "dense", lambda: _mlp(16, 32, 10)),
    "mlp-64-64-10": ("tanh MLP 64-64-10, batch 64", "dense", lambda: _mlp(64, 64, 10)),
    "mlp-32x3-b256": (
        "tanh MLP 32-32-32-10, batch 256",
        "dense",
        lambda: _mlp(32, 32, 32, 10, batch=256),
    ),
    "cnn-4": ("the CLI's CNN, 4 channels", "dense", lambda: _example(examples.cnn, channels=4)),
    "cnn-8": ("the CNN, 8 channels", "dense", lambda: _example(examples.cnn, channels=8)),
    "mlp-96-96-10-auto": (
        "tanh MLP 96-96-10, structure-aware plan",
        "auto",
        lambda: _mlp(96, 96, 10),
    ),
}


def run_workload(name: str, repeats: int) -> dict:
    what, strategy, build = WORKLOADS[name]
    f, args = build()
    n = sum(int(a.size) for a in jax.tree_util.tree_leaves(args))
    chosen: list[tuple[int, int]] = []
    original = _batch.rows_plan

    def spy(*a, **kw):
        plan = original(*a, **kw)
        chosen.append((int(plan["rows"]), int(plan["chunk_size"])))
        return plan

    calls, plans = {}, {}
    cap = getattr(_plan, "CPU_MAX_CHUNK", None)
    _batch.rows_plan = spy
    try:
        for label, b in (("default", None), ("no cap", None), *((f"B={b}", b) for b in SIZES)):
            if label == "no cap":
                if cap is None:
                    continue
                _plan.CPU_MAX_CHUNK = 1 << 62  # the rule before the cap, traced in this run
            # a new function object for "no cap": the default's traced programs are not reused
            fn = f if label != "no cap" else (lambda *a: f(*a))
            try:
                g = jax.jit(fdjax.grad(fn, strategy=strategy, chunk_size=b, devices=1))
                jax.block_until_ready(g(*args))  # compiled (and the plan traced) before the rounds
            finally:
                if cap is not None:
                    _plan.CPU_MAX_CHUNK = cap
            plans[label] = list(chosen)
            calls[label] = lambda g=g: g(*args)
            chosen.clear()
    finally:
        _batch.rows_plan = original
    times = C.interleaved(calls, repeats)
    seconds = {k: C.median(v) for k, v in times.items()}
    best = min(v for k, v in seconds.items() if k.startswith("B="))
    default_plans = plans["default"]
    big = max(default_plans, key=lambda rb: rb[0]) if default_plans else (0, 0)
    uncapped = max(plans.get("no cap", [(0, 0)]), key=lambda rb: rb[0])
    print(
        f"{name}: default B={big[1]} ({seconds['default'] / best:.2f}× the best fixed B)"
        + (f"; no cap B={uncapped[1]} ({seconds['no cap'] / best:.2f}×)" if "no cap" in seconds else ""),
        file=sys.stderr,
        flush=True,
    )
    return {
        "workload": name,
        "what": what,
        "strategy": strategy,
        "N": n,
        "rows": big[0],
        "default_chunk": big[1],
        "default_plans": default_plans,
        "uncapped_chunk": uncapped[1],
        "seconds": seconds,
        "over_best": {k: v / best for k, v in seconds.items()},
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None, help="JSON path (default bench/results/chunk_sizes.json)")
    args = p.parse_args(argv)
    results = [run_workload(name, args.repeats) for name in args.workloads]
    payload = {
        "command": "python -m bench.chunk_sizes" + (f" --repeats {args.repeats}" * (args.repeats != 5)),
        "machine": C.machine(),
        "cache_bytes": _plan.cache_bytes(),
        "cpu_max_chunk": getattr(_plan, "CPU_MAX_CHUNK", None),
        "sizes": list(SIZES),
        "results": results,
    }
    C.publish("chunk_sizes.json", payload, args.out, "chunk-sizes")
    return payload


if __name__ == "__main__":
    main()
