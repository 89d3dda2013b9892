"""False alarms of fdjax.check_grad on correct float32 ReLU / max-pool MLPs and CNNs (issue 11).

    python -m bench.false_alarms [--quick] [--keys K] [--sizes 1e3 1e4 1e5 1e6] [--models mlp cnn]
        [--workloads NAME ...] [--modes auto directional locate subset full] [--full-max N]
        [--max-seconds S] [--out PATH]

Every workload is float32 with a correct gradient (jax.grad of the loss itself): ``eqx.nn.MLP``
with ReLU, and a CNN of ``eqx.nn.Conv2d`` (3×3) → ReLU → ``eqx.nn.MaxPool2d(2)`` blocks and a
Linear head, each at about 1e3, 1e4, 1e5 and 1e6 parameters, with a softmax cross-entropy loss
over a batch of random inputs and labels. For every key k (``--keys``: 0 … K−1) the model
init and the data come from ``jax.random.key(k)`` and ``key=k`` is passed to the check; each
workload × key is checked in every mode (``full`` only up to ``--full-max`` parameters: 4N
evaluations). A FAIL is a false alarm: its ``summary(5)`` goes to stderr and into the JSON.

Records per check: status and reason, the mode that ran, f evaluations, escalation
evaluations and wall seconds (the first call of each workload × mode includes XLA
compilation of whatever it does not share with the modes before it). Keys are the outer loop,
so ``--max-seconds`` (skip each check that would end past S seconds, by the elapsed time and
the time the same workload × mode took before) leaves the first keys of every workload, and
records what it skipped. The JSON is rewritten after every check (``"complete": false`` until
the end), so a run killed by an outer ``timeout`` keeps what it measured. x64 stays off
(float32 as users run it). Prints the table of ``bench/tables.py`` (``false_alarms``) and
writes bench/results/false_alarms.json. Not a test: it never asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common as C  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fdjax  # noqa: E402
from bench.tables import false_alarms_table  # noqa: E402

MODES = ("auto", "directional", "locate", "subset", "full")
SIZES = ("1e3", "1e4", "1e5", "1e6")
CLASSES = 10


def cross_entropy(logits, y):
    """Mean softmax cross-entropy of integer labels ``y``."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


@dataclasses.dataclass(frozen=True)
class Workload:
    """One model: ``init(key)`` builds it (float32), ``apply(model, x)`` is one example's logits."""

    name: str
    model: str  # "mlp" or "cnn"
    size: str  # the size class: "1e3" … "1e6"
    description: str
    in_shape: tuple[int, ...]
    batch: int
    init: Callable[[jax.Array], object]
    apply: Callable[[object, jax.Array], jax.Array]

    def problem(self, k: int):
        """``(params, x, y)`` for key ``k``: model init and data from ``jax.random.key(k)``."""
        kinit, kx, ky = jax.random.split(jax.random.key(k), 3)
        params, _ = eqx.partition(self.init(kinit), eqx.is_inexact_array)
        x = jax.random.normal(kx, (self.batch, *self.in_shape), jnp.float32)
        y = jax.random.randint(ky, (self.batch,), 0, CLASSES)
        return params, x, y

    @property
    def n(self) -> int:
        params, _ = eqx.partition(self.init(jax.random.key(0)), eqx.is_inexact_array)
        return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))


_LOSSES: dict[str, Callable] = {}


def loss_of(w: Workload) -> Callable:
    """The workload's loss ``(params, x, y) -> scalar``: one function object per workload (the
    static part is the same for every key), so that the compiled check is reused across keys."""
    if w.name not in _LOSSES:
        _, static = eqx.partition(w.init(jax.random.key(0)), eqx.is_inexact_array)

        def loss(params, x, y):
            model = eqx.combine(params, static)
            return cross_entropy(jax.vmap(lambda xi: w.apply(model, xi))(x), y)

        _LOSSES[w.name] = loss
    return _LOSSES[w.name]


def mlp(size: str, in_size: int, width: int, depth: int, batch: int) -> Workload:
    def init(key):
        return eqx.nn.MLP(in_size, CLASSES, width, depth, activation=jax.nn.relu, dtype=jnp.float32, key=key)

    return Workload(
        f"mlp-{size}",
        "mlp",
        size,
        f"eqx.nn.MLP({in_size}, {CLASSES}, {width}, {depth}), ReLU, batch {batch}",
        (in_size,),
        batch,
        init,
        lambda model, x: model(x),
    )


def cnn(size: str, image: int, channels: tuple[int, ...], hidden: int | None, batch: int) -> Workload:
    """[Conv2d(3×3, padding 1) → ReLU → MaxPool2d(2)] per channel count, then Linear head(s)."""

    def init(key):
        keys = jax.random.split(key, len(channels) + 2)
        convs, c, side = [], 1, image
        for k, out in zip(keys, channels, strict=False):
            convs.append(eqx.nn.Conv2d(c, out, 3, padding=1, dtype=jnp.float32, key=k))
            c, side = out, side // 2
        flat = c * side * side
        if hidden is None:
            head = (eqx.nn.Linear(flat, CLASSES, dtype=jnp.float32, key=keys[-1]),)
        else:
            head = (
                eqx.nn.Linear(flat, hidden, dtype=jnp.float32, key=keys[-2]),
                eqx.nn.Linear(hidden, CLASSES, dtype=jnp.float32, key=keys[-1]),
            )
        return (tuple(convs), eqx.nn.MaxPool2d(2, 2), head)

    def apply(model, x):
        convs, pool, head = model
        for conv in convs:
            x = pool(jax.nn.relu(conv(x)))
        x = x.reshape(-1)
        for lin in head[:-1]:
            x = jax.nn.relu(lin(x))
        return head[-1](x)

    blocks = " → ".join(f"conv{c}" for c in channels)
    tail = f" → linear{hidden} (ReLU)" if hidden else ""
    return Workload(
        f"cnn-{size}",
        "cnn",
        size,
        f"1×{image}×{image} → {blocks} (3×3, ReLU, max-pool 2){tail} → linear{CLASSES}, batch {batch}",
        (1, image, image),
        batch,
        init,
        apply,
    )


WORKLOADS = (
    mlp("1e3", 64, 12, 2, 32),  # 1,066 parameters
    mlp("1e4", 64, 64, 2, 32),  # 8,970
    mlp("1e5", 256, 256, 2, 64),  # 134,154: issue 11's eqx.nn.MLP(256, 10, 256, 2)
    mlp("1e6", 784, 512, 3, 64),  # 932,362
    cnn("1e3", 8, (8,), None, 32),  # 1,370
    cnn("1e4", 16, (16,), None, 32),  # 10,410
    cnn("1e5", 28, (16, 32), 64, 32),  # 105,866
    cnn("1e6", 28, (32, 64), 320, 32),  # 1,025,866
)


def check(w: Workload, k: int, params, x, y, mode: str) -> dict:
    rec: dict = {"workload": w.name, "model": w.model, "size": w.size, "key": k, "mode": mode}
    t = time.perf_counter()
    try:
        r = fdjax.check_grad(loss_of(w), params, x, y, mode=mode, key=k)
        jax.block_until_ready(r)
        rec["wall_s"] = time.perf_counter() - t
        rec.update(
            status=fdjax.CheckStatus(int(r.status)).label,
            reason=fdjax.Reason(int(r.reason)).label,
            mode_ran=str(r.mode),
            evaluations=int(r.evaluations),
            escalated=int(r.escalated),
            escalation_evaluations=int(r.escalation_evaluations),
            notes=list(r.notes),
        )
        if rec["status"] == "fail":
            rec["summary"] = r.summary(5)
            print(f"\nFALSE ALARM: {w.name} key={k} mode={mode}\n{rec['summary']}\n", file=sys.stderr)
    except Exception as e:  # a crash is recorded, never hidden
        rec["wall_s"] = time.perf_counter() - t
        rec.update(status="error", error=f"{type(e).__name__}: {str(e)[:300]}")
        print(f"\nERROR: {w.name} key={k} mode={mode}\n{traceback.format_exc()}", file=sys.stderr)
    return rec


def summarize(records: list[dict], skipped: list[dict], seconds: float) -> dict:
    status = [r["status"] for r in records]
    esc = [r["escalation_evaluations"] for r in records if "escalation_evaluations" in r]
    return {
        "checks": len(records),
        "pass": status.count("pass"),
        "false_alarms": status.count("fail"),
        "inconclusive": status.count("inconclusive"),
        "errors": status.count("error"),
        "skipped": len(skipped),
        "escalation_median": statistics.median(esc) if esc else None,
        "escalation_worst": max(esc) if esc else None,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.false_alarms", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="sizes 1e3 and 1e4 only, 2 keys: a smoke run")
    p.add_argument("--keys", type=int, default=None, help="keys 0 … K−1 (default 8; quick 2)")
    p.add_argument(
        "--key-ids", type=int, nargs="+", default=None, help="exactly these keys (instead of --keys)"
    )
    p.add_argument("--sizes", nargs="+", choices=SIZES, default=None, help="size classes (default: all)")
    p.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=("mlp", "cnn"))
    p.add_argument(
        "--workloads",
        nargs="+",
        choices=[w.name for w in WORKLOADS],
        default=None,
        help="exactly these workloads (instead of --sizes and --models)",
    )
    p.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    p.add_argument(
        "--full-max",
        type=int,
        default=None,
        help="run mode='full' only up to N parameters (default 20000; quick 10000)",
    )
    p.add_argument(
        "--max-seconds", type=float, default=None, help="skip what remains once the run passes S seconds"
    )
    p.add_argument("--out", default=None, help="JSON path (default bench/results/false_alarms.json)")
    args = p.parse_args(argv)
    keys = args.keys if args.keys is not None else (2 if args.quick else 8)
    if args.key_ids is not None and min(args.key_ids) < 0:
        p.error(f"--key-ids must be non-negative, got {args.key_ids}")
    key_ids = sorted(set(args.key_ids)) if args.key_ids is not None else list(range(keys))
    keys = len(key_ids)
    full_max = args.full_max if args.full_max is not None else (10_000 if args.quick else 20_000)
    sizes = args.sizes or (("1e3", "1e4") if args.quick else SIZES)
    if args.workloads:
        plan = [w for w in WORKLOADS if w.name in args.workloads]
    else:
        plan = [w for w in WORKLOADS if w.size in sizes and w.model in args.models]
    workloads = [
        {"name": w.name, "model": w.model, "size": w.size, "n": w.n, "description": w.description}
        for w in plan
    ]
    n_of = {d["name"]: d["n"] for d in workloads}
    print(
        f"{len(plan)} workloads × {keys} keys × modes {', '.join(args.modes)}; "
        f"backend {jax.default_backend()} ({jax.devices()[0].device_kind})",
        file=sys.stderr,
    )

    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    records: list[dict] = []
    skipped: list[dict] = []
    payload = {
        "command": f"python -m bench.false_alarms {argv_text}".strip(),
        "file": args.out or "bench/results/false_alarms.json",
        "complete": False,  # True once every check ran or was skipped (the JSON is rewritten after each)
        "machine": C.machine(),
        "versions": {
            "jax": jax.__version__,
            "jaxlib": _version("jaxlib"),
            "equinox": _version("equinox"),
            "numpy": np.__version__,
            "fdjax": fdjax.__version__,
        },
        "settings": {
            "quick": args.quick,
            "keys": keys,
            "key_ids": key_ids,
            "workloads": [w.name for w in plan],
            "modes": list(args.modes),
            "full_max": full_max,
            "max_seconds": args.max_seconds,
            "dtype": "float32",
            "x64": bool(jax.config.jax_enable_x64),
            "matmul_precision": str(jax.config.jax_default_matmul_precision),
            "default_mode": "auto",
        },
        "workloads": workloads,
        "summary": summarize(records, skipped, 0.0),
        "records": records,
        "skipped": skipped,
    }
    times: dict[tuple[str, str], list[float]] = {}
    t0 = time.perf_counter()
    # Keys outermost: a run cut short by --max-seconds has the first keys of every workload.
    for k in key_ids:
        for w in plan:
            params = None
            for mode in args.modes:
                if mode == "full" and n_of[w.name] > full_max:
                    continue  # said once in the settings, not per key
                seen = times.get((w.name, mode), [])
                expected = statistics.median(seen[1:] or seen) if seen else 0.0
                elapsed = time.perf_counter() - t0
                if args.max_seconds is not None and elapsed + expected > args.max_seconds:
                    skipped.append(
                        {
                            "workload": w.name,
                            "key": k,
                            "mode": mode,
                            "why": f"--max-seconds {args.max_seconds:g}: {elapsed:.0f} s elapsed"
                            + (f", {expected:.1f} s expected" if expected else ""),
                        }
                    )
                    continue
                if params is None:
                    params, x, y = w.problem(k)
                rec = check(w, k, params, x, y, mode)
                rec["n"] = n_of[w.name]
                rec["first"] = not seen
                times.setdefault((w.name, mode), []).append(rec["wall_s"])
                records.append(rec)
                why = rec.get("reason")
                print(
                    f"  {w.name} (N={rec['n']:,}) key {k} {mode}"
                    f"{'→' + rec['mode_ran'] if rec.get('mode_ran', mode) != mode else ''}: "
                    f"{rec['status']}{'' if why in (None, 'none') else ' (' + why + ')'}"
                    f"  {rec.get('evaluations', 0):,} evals (+{rec.get('escalation_evaluations', 0):,})"
                    f"  {rec['wall_s']:.1f}s{' (first)' if rec['first'] else ''}",
                    file=sys.stderr,
                    flush=True,
                )
                payload["summary"] = summarize(records, skipped, time.perf_counter() - t0)
                C.write_json("false_alarms.json", payload, args.out)  # a killed run keeps its results

    payload["complete"] = True
    payload["summary"] = summarize(records, skipped, time.perf_counter() - t0)
    print(false_alarms_table(payload))
    path = C.write_json("false_alarms.json", payload, args.out)
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
