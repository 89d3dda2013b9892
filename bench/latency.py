"""Time to a verdict: cold (a fresh process), cold with the persistent cache, and warm.

    python -m bench.latency [--quick] [--sizes N ...] [--cache-sizes N ...] [--modes MODE ...]
                            [--repeats R] [--out PATH]

For one workload family, a tanh MLP regression loss on a batch of 64 whose parameter dict
``{"w1": [k, h], "b1": [h], "w2": [h], "b2": []}`` holds exactly N = h·(k + 2) + 1 float64
numbers (x64 on), it times what a user waits for:

- ``fdjax.check_grad`` in each mode (``auto``, the default, ``full``, ``directional``,
  ``locate``), ``fdjax.sweep`` and ``fdjax.grad``;
- next to them, in the same run and interleaved with them, ``jax.test_util.check_grads(f,
  (p,), order=1, modes=("rev",))`` and, where ``import torch`` works,
  ``torch.autograd.gradcheck(fast_mode=True)`` on the same MLP (float64).

Every first call is measured in a fresh ``python -c`` process, which imports JAX (and fdjax;
the imports are timed on their own), builds the problem, then times (perf_counter) the first
call only, up to the verdict (``bool(result.passed)``, ``block_until_ready``). fdjax's
bytecode is compiled before the first child (``compileall``), as ``pip install`` does: with
``PYTHONDONTWRITEBYTECODE`` set, an edited module would be compiled from source in each child.

- **cold**: no persistent cache. The same process then times the warm calls: a *new*
  function object of the same shapes (what the next test of a pytest file does: it is
  traced and compiled again) and the same function again (median of up to 3 calls).
- **cold + cache** (at ``--cache-sizes``): the first call of the second of two processes
  run with ``fdjax.enable_compilation_cache(tmpdir)`` (check_grads: the same JAX options,
  without fdjax); the first process writes the cache (its time is ``cache_empty_s``).

Each first call also records, from ``jax.monitoring``, the seconds spent tracing, lowering
to MLIR and in XLA's compiler or reading the persistent cache (each instant counted once,
compilation before lowering before tracing), the XLA programs compiled and the cache hits.
The contenders of one N run one after another, the order rotating; each figure is the median
over ``--repeats`` rounds. ``full`` and ``grad`` (4N and 2N evaluations) stop at
``--max-n-quadratic`` (1e4), ``sweep`` (28N) at ``--max-n-sweep`` (1e3). Writes
bench/results/latency.json and prints the table of ``bench/tables.py`` (``latency``), with
the goals of issue 13 measured, never asserted.
"""

from __future__ import annotations

import argparse
import compileall
import inspect
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# No JAX at module level: the child processes import this module before they time `import jax`.

BATCH = 64
MODES = ("auto", "full", "directional", "locate")
SIZES = (10, 100, 1_000, 10_000, 100_000)
CONTENDER = "check_grads"
TORCH = "torch_gradcheck"
#: The environment a child must not inherit: a cache folder would make "cold" warm.
DROPPED_ENV = ("JAX_COMPILATION_CACHE_DIR", "FDJAX_CACHE_DIR", "FDJAX_CACHE", "XLA_FLAGS")
#: The JAX options that fdjax.enable_compilation_cache sets (see fdjax/_cache.py), for check_grads.
CACHE_OPTIONS = {
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": -1,
}
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # a persistent-cache read included
EVENTS = (TRACE_EVENT, LOWER_EVENT, COMPILE_EVENT)
KINDS = ("cold", "cache-hit", "cache-empty")
PHASE_KEYS = ("seconds", "trace_s", "lower_s", "compile_s", "jax_s", "rest_s", "compiled", "cache_hits")


def shape_for(n: int) -> tuple[int, int]:
    """``(k, h)``, k inputs and h hidden units, with h·(k + 2) + 1 = n exactly (h ≤ √n)."""
    if n < 4:
        raise ValueError(f"N must be at least 4, got {n}")
    for h in range(math.isqrt(n), 0, -1):
        if (n - 1) % h == 0 and (n - 1) // h - 2 >= 1:
            return (n - 1) // h - 2, h
    raise AssertionError(n)  # h = 1 always works


def describe(sizes=SIZES) -> str:
    return (
        "loss(p) = mean((tanh(X @ w1 + b1) @ w2 + b2 − Y)²) on a batch of 64 Gaussian inputs, parameters "
        '{"w1": [k, h], "b1": [h], "w2": [h], "b2": []} (N = h·(k + 2) + 1: '
        + ", ".join(f"{n:,} = {shape_for(n)[1]}·({shape_for(n)[0]} + 2) + 1" for n in sizes)
        + ")"
    )


# ------------------------------------------------------------------------------------------
# The child: one fresh process, one contender, one N


def _union(spans: list[tuple[float, float]]) -> float:
    total, cur = 0.0, None
    for s, e in sorted(spans):
        if cur is None or s > cur[1]:
            total += 0.0 if cur is None else cur[1] - cur[0]
            cur = [s, e]
        else:
            cur[1] = max(cur[1], e)
    return total + (0.0 if cur is None else cur[1] - cur[0])


def _span(spans: dict, names: dict, event: str, start: float, end: float, name) -> None:
    if event not in EVENTS:
        return
    spans.setdefault(event, []).append((start, end))
    if event == COMPILE_EVENT:
        entry = names.setdefault(str(name), [0, 0.0])
        entry[0] += 1
        entry[1] = round(entry[1] + end - start, 4)


def _phases(spans: dict[str, list]) -> dict[str, float]:
    """Seconds in XLA compilation (or reading the persistent cache), lowering and tracing,
    each interval counted once: where they overlap (a program compiled while another is
    traced), compilation wins over lowering, lowering over tracing. They add up to jax_s."""
    c = spans.get(COMPILE_EVENT, [])
    lc = c + spans.get(LOWER_EVENT, [])
    tlc = lc + spans.get(TRACE_EVENT, [])
    compile_s, lower_compile, jax_s = _union(c), _union(lc), _union(tlc)
    return {
        "trace_s": jax_s - lower_compile,
        "lower_s": lower_compile - compile_s,
        "compile_s": compile_s,
        "jax_s": jax_s,
    }


def _numpy_problem(n: int):
    import numpy as np

    k, h = shape_for(n)
    rng = np.random.RandomState(0)
    data = {"X": rng.standard_normal((BATCH, k)), "Y": rng.standard_normal(BATCH)}
    params = {
        "w1": rng.standard_normal((k, h)) / np.sqrt(k),
        "b1": np.full(h, 0.01),
        "w2": rng.standard_normal(h) / np.sqrt(h),
        "b2": np.zeros(()),
    }
    return data, params


def _jax_problem(n: int):
    import jax
    import jax.numpy as jnp

    data, params = _numpy_problem(n)
    X, Y = jnp.asarray(data["X"]), jnp.asarray(data["Y"])
    p = {k: jnp.asarray(v) for k, v in params.items()}
    jax.block_until_ready((X, Y, p))

    def make():
        """A new function object each call (a new closure, as a new test would write)."""

        def loss(p):
            hidden = jnp.tanh(X @ p["w1"] + p["b1"])
            return jnp.mean((hidden @ p["w2"] + p["b2"] - Y) ** 2)

        return loss

    return make, p


def _torch_problem(n: int):
    import torch

    data, params = _numpy_problem(n)
    X, Y = (torch.tensor(data[k], dtype=torch.float64) for k in ("X", "Y"))
    p = tuple(
        torch.tensor(params[k], dtype=torch.float64, requires_grad=True) for k in ("w1", "b1", "w2", "b2")
    )

    def make():
        def loss(w1, b1, w2, b2):
            return torch.mean((torch.tanh(X @ w1 + b1) @ w2 + b2 - Y) ** 2)

        return loss

    return make, p


def child(spec: dict) -> None:
    """Run one contender in this (fresh) process and print one JSON line."""
    what, n = spec["what"], spec["n"]
    rec: dict = {}
    t = time.perf_counter()
    if what == TORCH:
        import torch

        rec["import_s"] = time.perf_counter() - t
        t = time.perf_counter()
        make, p = _torch_problem(n)
        rec["setup_s"] = time.perf_counter() - t

        def call(f):
            return {"verdict": "pass" if torch.autograd.gradcheck(f, p, fast_mode=True) else "FAIL"}

    else:
        import jax

        jax.config.update("jax_enable_x64", True)
        if what != CONTENDER:
            import fdjax
        rec["import_s"] = time.perf_counter() - t
        import jax.monitoring as monitoring

        spans: dict[str, list] = {}
        names: dict[str, list] = {}
        events: dict[str, int] = {}
        monitoring.register_event_time_span_listener(
            lambda ev, start, end, **kw: _span(spans, names, ev, start, end, kw.get("fun_name"))
        )
        monitoring.register_event_listener(lambda ev, **kw: events.__setitem__(ev, events.get(ev, 0) + 1))
        if spec.get("cache"):
            if what == CONTENDER:
                jax.config.update("jax_compilation_cache_dir", spec["cache"])
                for name, value in CACHE_OPTIONS.items():
                    jax.config.update(name, value)
            else:
                fdjax.enable_compilation_cache(spec["cache"])
        t = time.perf_counter()
        make, p = _jax_problem(n)
        rec["setup_s"] = time.perf_counter() - t

        if what == CONTENDER:
            from jax.test_util import check_grads  # imported in the first call, as fdjax's modules are

            def call(f):
                check_grads(f, (p,), order=1, modes=("rev",))  # raises on a failure
                return {"verdict": "pass", "evaluations": 3}

        elif what.startswith("check_grad:"):
            mode = what.split(":", 1)[1]

            def call(f):
                r = fdjax.check_grad(f, p) if mode == "auto" else fdjax.check_grad(f, p, mode=mode)
                passed = bool(r.passed)  # waits for the verdict
                status = fdjax.CheckStatus(int(r.status)).name.lower() if hasattr(r, "status") else None
                return {
                    "verdict": status or ("pass" if passed else "fail"),
                    "evaluations": int(r.evaluations),
                    "mode_ran": str(r.mode),
                }

        elif what == "sweep":

            def call(f):
                r = jax.block_until_ready(fdjax.sweep(f, p))
                return {"evaluations": int(r.evaluations)}

        elif what == "grad":

            def call(f):
                jax.block_until_ready(fdjax.grad(f)(p))
                return {"evaluations": 2 * n + 1}

        else:
            raise ValueError(f"unknown contender {what!r}")

    def timed(f) -> tuple[float, dict]:
        if what != TORCH:
            spans.clear()
            names.clear()
            events.clear()
        t = time.perf_counter()
        out = call(f)
        out["seconds"] = time.perf_counter() - t
        if what != TORCH:
            out.update(_phases(spans))
            hits = events.get("/jax/compilation_cache/cache_hits", 0)
            out["cache_hits"] = hits
            out["compiled"] = len(spans.get(COMPILE_EVENT, [])) - hits
            out["rest_s"] = out["seconds"] - out["jax_s"]
            out["programs"] = names.copy()  # name -> [compiles or cache reads, seconds]
        return out["seconds"], out

    f = make()
    rec["first_s"], rec["first"] = timed(f)
    if spec.get("warm"):
        rec["new_fn_s"], rec["new_fn"] = timed(make())
        same = [timed(f)[0]]
        while len(same) < 3 and sum(same) < 1.0:
            same.append(timed(f)[0])
        rec["same_fn_s"] = statistics.median(same)
        rec["same_fn_calls"] = len(same)
    print(json.dumps(rec))


_CHILD = (
    "import json, sys; sys.path.insert(0, {root!r}); "
    "from bench.latency import child; child(json.loads(sys.argv[1]))"
)


def run_child(spec: dict, timeout: float) -> dict:
    """``child(spec)`` in a fresh interpreter; a failure is recorded, never raised."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    t = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD.format(root=str(ROOT)), json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s", "process_s": time.perf_counter() - t}
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr.strip()[-2000:], "process_s": wall}
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**spec, **rec, "process_s": wall}


# ------------------------------------------------------------------------------------------
# The parent: schedule, aggregate, goals


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


def _median(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(statistics.median(xs)) if xs else None


def aggregate(runs: list[dict], whats: list[str], sizes: list[int]) -> list[dict]:
    """One row per contender × N: medians over the rounds, ratios to check_grads."""
    rows = []
    for n in sizes:
        for w in whats:
            mine = [r for r in runs if r["what"] == w and r["n"] == n]
            cold, hit, empty = ([r for r in mine if r["kind"] == k and "error" not in r] for k in KINDS)
            errors = [r for r in mine if "error" in r]
            if not (cold or hit or errors):
                continue
            first = [r["first"] for r in cold]
            row = {
                "what": w,
                "n": n,
                "rounds": len(cold),
                "import_s": _median([r["import_s"] for r in cold]),
                "cold_s": _median([r["first_s"] for r in cold]),
                "cache_s": _median([r["first_s"] for r in hit]),
                "cache_empty_s": _median([r["first_s"] for r in empty]),
                "new_fn_s": _median([r.get("new_fn_s") for r in cold]),
                "same_fn_s": _median([r.get("same_fn_s") for r in cold]),
                "evaluations": first[0].get("evaluations") if first else None,
                "mode_ran": first[0].get("mode_ran") if first else None,
                "verdict": first[0].get("verdict") if first else None,
                "errors": [r["error"].splitlines()[-1] for r in errors],
            }
            phases = {
                "cold": [r["first"] for r in cold],
                "new_fn": [r["new_fn"] for r in cold if "new_fn" in r],
                "cache": [r["first"] for r in hit],
            }
            row["programs"] = {  # the slowest compiles (or cache reads) of the first round
                kind: dict(sorted(calls[0]["programs"].items(), key=lambda kv: -kv[1][1])[:3])
                for kind, calls in phases.items()
                if calls and "programs" in calls[0]
            }
            row["phases"] = {
                kind: {key: _median([c.get(key) for c in calls]) for key in PHASE_KEYS}
                for kind, calls in phases.items()
                if calls and "jax_s" in calls[0]
            }
            rows.append(row)
    for row in rows:
        ref = next((r for r in rows if r["what"] == CONTENDER and r["n"] == row["n"]), None)
        for key in ("cold_s", "cache_s", "new_fn_s", "same_fn_s"):
            a, b = row.get(key), ref.get(key) if ref else None
            row[f"{key.removesuffix('_s')}_vs_check_grads"] = a / b if a is not None and b else None
    return rows


def goals(rows: list[dict], default_mode: str) -> list[dict]:
    """The goals of issue 13, each measured at its worst N ≤ 1e3 (reported, never asserted)."""
    small = [r for r in rows if r["n"] <= 1_000]
    check = [r for r in small if r["what"] == f"check_grad:{default_mode}"]
    sweep = [r for r in small if r["what"] == "sweep"]

    def worst(rs: list[dict], key: str, what: str, target: float, unit: str) -> dict:
        have = [r for r in rs if r.get(key) is not None]
        if not have:
            return {"goal": what, "target": target, "unit": unit, "measured": None, "n": None, "met": None}
        r = max(have, key=lambda r: r[key])
        return {
            "goal": what,
            "target": target,
            "unit": unit,
            "measured": r[key],
            "n": r["n"],
            "met": r[key] <= target,
        }

    return [
        worst(check, "cold_s", "check_grad first call in a new process (default mode, N ≤ 1e3)", 0.5, "s"),
        worst(check, "cold_vs_check_grads", "the same ÷ jax check_grads' first call in this run", 0.5, "×"),
        worst(check, "cache_s", "check_grad first call with the persistent cache warm (N ≤ 1e3)", 0.2, "s"),
        worst(
            check,
            "new_fn_s",
            "check_grad of a new function of the same shapes, same process (N ≤ 1e3)",
            0.3,
            "s",
        ),
        worst(sweep, "cold_s", "sweep first call in a new process (N ≤ 1e3)", 1.0, "s"),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="N = 10 and 1000, modes auto and directional, no sweep/grad, the cache pair at 1000, 1 round",
    )
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="N (default 10 100 1000 10000 100000)")
    p.add_argument(
        "--cache-sizes",
        nargs="*",
        type=int,
        default=None,
        help="N with the persistent-cache pair of processes (default 10 1000; quick 1000)",
    )
    p.add_argument("--modes", nargs="+", choices=MODES, default=None, help="check_grad modes (default: all)")
    p.add_argument("--no-sweep-grad", action="store_true", help="leave out fdjax.sweep and fdjax.grad")
    p.add_argument("--repeats", type=int, default=1, help="rounds: fresh processes per figure (default 1)")
    p.add_argument(
        "--max-n-quadratic", type=int, default=10_000, help="largest N for full and grad (default 10000)"
    )
    p.add_argument("--max-n-sweep", type=int, default=1_000, help="largest N for sweep (default 1000)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per child process (default 300)")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/latency.json)")
    args = p.parse_args(argv)
    sizes = args.sizes or ([10, 1_000] if args.quick else list(SIZES))
    cache_sizes = args.cache_sizes if args.cache_sizes is not None else [1_000] if args.quick else [10, 1_000]
    modes = args.modes or (["auto", "directional"] if args.quick else list(MODES))
    torch = torch_version()
    whats = [f"check_grad:{m}" for m in modes]
    whats += [] if args.no_sweep_grad or args.quick else ["sweep", "grad"]
    whats += [CONTENDER] + ([TORCH] if torch else [])
    limits = {
        "check_grad:full": args.max_n_quadratic,
        "grad": args.max_n_quadratic,
        "sweep": args.max_n_sweep,
    }

    from bench import _common as C  # JAX in this process only; the children import it themselves

    import fdjax

    default_mode = inspect.signature(fdjax.check_grad).parameters["mode"].default
    machine = C.machine()
    plan = [
        (r, n, w)
        for r in range(args.repeats)
        for i, n in enumerate(sizes)
        for w in _rotate([w for w in whats if n <= limits.get(w, n)], r + i)
    ]
    n_cache = sum(n in cache_sizes and w != TORCH for _, n, w in plan)
    # fdjax's bytecode up to date, as after `pip install` (which compiles it) or any earlier
    # import: where PYTHONDONTWRITEBYTECODE is set, an edited module is otherwise compiled
    # from source in every child (~35 ms of a first check's lazy imports)
    bytecode = compileall.compile_dir(str(ROOT / "fdjax"), quiet=1)
    print(
        f"{len(plan)} cold processes and {n_cache} cache pairs ({', '.join(whats)}; "
        f"N = {', '.join(f'{n:,}' for n in sizes)}; {args.repeats} round(s))",
        file=sys.stderr,
    )
    runs: list[dict] = []
    t0 = time.perf_counter()
    for rnd, n, w in plan:
        spec = {"what": w, "n": n, "round": rnd}
        done = [run_child({**spec, "kind": "cold", "warm": True}, args.timeout)]
        line = f"{w:>22} N={n:<7,} cold {_f(done[0], 'first_s')}  new fn {_f(done[0], 'new_fn_s')}"
        line += f"  same fn {_f(done[0], 'same_fn_s')}"
        if n in cache_sizes and w != TORCH:
            folder = tempfile.mkdtemp(prefix="fdjax-latency-")
            try:
                done.append(run_child({**spec, "kind": "cache-empty", "cache": folder}, args.timeout))
                done.append(run_child({**spec, "kind": "cache-hit", "cache": folder}, args.timeout))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            line += f"  cache: empty {_f(done[1], 'first_s')}, warm {_f(done[2], 'first_s')}"
        errs = [r["error"].splitlines()[-1] for r in done if "error" in r]
        print(line + (f"  ERROR {errs[0]}" if errs else ""), file=sys.stderr, flush=True)
        runs += done
    rows = aggregate(runs, whats, sizes)
    payload = {
        "command": " ".join(["python -m bench.latency", *_options(argv)]),
        "file": _relative(C.RESULTS / "latency.json" if args.out is None else Path(args.out)),
        "machine": machine,
        "loadavg_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "seconds": time.perf_counter() - t0,
        "versions": {"fdjax": fdjax.__version__, "jax": machine["jax"], "torch": torch or "not installed"},
        "settings": {
            "quick": args.quick,
            "sizes": sizes,
            "cache_sizes": [n for n in sizes if n in cache_sizes],
            "modes": modes,
            "default_mode": default_mode,
            "contenders": whats,
            "repeats": args.repeats,
            "max_n": {w: v for w, v in limits.items() if w in whats},
            "dtype": "float64",
            "x64": True,
            "problem": describe(sizes),
            "bytecode_compiled_first": bool(bytecode),
        },
        "rows": rows,
        "goals": goals(rows, default_mode),
        "runs": runs,
    }
    from bench.tables import latency_table

    print(latency_table(payload))
    path = C.write_json("latency.json", payload, args.out)
    print(f"\nwrote {path} ({payload['seconds']:.0f} s)", file=sys.stderr)
    return 0


def _options(argv: list[str] | None) -> list[str]:
    """The command line's options, less ``--out PATH``."""
    args, out = list(sys.argv[1:] if argv is None else argv), []
    while args:
        a = args.pop(0)
        if a == "--out":
            args = args[1:]
        elif not a.startswith("--out="):
            out.append(a)
    return out


def _relative(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _f(rec: dict, key: str) -> str:
    return f"{rec[key]:7.3f} s" if key in rec else "      — "


def _rotate(xs: list, k: int) -> list:
    k %= max(1, len(xs))
    return xs[k:] + xs[:k]


if __name__ == "__main__":
    sys.exit(main())
