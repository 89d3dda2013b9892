"""What bounds the compile time of a many-leaf model: XLA:CPU compiles each distinct kernel.

    python bench/compile_bound.py [--layers 10 25 50]

For deep tanh MLPs of width 32 (2 leaves per layer, batch 8, float64), the XLA compile time
(``jax.jit(...).lower(...).compile()``) of:

- ``f``: the loss itself, one call;
- ``vmap(f), leaves in``: f over 64 rows whose leaves are the program's inputs;
- ``vmap(f), flat rows``: f over 64 rows of the flat vector, each leaf sliced out of it (what
  any plan over all of x compiles: one slice kernel per leaf);
- ``slices only``: the leaves sliced out of one flat vector, nothing else;

the kernels (fusions) of the optimized HLO of the two vmapped programs, and the first call
minus a warm call of ``fdjax.grad(loss, strategy=s)`` for ``dense`` and ``auto`` (tracing,
lowering and compiling every program of the plan). Each figure is the median of
``--repeats`` fresh functions (a new closure: nothing is reused from an earlier compile).
Writes bench/results/compile_bound.json and prints the table (``python -m bench.tables``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as C  # noqa: E402

C.setup()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import fdjax  # noqa: E402

WIDTH, BATCH, ROWS = 32, 8, 64


def deep_mlp(layers: int, seed: int):
    """A ``layers``-deep tanh MLP (2 leaves per layer); ``seed`` makes each closure distinct."""
    rng = np.random.RandomState(seed)
    params = [
        {"W": jnp.asarray(rng.standard_normal((WIDTH, WIDTH)) / WIDTH**0.5), "b": jnp.zeros(WIDTH)}
        for _ in range(layers)
    ]
    xb = jnp.asarray(rng.standard_normal((BATCH, WIDTH)))
    scale = 1.0 + seed * 1e-3  # a different constant in each program: no compile is reused

    def loss(p):
        h = xb
        for layer in p:
            h = jnp.tanh(h @ layer["W"] + layer["b"])
        return scale * jnp.mean(h**2)

    return loss, params


def _compile_s(fn, *args) -> tuple[float, int]:
    lowered = jax.jit(fn).lower(*args)
    t0 = time.perf_counter()
    compiled = lowered.compile()
    seconds = time.perf_counter() - t0
    text = compiled.as_text() or ""
    entry = text[text.find("ENTRY") :]
    return seconds, len(re.findall(r"= \S+ fusion\(", entry))


def _first_minus_warm(loss, params, strategy: str) -> float:
    grad = fdjax.grad(loss, strategy=strategy, devices=1)
    t0 = time.perf_counter()
    jax.block_until_ready(grad(params))
    first = time.perf_counter() - t0
    return first - C.timed(lambda: grad(params))


def measure(layers: int, repeats: int) -> dict:
    samples: dict[str, list[float]] = {}
    kernels: dict[str, int] = {}
    for rep in range(repeats):
        loss, params = deep_mlp(layers, seed=1 + rep)
        flat, unravel = ravel_pytree(params)
        leaves, treedef = jax.tree_util.tree_flatten(params)
        starts = np.cumsum([0] + [a.size for a in leaves])
        batched = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (ROWS, *a.shape)), params)

        def pieces(v, leaves=leaves, starts=starts):
            cuts = zip(leaves, starts)
            return [lax.slice(v, (int(a),), (int(a) + x.size,)).reshape(x.shape) for x, a in cuts]

        def flat_rows(v, loss=loss, unravel=unravel):
            return loss(unravel(v))

        cases = {
            "f": (loss, (params,)),
            "vmap(f), leaves in": (jax.vmap(loss), (batched,)),
            "vmap(f), flat rows": (jax.vmap(flat_rows), (jnp.tile(flat, (ROWS, 1)),)),
            "slices only": (pieces, (flat,)),
        }
        for name, (fn, args) in cases.items():
            s, k = _compile_s(fn, *args)
            samples.setdefault(name, []).append(s)
            kernels[name] = k
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LargePlanWarning: the plan is known to be large
            for strategy in ("dense", "auto"):
                seconds = _first_minus_warm(loss, params, strategy)
                samples.setdefault(f"fdjax.grad {strategy}", []).append(seconds)
    return {
        "layers": layers,
        "leaves": 2 * layers,
        "N": int(ravel_pytree(deep_mlp(layers, 0)[1])[0].shape[0]),
        "seconds": {k: C.median(v) for k, v in samples.items()},
        "samples": samples,
        "kernels": kernels,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", nargs="+", type=int, default=[10, 25, 50])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON path (default bench/results/compile_bound.json)")
    args = p.parse_args(argv)
    results = []
    for layers in args.layers:
        results.append(measure(layers, args.repeats))
        got = ", ".join(f"{k} {v:.2f}s" for k, v in results[-1]["seconds"].items())
        print(f"{layers} layers: {got}", file=sys.stderr)
    payload = {"machine": C.machine(), "rows": ROWS, "results": results}
    C.publish("compile_bound.json", payload, args.out, "compile-bound")
    return payload


if __name__ == "__main__":
    main()
