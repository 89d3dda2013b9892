"""Verdicts on the issue-11 corpus: outcomes per class × mode × dtype, escalation cost, wrong verdicts.

    python -m bench.verdicts [--quick | --no-large] [--out PATH] [--cases NAME ...] [--modes MODE ...]

Runs every case of ``tests/verdict_corpus.py`` (with ``--quick``: the sample the test runs,
``VerdictCase.tested``) in every dtype it applies to and every mode (full, subset,
directional, locate, and auto where the checker has it), plus the larger variants of the
corpus (``BENCH_CASES``: eqx.nn.MLP(256, 10, 256, 2), ~134k parameters, float32 ReLU, for 8
init and check keys; class 10's large problems, checked with the default mode). Each check
records its outcome (pass / fail / inconclusive with the reason), f evaluations, the
evaluations spent by escalation, the mode that ran and its wall time (the first mode of a
case includes XLA compilation of the body every mode shares). ``full`` runs only where its
predicted time (4N evaluations at the measured cost of one) is under ``--full-seconds``.

A verdict is wrong when a bug that finite differences can resolve does not FAIL, an
unresolvable bug or a function with nothing to verify PASSES, a correct gradient FAILS, or
a nondeterministic f is not INCONCLUSIVE (nondeterministic); class 10 also counts a default
mode that runs ``full`` on a large problem. Prints the table of ``bench/tables.py``
(``verdicts``) and writes bench/results/verdicts.json. Not a test: it never asserts.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the corpus lives with the tests

from bench import _common as C  # noqa: E402

C.setup()

import jax  # noqa: E402
import numpy as np  # noqa: E402

import fdjax  # noqa: E402
from bench.tables import verdicts_table  # noqa: E402
from verdict_corpus import BENCH_CASES, CASES, CLASSES, DTYPES, VerdictCase  # noqa: E402
from verdict_corpus import agrees, has_outcomes, n_params, outcome  # noqa: E402

MODES = ("directional", "full", "subset", "locate", "auto")
CHECKS = {"grad": fdjax.check_grad, "vjp": fdjax.check_vjp, "jvp": fdjax.check_jvp}


def accepted_modes() -> tuple[str, ...]:
    from fdjax._check import MODES as accepted

    return tuple(accepted)


def default_mode() -> str:
    return inspect.signature(fdjax.check_grad).parameters["mode"].default


def call(case: VerdictCase, f, args, mode: str | None):
    kw = {"key": case.key} if mode is None else {"key": case.key, "mode": mode}
    if case.kind == "grad":
        return CHECKS["grad"](f, *args, **kw)
    return CHECKS[case.kind](f, args, **kw)


def seconds_per_evaluation(case: VerdictCase, f, args) -> float:
    """Wall time of one jit-compiled evaluation of f (the full check's unit of cost)."""
    g = jax.jit(f) if case.kind == "grad" else jax.jit(lambda *a: f(*a))
    jax.block_until_ready(g(*args))
    t = time.perf_counter()
    for _ in range(3):
        jax.block_until_ready(g(*args))
    return (time.perf_counter() - t) / 3


def _int(v) -> int | None:
    return None if v is None else int(np.asarray(v))


def check_one(case: VerdictCase, dtype: str, f, args, mode: str | None, n: int) -> dict:
    rec = {
        "case": case.name,
        "class": case.cls,
        "dtype": dtype,
        "kind": case.kind,
        "mode": "default" if mode is None else mode,
        "n": n,
        "buggy": case.buggy,
        "expected": case.expected(dtype, "default" if mode is None else mode),
    }
    t = time.perf_counter()
    try:
        r = call(case, f, args, mode)
        got = outcome(r)
        rec.update(
            outcome=got,
            mode_ran=str(r.mode),
            evaluations=_int(r.evaluations),
            escalation_evaluations=_int(getattr(r, "escalation_evaluations", None)),
            deterministic=bool(np.asarray(r.deterministic)),
            three_way=has_outcomes(r),
        )
    except Exception as e:  # a crash is a verdict too: recorded, never hidden
        got = f"error: {type(e).__name__}"
        rec.update(
            outcome=got, error=f"{type(e).__name__}: {str(e)[:300]}", trace=traceback.format_exc()[-1500:]
        )
    rec["wall_s"] = time.perf_counter() - t
    want = rec["expected"]
    if want.startswith("inconclusive") and not rec.get("three_way", True):
        want = "not pass"  # a pass/fail result cannot say INCONCLUSIVE
    ok = agrees(want, got) and not got.startswith("error")
    if case.cls == 10 and mode is None and n > 20_000:
        ok = ok and rec.get("mode_ran") != "full"
    rec["ok"] = ok
    return rec


def run_case(case: VerdictCase, dtype: str, modes: tuple[str, ...], full_seconds: float) -> list[dict]:
    f, args = case.build(DTYPES[dtype])
    n = n_params(case, dtype)
    per_eval = seconds_per_evaluation(case, f, args)
    predicted_full = 4 * n * per_eval
    out = []
    wanted = (None,) if case.cls == 10 else modes
    for mode in wanted:
        runs_full = mode == "full" or (mode is None and default_mode() == "full")
        if runs_full and predicted_full > full_seconds:
            out.append(
                {
                    "case": case.name,
                    "class": case.cls,
                    "dtype": dtype,
                    "kind": case.kind,
                    "mode": "default" if mode is None else mode,
                    "n": n,
                    "buggy": case.buggy,
                    "expected": case.expected(dtype, "default" if mode is None else mode),
                    "outcome": "not run",
                    "mode_ran": "full",
                    "skipped": f"full: 4N = {4 * n:,} evaluations, predicted {predicted_full:.0f} s",
                    "predicted_s": predicted_full,
                    # class 10: a default mode that is full on a large problem is the wrong answer
                    "ok": None if mode is not None else False,
                }
            )
            continue
        rec = check_one(case, dtype, f, args, mode, n)
        rec["predicted_full_s"] = predicted_full
        out.append(rec)
        print(
            f"  {case.name} [{dtype}, {rec['mode']}]: {rec['outcome']}"
            f"{'' if rec['ok'] else '  <-- WRONG (expected ' + rec['expected'] + ')'}  "
            f"{rec['wall_s']:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    return out


def summary(records: list[dict]) -> dict:
    judged = [r for r in records if r.get("ok") is not None]
    esc = [r["escalation_evaluations"] for r in judged if r.get("escalation_evaluations") is not None]
    worst = max(
        (r for r in judged if r.get("escalation_evaluations") is not None),
        key=lambda r: r["escalation_evaluations"],
        default=None,
    )
    return {
        "checks": len(judged),
        "wrong": sum(not r["ok"] for r in judged),
        "wrong_buggy_not_failed": sum(not r["ok"] and r["buggy"] for r in judged),
        "wrong_correct_failed": sum(
            not r["ok"] and not r["buggy"] and r["outcome"] == "fail" for r in judged
        ),
        "errors": sum(r["outcome"].startswith("error") for r in judged),
        "inconclusive_correct": sum(
            r["outcome"].startswith("inconclusive") and not r["buggy"] and r["expected"] == "not fail"
            for r in judged
        ),
        "escalation_measured": bool(esc),
        "escalation_median": statistics.median(esc) if esc else None,
        "escalation_median_when_used": statistics.median([e for e in esc if e > 0]) if any(esc) else None,
        "escalation_worst": worst["escalation_evaluations"] if worst else None,
        "escalation_worst_case": f"{worst['case']} [{worst['dtype']}, {worst['mode']}]" if worst else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.verdicts", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the test's sample only (small sizes): a smoke run")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/verdicts.json)")
    p.add_argument(
        "--no-large", action="store_true", help="every test-sized case and dtype, no large variants"
    )
    p.add_argument("--cases", nargs="+", default=None, help="only cases whose name contains one of these")
    p.add_argument("--modes", nargs="+", default=None, help=f"modes to run (default: {' '.join(MODES)})")
    p.add_argument(
        "--full-seconds",
        type=float,
        default=None,
        help="run mode='full' only below this (default 30; quick 10)",
    )
    args = p.parse_args(argv)
    full_seconds = args.full_seconds if args.full_seconds is not None else (10.0 if args.quick else 30.0)
    modes = tuple(m for m in (args.modes or MODES) if m in accepted_modes())
    skipped_modes = [m for m in (args.modes or MODES) if m not in accepted_modes()]
    if args.quick:
        plan = [(c, d) for c in CASES for d in c.tested]
        plan += [(c, d) for c in BENCH_CASES if c.name == "tanh_mlp_21k" for d in ("float32",)]
    else:
        plan = [(c, d) for c in CASES + ([] if args.no_large else BENCH_CASES) for d in c.dtypes]
    if args.cases:
        plan = [(c, d) for c, d in plan if any(s in c.name for s in args.cases)]
    print(
        f"{len(plan)} case × dtype, modes {', '.join(modes)}"
        + (f" (not available: {', '.join(skipped_modes)})" if skipped_modes else "")
        + f"; default mode {default_mode()!r}",
        file=sys.stderr,
    )
    records: list[dict] = []
    t0 = time.perf_counter()
    for case, dtype in plan:
        records += run_case(case, dtype, modes, full_seconds)
    payload = {
        "machine": C.machine(),
        "quick": args.quick,
        "seconds": time.perf_counter() - t0,
        "api": {
            "three_way": any(r.get("three_way") for r in records),
            "modes": list(modes),
            "modes_not_available": skipped_modes,
            "default_mode": default_mode(),
        },
        "full_seconds": full_seconds,
        "classes": {str(k): v for k, v in CLASSES.items()},
        "summary": summary(records),
        "records": records,
    }
    print(verdicts_table(payload))
    path = C.write_json("verdicts.json", payload, args.out)
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
