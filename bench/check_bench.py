"""Time-to-verdict of fdjax.check_grad per mode against jax.test_util.check_grads.

Not a test: prints a Markdown table and writes bench/results/check.json. Every check is on a
cheap elementwise function of one leaf of N parameters (so the FD cost, not f, is measured):

    f(w) = Σ log(1 + w²) + 0.1·Σ w·sin(w)

"cold" includes tracing and XLA compilation (what a user waits for the first time), "warm"
is a second call with the same shapes. ``full`` is O(N²) work (4N evaluations of an O(N)
function), so it is capped (``--full-max``); the other modes go to ``--max-n``. The
"locate, 1 wrong element" rows use the same f with a custom VJP that is wrong in one element,
so that the bisection runs (and the located element is asserted).
torch.autograd.gradcheck(fast_mode=True) is timed when torch is importable.

Usage:
    python bench/check_bench.py [--max-n 10000000] [--full-max 30000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fdjax  # noqa: E402


def f(p):
    w = p["w"]
    return jnp.sum(jnp.log1p(w * w)) + 0.1 * jnp.sum(w * jnp.sin(w))


_BAD = {}


def f_bug(p):
    """f with a custom VJP whose gradient is wrong (×1.5) in one element: what locate is for."""
    n = p["w"].shape[0]
    if n not in _BAD:
        bad = n // 3 + 1

        @jax.custom_vjp
        def g(w):
            return f({"w": w})

        def bwd(w, c):
            d = jax.grad(lambda v: f({"w": v}))(w) * c
            return (d.at[bad].multiply(1.5),)

        g.defvjp(lambda w: (g(w), w), bwd)
        _BAD[n] = g
    return _BAD[n](p["w"])


def params(n: int):
    return {"w": jnp.asarray(np.random.default_rng(0).normal(size=n))}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - t, out


def bench_fdjax(mode: str, n: int, repeat: int, fun=f, label=None):
    p = params(n)
    kw = {"k": 16} if mode == "subset" else {}
    jax.clear_caches()  # cold: nothing compiled (modes share the direction body otherwise)
    cold, r = timed(lambda: fdjax.check_grad(fun, p, mode=mode, **kw))
    warm = min(timed(lambda: fdjax.check_grad(fun, p, mode=mode, **kw))[0] for _ in range(repeat))
    if fun is f_bug:
        found = sorted({int(i) for i in np.asarray(r.located) if i >= 0})
        assert found == [n // 3 + 1], found  # a benchmark, but never report a wrong answer
    return {
        "tool": "fdjax.check_grad",
        "mode": label or mode,
        "n": n,
        "evaluations": int(r.evaluations),
        "cold_s": cold,
        "warm_s": warm,
        "verdict": "pass" if bool(r.passed) else "FAIL",
    }


def bench_check_grads(n: int, repeat: int):
    from jax.test_util import check_grads

    p = params(n)

    def run():
        check_grads(f, (p,), order=1, modes=("rev",))
        return jnp.zeros(())

    jax.clear_caches()
    cold, _ = timed(run)
    warm = min(timed(run)[0] for _ in range(repeat))
    # check_grads: one random direction, central difference (2 evaluations) plus f(x), vs the VJP.
    return {
        "tool": "jax.test_util.check_grads",
        "mode": "1 random direction",
        "n": n,
        "evaluations": 3,
        "cold_s": cold,
        "warm_s": warm,
        "verdict": "pass",
    }


def bench_torch(n: int, repeat: int):
    try:
        import torch
    except ImportError:
        return None
    w = torch.tensor(np.random.default_rng(0).normal(size=n), dtype=torch.float64, requires_grad=True)

    def g(w):
        return torch.sum(torch.log1p(w * w)) + 0.1 * torch.sum(w * torch.sin(w))

    def run():
        return torch.autograd.gradcheck(g, (w,), fast_mode=True)

    cold, ok = timed(run)
    warm = min(timed(run)[0] for _ in range(repeat))
    return {
        "tool": "torch gradcheck(fast_mode)",
        "mode": "1 random direction",
        "n": n,
        "evaluations": 2,  # fast mode: one central difference along a random u (eps = 1e-6)
        "cold_s": cold,
        "warm_s": warm,
        "verdict": "pass" if ok else "FAIL",
    }


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return "not installed"
    return torch.__version__


def sizes(lo: int, hi: int):
    out, k = [], int(round(math.log10(lo)))
    while 10**k <= hi:
        out.append(10**k)
        if 3 * 10**k <= hi and 3 * 10**k < 10 ** (k + 1):
            out.append(3 * 10**k)
        k += 1
    return out


def table(rows) -> str:
    lines = [
        "| tool | mode | N | f evaluations | cold (s) | warm (s) | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ev = "-" if r["evaluations"] is None else str(r["evaluations"])
        lines.append(
            f"| {r['tool']} | {r['mode']} | {r['n']:.0e} | {ev} | {r['cold_s']:.2f} | {r['warm_s']:.3f} | "
            f"{r['verdict']} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-n", type=int, default=10**7)
    ap.add_argument("--full-max", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for n in sizes(1000, args.full_max):
        rows.append(bench_fdjax("full", n, args.repeat))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    for mode in ("subset", "directional", "locate"):
        for n in [10**k for k in range(3, 8) if 10**k <= args.max_n]:
            rows.append(bench_fdjax(mode, n, args.repeat))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    for n in [10**k for k in range(3, 8) if 10**k <= args.max_n]:
        rows.append(bench_fdjax("locate", n, args.repeat, fun=f_bug, label="locate, 1 wrong element"))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    for n in [10**k for k in range(3, 8) if 10**k <= args.max_n]:
        rows.append(bench_check_grads(n, args.repeat))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
        t = bench_torch(n, args.repeat)
        if t is not None:
            rows.append(t)
    text = table(rows)
    print()
    print(text)
    info = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "torch": _torch_version(),
        "function": "f(w) = sum(log1p(w^2)) + 0.1 sum(w sin(w)), float64; 'locate, 1 wrong element': "
        "the same f with a custom VJP wrong (x1.5) at element N//3 + 1",
        "full_max": args.full_max,
        "rows": rows,
    }
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "check.json"), "w") as fh:
        json.dump(info, fh, indent=1)


if __name__ == "__main__":
    main()
