"""The documentation's benchmark tables, generated from ``bench/results/*.json``.

Every figure the docs quote from a benchmark lives in a block between two markers::

    <!-- table: suite-throughput -->
    ...generated Markdown...
    <!-- /table -->

``python -m bench.tables`` rewrites every such block in README.md and docs/ from the JSON
files; ``python -m bench.tables --check`` rewrites nothing and exits 1 when a committed block
differs from what its JSON generates (tests/test_docs.py runs the same check). After a
benchmark run (``python -m bench``, ``python bench/fd_throughput.py``, ...) rerun this script
and commit the JSON and the pages together.

No JAX here: the tables are formatted from the JSON alone, in a fraction of a second.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

BLOCK = re.compile(
    r"(?P<open><!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /table -->)", re.S
)


# ------------------------------------------------------------------------------------------
# Formatting


def _g(v: float, digits: int = 3) -> str:
    """``digits`` significant digits, thousands separated from 1,000 on."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}g}"


def _e(v: float | None) -> str:
    if v is None:
        return "—"
    return "inf" if v == float("inf") else f"{v:.1e}"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column, ``l`` or ``r`` (default: left)."""
    rule = ["---:" if a == "r" else "---" for a in (align or "l" * len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _machine(m: dict) -> str:
    """One line about the machine of a run (suite.json / fd_throughput.json / adaptive.json)."""
    load = m.get("loadavg") or [None]
    text = (
        f"{m['cpu_count']}-core {m['processor']}, {m['backend']} backend × {m['device_count']}, "
        f"jax {m['jax']}, Python {m['python']}"
    )
    return text + (f"; load average {load[0]:.2f} when the run started" if load[0] is not None else "")


def _peaks(d: dict) -> str:
    sizes = ", ".join(f"{k.removeprefix('matmul')}³: {v:.1f}" for k, v in d["peak_matmul_by_size"].items())
    return f"peak float64 matmul {d['peak_matmul_gflops']:.1f} GFLOP/s (best median of {sizes})"


# ------------------------------------------------------------------------------------------
# suite.json: python -m bench


def throughput_table(records: list[dict], bandwidth: bool = False) -> str:
    """The suite's throughput rows as a Markdown table: what ``python -m bench`` prints and
    what the docs embed. ``bandwidth`` adds achieved GB/s against the measured copy rate."""
    header = ["N", "plan", "evals/s", "limit evals/s", "fdjax/limit", "× loop", "GFLOP/s", "% peak"]
    header += ["chunk B", "compile (s)"] + (["GB/s", "% peak BW"] if bandwidth else [])
    rows = []
    for r in records:
        row = [
            f"{r['N']:,}",
            r["plan"],
            f"{r['evals_per_s']:,.0f}",
            f"{r['limit_evals_per_s']:,.0f}",
            _g(r["fdjax_over_limit"]),
            _g(r["speedup_over_loop"]),
            _g(r["gflops"]),
            f"{r['pct_peak_flops']:.0f}%",
            str(r["chunk_size"]),
            f"{r['compile_s']:.3f}",
        ]
        if bandwidth:
            row += [
                _g(r.get("gbytes_per_s", float("nan"))),
                f"{r.get('pct_peak_bandwidth', float('nan')):.0f}%",
            ]
        rows.append(row)
    return _table(header, rows, "rl" + "r" * (len(header) - 2))


def suite_throughput() -> str:
    d = _load("suite.json")
    caption = f"`python -m bench` (`bench/results/suite.json`): {_machine(d['machine'])}; {_peaks(d)}."
    return caption + "\n\n" + throughput_table(d["throughput"])


def suite_chunks() -> str:
    d = _load("suite.json")
    curve = d["chunk_curve"]
    first = curve[0]
    rows = [[r["chunk"], f"{r['evals_per_s']:,.0f}", _g(r["gflops"])] for r in curve]
    caption = f"Chunk size at N = {first['N']:,} ({first['rows']:,} rows), `bench/results/suite.json`:"
    return caption + "\n\n" + _table(["chunk", "evals/s", "GFLOP/s"], rows, "lrr")


def suite_devices() -> str:
    d = _load("suite.json")
    rows = [
        [
            str(r["device_count"]),
            "yes" if r["forced"] else "no",
            f"{r['evals_per_s']:,.0f}",
            _g(r["fdjax_over_limit"]),
            str(r["chunk_size"]),
        ]
        for r in d["device_scaling"]
    ]
    n = d["device_scaling"][0]["N"] if d["device_scaling"] else 0
    caption = (
        f"Devices at N = {n:,} (`bench/results/suite.json`; forced: CPU devices from "
        "`XLA_FLAGS=--xla_force_host_platform_device_count`, each count in a fresh process):"
    )
    header = ["devices", "forced", "evals/s", "fdjax/limit", "chunk B per device"]
    return caption + "\n\n" + _table(header, rows, "rlrrr")


# ------------------------------------------------------------------------------------------
# fd_throughput.json: python bench/fd_throughput.py


def throughput() -> str:
    d = _load("fd_throughput.json")
    header = ["N", "loop (s)", "fdjax (s)", "limit (s)", "fdjax/limit", "loop/fdjax"]
    header += ["fdjax GFLOP/s", "limit GFLOP/s", "fdjax % of peak", "chunk B", "compile (s)"]
    rows = []
    for r in d["results"]:
        star = "*" if r["loop_extrapolated"] else ""
        rows.append(
            [
                f"{r['N']:,}",
                f"{_g(r['loop_s'])}{star}",
                _g(r["fdjax_s"]),
                _g(r["limit_s"]),
                _g(r["fdjax_over_limit"]),
                _g(r["loop_over_fdjax"]),
                _g(r["fdjax_gflops"]),
                _g(r["limit_gflops"]),
                f"{r['pct_peak']:.0f}% of {r['peak_gflops_same_rounds']:.0f}",
                str(r["chunk_size"]),
                f"{r['compile_fdjax_s']:.3f}",
            ]
        )
    notes = [
        f"`python bench/fd_throughput.py` (`bench/results/fd_throughput.json`): {_machine(d['machine'])}; "
        f"{_peaks(d)}. Each row's % of peak uses the peak measured in that row's own rounds."
    ]
    timed = [r for r in d["results"] if r["loop_extrapolated"]]
    if timed:
        notes.append(
            "`*`: the loop was timed on the first "
            + " / ".join(f"{r['loop_params_timed']:,}" for r in timed)
            + " parameters and extrapolated to 2N calls."
        )
    return notes[0] + "\n\n" + _table(header, rows, "r" * len(header)) + "\n\n" + " ".join(notes[1:])


def memory() -> str:
    m = _load("fd_throughput.json")["memory_check"]
    header = [
        "N",
        "rows",
        "chunk B",
        "bytes per row",
        "peak RSS",
        "RSS before the plan",
        "time incl. compile",
    ]
    header.append("GFLOP/s")
    row = [
        f"{m['N']:,}",
        f"{m['rows']:,}",
        str(m["chunk_size"]),
        f"{m['row_bytes'] / 2**20:.1f} MiB",
        f"{m['peak_rss_bytes'] / 2**30:.2f} GiB",
        f"{m['rss_before_plan_bytes'] / 2**30:.2f} GiB",
        f"{m['seconds_incl_compile']:.1f} s",
        _g(m["gflops"]),
    ]
    caption = (
        "Peak RSS of a fresh process (VmHWM: Python, JAX, XLA and the compiled code included) for a "
        "Basis-row plan spread over every parameter of the float64 tanh MLP "
        "(`python bench/fd_throughput.py`, `bench/results/fd_throughput.json`):"
    )
    return caption + "\n\n" + _table(header, [row], "r" * len(header))


_TARGET = re.compile(
    r"^(?P<what>.*?): (?P<measured>.*) \(target (?P<op><=|>=|<|>) (?P<goal>[\d.]+)(?P<unit>.*)\)$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


def targets() -> str:
    rows = []
    for text in _load("fd_throughput.json")["targets"]:
        m = _TARGET.match(text)
        if m is None:
            raise ValueError(f"bench.tables: cannot read the target {text!r} in fd_throughput.json")
        value = float(re.search(r"[\d.]+", m["measured"].replace(",", ""))[0])
        met = _OPS[m["op"]](value, float(m["goal"]))
        rows.append(
            [m["what"], f"{m['op']} {m['goal']}{m['unit']}", m["measured"], "met" if met else "**missed**"]
        )
    caption = "Targets of the engine (issue 2), from `bench/results/fd_throughput.json`:"
    return caption + "\n\n" + _table(["quantity", "target", "measured", ""], rows)


# ------------------------------------------------------------------------------------------
# check.json: python bench/check_bench.py


def check_time() -> str:
    d = _load("check.json")
    rows = [
        [
            r["tool"],
            r["mode"],
            f"{r['n']:,}",
            f"{r['evaluations']:,}",
            f"{r['cold_s']:.2f}",
            f"{r['warm_s']:.3f}",
            r["verdict"],
        ]
        for r in d["rows"]
    ]
    header = ["tool", "mode", "N", "f evaluations", "cold (s)", "warm (s)", "verdict"]
    caption = (
        f"`python bench/check_bench.py` (`bench/results/check.json`): {d['cpu_count']}-core CPU "
        f"({d['machine']}), {d['backend']} backend, jax {d['jax']}, "
        f"torch {d.get('torch') or 'not installed'}. "
        f"Function: {d['function']}. `full` goes up to N = {d['full_max']:,}."
    )
    text = caption + "\n\n" + _table(header, rows, "llrrrrl")
    if d.get("note"):
        text += f"\n\nNote from the run: {d['note']}."
    return text


# ------------------------------------------------------------------------------------------
# adaptive.json: python bench/adaptive_bench.py

_TOOLS = ("fdjax", "numdifftools", "scipy")


def adaptive_accuracy() -> str:
    d = _load("adaptive.json")

    def err(r: dict) -> str:
        return _e(r["rel_error"]) + ("" if r["covered"] else " ✗")

    header = ["function"] + [f"{t} {c}" for t in _TOOLS for c in ("rel. error", "evals")]
    rows = [
        [f["function"]] + [c for t in _TOOLS for c in (err(f[t]), str(f[t]["evaluations"]))]
        for f in d["functions"]
    ]
    s = d["summary"]
    rows.append(
        ["**median** (worst)"]
        + [
            c
            for t in _TOOLS
            for c in (
                f"**{_e(s[t]['median_rel_error'])}** ({_e(s[t]['worst_rel_error'])})",
                f"{s[t]['mean_evaluations']:.0f}",
            )
        ]
    )
    n = len(d["functions"])
    summary = "; ".join(
        f"{t}: {s[t]['within_1e-6']}/{n} within 1e-6 relative, error estimate covers the true error on "
        f"{s[t]['covered']}/{n}"
        for t in _TOOLS
    )
    caption = (
        f"`python bench/adaptive_bench.py` (`bench/results/adaptive.json`): {_machine(d['machine'])}. "
        "Relative error of the derivative; ✗: the method's own error estimate does not cover its true "
        "error; evals: evaluations of f per derivative (the median row: the mean)."
    )
    return caption + "\n\n" + _table(header, rows, "lrrrrrr") + "\n\n" + summary + "."


def adaptive_gradient() -> str:
    g = _load("adaptive.json")["gradient"]
    rows = [
        [
            "`fdjax.grad(step='auto')`",
            f"{g['fdjax_auto_s']:.3g} (first call, compile included: {g['fdjax_auto_first_s']:.2g})",
            f"{g['fdjax_auto_evaluations']:,}",
            _e(g["fdjax_auto_median_rel_error"]),
        ],
        [
            "`fdjax.grad` (default step)",
            f"{g['fdjax_default_step_s']:.3g}",
            f"{2 * g['parameters'] + 1:,}",
            _e(g["fdjax_default_step_median_rel_error"]),
        ],
        [
            "`numdifftools.Gradient`",
            f"{g['numdifftools_s']:.3g}",
            f"{g['numdifftools_evaluations']:,}",
            _e(g["numdifftools_median_rel_error"]),
        ],
        [
            "`scipy.differentiate.jacobian`",
            f"{g['scipy_s']:.3g}",
            f"{g['scipy_evaluations']:,}",
            _e(g["scipy_median_rel_error"]),
        ],
    ]
    caption = (
        f"Gradient of the {g['parameters']:,}-parameter tanh MLP of `bench/_common.py` "
        "(float64; `bench/results/adaptive.json`):"
    )
    header = ["method", "time (s)", "evaluations of the loss", "median rel. error vs jax.grad"]
    return caption + "\n\n" + _table(header, rows, "lrrr")


# ------------------------------------------------------------------------------------------
# verdicts.json: python -m bench.verdicts

_VERDICT_MODES = ("full", "subset", "directional", "locate", "auto")
_EXPECT_SHORT = {
    "fail": "fail",
    "not fail": "not fail",
    "not pass": "not pass",
    "inconclusive: nondeterministic": "nondet.",
}


def _verdict_cell(records: list[dict]) -> str:
    """pass/fail/inconclusive counts of one class × dtype × mode, with the wrong ones flagged."""
    if not records:
        return "—"
    run = [r for r in records if r["outcome"] != "not run"]
    if not run:
        return "not run"
    count = {
        k: sum(r["outcome"].startswith(k) for r in run) for k in ("pass", "fail", "inconclusive", "error")
    }
    text = f"{count['pass']}/{count['fail']}/{count['inconclusive']}"
    if count["error"]:
        text += f" +{count['error']} err"
    wrong = sum(r["ok"] is False for r in run)
    return text + (f" **✗{wrong}**" if wrong else "")


def verdicts_table(d: dict) -> str:
    """The verdict benchmark as Markdown: what ``python -m bench.verdicts`` prints and the docs embed."""
    records = d["records"]
    api, s = d["api"], d["summary"]
    modes = [m for m in _VERDICT_MODES if any(r["mode"] == m for r in records)]
    keys = sorted({(r["class"], r["dtype"]) for r in records if r["mode"] != "default"})
    rows = []
    for cls, dtype in keys:
        mine = [r for r in records if r["class"] == cls and r["dtype"] == dtype and r["mode"] != "default"]
        cases = sorted({r["case"] for r in mine})
        expected: dict[str, int] = {}
        for name in cases:
            e = next(r["expected"] for r in mine if r["case"] == name)
            expected[_EXPECT_SHORT.get(e, e)] = expected.get(_EXPECT_SHORT.get(e, e), 0) + 1
        wrong = sum(r["ok"] is False for r in mine)
        rows.append(
            [f"{cls} {d['classes'][str(cls)]}", dtype, str(len(cases))]
            + [", ".join(f"{k} {v}" for k, v in expected.items())]
            + [_verdict_cell([r for r in mine if r["mode"] == m]) for m in modes]
            + [f"**{wrong}**" if wrong else "0"]
        )
    header = ["class", "dtype", "cases", "expected"] + modes + ["wrong"]
    three_way = (
        "three-way outcomes (`status`, `reason`)"
        if api["three_way"]
        else "pass/fail only (read as FAIL when `passed` is False, PASS otherwise)"
    )
    caption = (
        f"`python -m bench.verdicts{' --quick' if d['quick'] else ''}` (`bench/results/verdicts.json`"
        + ("; quick: the test's sample of the corpus" if d["quick"] else "")
        + f"): {_machine(d['machine'])}. Checker: {three_way}; default mode `{api['default_mode']}`"
        + (
            f"; modes not available: {', '.join(api['modes_not_available'])}"
            if api["modes_not_available"]
            else ""
        )
        + ". Cells: pass/fail/inconclusive counts; ✗: wrong verdicts (a resolvable bug that did not "
        "FAIL, an unresolvable bug or nothing-to-verify case that PASSED, a correct gradient that "
        "FAILED, a nondeterministic f not INCONCLUSIVE)."
    )
    parts = [caption, _table(header, rows, "llrl" + "r" * (len(header) - 4))]
    default = [r for r in records if r["mode"] == "default"]
    if default:
        drows = [
            [
                r["case"],
                r["dtype"],
                f"{r['n']:,}",
                r.get("mode_ran", "—"),
                r["outcome"] if r["outcome"] != "not run" else f"not run ({r['skipped']})",
                "—" if "wall_s" not in r else f"{r['wall_s']:.1f}",
                "ok" if r["ok"] else "**wrong**",
            ]
            for r in default
        ]
        dh = ["large problem, default mode", "dtype", "N", "mode that ran", "outcome", "time (s)", ""]
        parts.append(_table(dh, drows, "llrlllr"))
    esc = (
        f"escalation: median {s['escalation_median']:g} extra evaluations per check "
        f"({s['escalation_median_when_used']:g} where it ran), worst {s['escalation_worst']:,} "
        f"({s['escalation_worst_case']})"
        if s["escalation_measured"] and s["escalation_worst"] is not None
        else "escalation: not reported by this checker"
    )
    if s["escalation_measured"] and s["escalation_median_when_used"] is None:
        esc = "escalation: never needed (0 extra evaluations)"
    parts.append(
        f"{s['checks']:,} checks, **{s['wrong']} wrong verdicts** ({s['wrong_buggy_not_failed']} on buggy "
        f"cases, {s['wrong_correct_failed']} correct gradients FAILED, {s['errors']} errors); "
        f"{s['inconclusive_correct']} checks of correct gradients INCONCLUSIVE; {esc}."
    )
    wrong: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r["ok"] is False:
            wrong.setdefault((r["case"], r["dtype"]), []).append(r)
    if wrong:
        lines = [
            f"- `{name}` [{dtype}] (expected {rs[0]['expected']}): "
            + "; ".join(f"{r['mode']}: {r['outcome']}" for r in rs)
            for (name, dtype), rs in wrong.items()
        ]
        parts.append("Wrong verdicts:\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def verdicts() -> str:
    return verdicts_table(_load("verdicts.json"))


# ------------------------------------------------------------------------------------------
# false_alarms.json (and false_alarms_gpu.json): python -m bench.false_alarms


def _platform(m: dict) -> str:
    """The machine of a run: the CPU line, or the accelerator's name for a GPU/TPU run."""
    if m["backend"] == "cpu":
        return _machine(m)
    return (
        f"{m['device_kind']} ({m['backend']} backend × {m['device_count']}; host: {m['cpu_count']}-core "
        f"{m['processor']}), jax {m['jax']}, Python {m['python']}"
    )


def false_alarms_table(d: dict) -> str:
    """The false-alarm benchmark as Markdown: what ``python -m bench.false_alarms`` prints and
    what the docs embed. One row per workload × mode: outcomes over the keys, evaluations, time."""
    s, cfg, keys = d["summary"], d["settings"], d["settings"]["keys"]
    n_of = {w["name"]: w["n"] for w in d["workloads"]}
    rows = []
    for w in d["workloads"]:
        for mode in cfg["modes"]:
            mine = [r for r in d["records"] if r["workload"] == w["name"] and r["mode"] == mode]
            skipped = sum(r["workload"] == w["name"] and r["mode"] == mode for r in d["skipped"])
            if not mine and not skipped:
                continue  # full above --full-max
            if not mine:
                rows.append([w["name"], f"{n_of[w['name']]:,}", mode, "—", f"0 of {keys}"] + ["—"] * 7)
                continue
            status = [r["status"] for r in mine]
            reasons: dict[str, int] = {}
            for r in mine:
                if r["status"] == "inconclusive":
                    reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
            inc = str(status.count("inconclusive"))
            if reasons:
                why = [f"{k} {v}" if len(reasons) > 1 else k for k, v in reasons.items()]
                inc += " (" + ", ".join(why) + ")"
            fail = status.count("fail")
            fail_cell = f"**{fail}**" if fail else "0"
            if status.count("error"):
                fail_cell += f" +{status.count('error')} err"
            ran = sorted({r["mode_ran"] for r in mine if "mode_ran" in r})
            evals = [r["evaluations"] for r in mine if "evaluations" in r]
            esc = [r["escalation_evaluations"] for r in mine if "escalation_evaluations" in r]
            warm = [r["wall_s"] for r in mine if not r["first"]] or [r["wall_s"] for r in mine]
            first = [r["wall_s"] for r in mine if r["first"]]
            rows.append(
                [
                    w["name"],
                    f"{n_of[w['name']]:,}",
                    mode,
                    ", ".join(ran) or "—",
                    str(len(mine)) if len(mine) == keys else f"{len(mine)} of {keys}",
                    str(status.count("pass")),
                    fail_cell,
                    inc,
                    f"{statistics.median(evals):,.0f}" if evals else "—",
                    f"{statistics.median(esc):,.0f} / {max(esc):,}" if esc else "—",
                    _g(statistics.median(warm)),
                    _g(first[0]) if first else "—",
                ]
            )
    header = ["workload", "N", "mode", "ran", "keys", "pass", "fail", "inconclusive", "evaluations"]
    header += ["escalation (median / max)", "time (s)", "first call (s)"]
    v = d["versions"]
    caption = (
        f"`{d['command']}` (`{d['file']}`): {_platform(d['machine'])}; equinox {v['equinox']}, "
        f"fdjax {v['fdjax']}. float32, x64 {'on' if cfg['x64'] else 'off'}, correct gradients; key k "
        "gives the model init, the data and the check's `key=k`. `full` only where N ≤ "
        f"{cfg['full_max']:,}. Cells: checks per outcome over the keys; ran: the mode `auto` chose; "
        "evaluations: median f evaluations per check (escalation included); time: median wall seconds "
        "per check after the first; first call: the first key, XLA compilation included."
    )
    workloads = "Workloads (softmax cross-entropy): " + "; ".join(
        f"`{w['name']}` {w['description']}" for w in d["workloads"]
    )
    esc = (
        f"escalation: median {s['escalation_median']:,.0f} extra evaluations per check, worst "
        f"{s['escalation_worst']:,}"
        if s["escalation_worst"] is not None
        else "escalation: not measured"
    )
    skipped = f"; {s['skipped']} checks skipped by `--max-seconds`" if s["skipped"] else ""
    if not d.get("complete", True):
        skipped += "; **the run was stopped before its end** (these are the checks it finished)"
    total = (
        f"{s['checks']:,} checks: {s['pass']} pass, {s['inconclusive']} inconclusive, {s['errors']} errors, "
        f"**{s['false_alarms']} false alarms** (FAIL on a correct gradient){skipped}; {esc}; "
        f"{s['seconds']:.0f} s in all."
    )
    parts = [caption, workloads, _table(header, rows, "lrllrrrlrrrr"), total]
    alarms = [r for r in d["records"] if r["status"] == "fail"]
    if alarms:
        parts.append(
            "False alarms:\n\n"
            + "\n".join(
                f"- `{r['workload']}` key {r['key']}, {r['mode']}: {r['summary'].splitlines()[0]}"
                for r in alarms
            )
        )
    return "\n\n".join(parts)


#: Larger runs of the same benchmark on this machine (too slow for one run): (file, heading).
_FALSE_ALARMS_MORE = (
    (
        "false_alarms_small.json",
        "The same sizes, every mode, all 8 keys (`--quick` above runs 2):",
    ),
    (
        "false_alarms_large.json",
        "Models of 1e5 and 1e6 parameters on the same CPU (the modes that do not grow with N):",
    ),
    ("false_alarms_subset_1e5.json", "Subset mode at 1e5 parameters on the same CPU:"),
    (
        "false_alarms_subset_1e5_cnn.json",
        "Subset mode on the 1e5-parameter CNN, every key (the run above stopped after 5):",
    ),
    ("false_alarms_subset_1e6.json", "Subset mode at 1e6 parameters (the MLP) on a CPU:"),
    ("false_alarms_cnn_1e6.json", "The CNN at 1e6 parameters on a CPU (the modes that do not grow with N):"),
    ("false_alarms_subset_1e6_cnn.json", "Subset mode on the CNN at 1e6 parameters on a CPU:"),
    (
        "false_alarms_full_1e5.json",
        "Full mode at 1e5 parameters on the same CPU (every element: 4N evaluations, then escalation):",
    ),
    (
        "false_alarms_full_1e5_cnn_key0.json",
        "Full mode on the 1e5-parameter CNN on a CPU, key 0 (with the step sweep; before it, the same "
        "key: PASS, 1,164,394 evaluations):",
    ),
    (
        "false_alarms_full_1e5_cnn.json",
        "The same for keys 1 and 3, the two that failed on the GPU at commit 519efcf (stopped after "
        "key 1: 30 minutes a key on this CPU):",
    ),
    (
        "false_alarms_full_1e5_cnn_key2.json",
        "Key 2, with the jitter's rounding replacing (not added to) the modelled rounding:",
    ),
    (
        "false_alarms_full_1e6_mlp_key0.json",
        "Full mode at 1e6 parameters (the MLP) on a CPU, key 0: 3.7 million evaluations in the first "
        "batch (the structure-aware plan: each row adds its change to one layer's product and runs only "
        "the layers after it), 39 minutes "
        "(commit af5da9c, before the neighbourhood test, which only runs on what the step sweep "
        "measured):",
    ),
    (
        "false_alarms_full_1e6_mlp_key1.json",
        "The same, key 1, at commit c187fa4: a **false alarm**, 3 first-layer weights (gradients 1e-5 to "
        "4e-4, FD values up to 17× larger: kinks crossed). Logged stage by stage: escalation confirmed 21 "
        "element failures (two steps 4× apart agreeing), the step sweep and the neighbourhood test "
        "confirmed none, and the segment test, which then tested at most 16 failures per check (the "
        "most marginal first), explained 13 as kinks; 8 stood, 3 of them beyond what chance allows among "
        "55,008 measured elements (fixed below):",
    ),
    (
        "false_alarms_full_1e6_mlp.json",
        "Keys 1 and 2 at commit 74209ce, where the segment test tests up to 512 failures per check "
        "(key 3 was skipped by `--max-seconds`): key 1 now PASSES, its 21 confirmed failures all "
        "tested, 18 explained as kinks and the 3 left (1.0–1.2× their tolerance) within chance; key 2 "
        "PASSES, its 11 confirmed failures all explained:",
    ),
    (
        "false_alarms_full_1e6_cnn.json",
        "Full mode on the 1e6-parameter CNN on a CPU, key 0, at commit fa9c386: 4.1 million evaluations "
        "in the first batch (18 minutes), 5.9 million in escalation (102,591 elements re-measured; "
        "923,297 more concerned ones kept their first step's verdict, the budget spent), 2 h 52 min "
        "in all; 11 confirmed failures explained as kinks by the segment test; PASS:",
    ),
    (
        "false_alarms_full_1e5_cnn_all.json",
        "Full mode on the 1e5-parameter CNN, all 8 keys, after the convolution-kernel rewrite (each row "
        "of a kernel element slices one input window instead of running the whole convolution; the "
        "runs above took 18–30 minutes a key):",
    ),
    (
        "false_alarms_full_1e6_cnn_rewrite.json",
        "Full mode on the 1e6-parameter CNN after the convolution-kernel rewrite and the merge rule "
        "(commit 91a8fd2; stopped in key 2 at the session's end): key 0 in 27 minutes instead of "
        "2 h 52 min, with the same 10,022,878 evaluations, while the CI's test suite ran on the same "
        "2 cores (first batch 2.3 minutes instead of 17.8; escalation 946 s); key 1 in 22 minutes:",
    ),
    (
        "false_alarms_full_1e6_cnn_keys2.json",
        "Keys 2–7 of the same, at commit a24327f (6 PASS, 19–31 minutes a key, 2 h 12 min in all): "
        "with keys 0 and 1 above, full mode on the 1e6-parameter CNN PASSES for all 8 keys:",
    ),
    (
        "false_alarms_full_1e6_mlp_keys3.json",
        "Full mode on the 1e6-parameter MLP, keys 3–6, at commit 12bb77a (before escalation's finer "
        "padding; 50–62 minutes a key while other runs shared the 2 cores; the run was stopped in key 7 "
        "at the session's end):",
    ),
    (
        "false_alarms_full_1e6_mlp_key7.json",
        "Key 7 at commit db3e687, with escalation's groups padded to eighths of an octave (3.94 million "
        "escalation evaluations against the 5.25 million of keys 1–6; 41 minutes on a quiet CPU): with "
        "keys 0–6 above, full mode on the 1e6-parameter MLP PASSES for all 8 keys:",
    ),
)


def false_alarms() -> str:
    text = false_alarms_table(_load("false_alarms.json"))
    for name, heading in _FALSE_ALARMS_MORE:
        if (RESULTS / name).exists():
            text += f"\n\n{heading}\n\n" + false_alarms_table(_load(name))
    if (RESULTS / "false_alarms_gpu.json").exists():
        text += "\n\nThe same benchmark on a GPU:\n\n" + false_alarms_table(_load("false_alarms_gpu.json"))
    return text


# ------------------------------------------------------------------------------------------
# latency.json: python -m bench.latency

_LATENCY_NAMES = {
    "sweep": "`fdjax.sweep`",
    "grad": "`fdjax.grad`",
    "check_grads": "`jax.test_util.check_grads`",
    "torch_gradcheck": "torch `gradcheck(fast_mode=True)`",
}


def _latency_name(r: dict, default_mode: str) -> str:
    what = r["what"]
    if what.startswith("check_grad:"):
        mode = what.split(":", 1)[1]
        text = f"`check_grad` {mode}" + (" (default)" if mode == default_mode else "")
        ran = r.get("mode_ran")
        return text + (f" → {ran}" if ran and ran != mode else "")
    return _LATENCY_NAMES.get(what, what)


def _s(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _x(v: float | None) -> str:
    if v is None:
        return "—"
    if v < 0.01:
        return "< 0.01×"
    return f"{v:,.0f}×" if v >= 10 else f"{v:.2g}×"


def _programs(progs: dict) -> str:
    """``{"jit(_run)": [2, 1.35], ...}`` as ``_run ×2 1.35``."""
    out = []
    for name, (count, seconds) in progs.items():
        short = name.removeprefix("jit(").removesuffix(")")
        out.append(f"`{short}`" + (f" ×{count}" if count > 1 else "") + f" {seconds:.2f}")
    return ", ".join(out) or "—"


def _compiled(r: dict) -> str:
    ph = r.get("phases", {})
    return " / ".join(f"{ph[k]['compiled']:.0f}" if k in ph else "—" for k in ("cold", "new_fn", "cache"))


def latency_table(d: dict) -> str:
    """The latency benchmark as Markdown: what ``python -m bench.latency`` prints and the docs embed."""
    cfg, rows = d["settings"], d["rows"]
    dm = cfg["default_mode"]
    body = []
    for r in rows:
        cg = r["what"] == "check_grads"
        body.append(
            [
                _latency_name(r, dm),
                f"{r['n']:,}",
                "—" if r.get("evaluations") is None else f"{r['evaluations']:,}",
                _s(r["cold_s"]),
                "" if cg else _x(r.get("cold_vs_check_grads")),
                _s(r["cache_s"]),
                "" if cg else _x(r.get("cache_vs_check_grads")),
                _s(r["new_fn_s"]),
                "" if cg else _x(r.get("new_fn_vs_check_grads")),
                _s(r["same_fn_s"]),
                "" if cg else _x(r.get("same_fn_vs_check_grads")),
                _compiled(r),
            ]
        )
    header = ["what", "N", "f evals", "cold (s)", "÷ cg", "cold + cache (s)", "÷ cg", "warm, new fn (s)"]
    header += ["÷ cg", "warm, same fn (s)", "÷ cg", "XLA programs compiled"]
    imports: dict[str, list[float]] = {}
    for r in rows:
        key = (
            "jax"
            if r["what"] == "check_grads"
            else "torch"
            if r["what"] == "torch_gradcheck"
            else "jax, fdjax"
        )
        if r.get("import_s") is not None:
            imports.setdefault(key, []).append(r["import_s"])
    load_end = d.get("loadavg_end") or [None]
    torch = d["versions"]["torch"]
    caption = (
        f"`{d['command']}` (`{d['file']}`): {_machine(d['machine'])}"
        + (f", {load_end[0]:.2f} when it ended" if load_end[0] is not None else "")
        + f"; fdjax {d['versions']['fdjax']}, torch {torch}; {d['seconds']:.0f} s in all. "
        f"{cfg['dtype']} (x64 on); {cfg['problem']}. "
        + ("One fresh process per figure" if cfg["repeats"] == 1 else f"Medians of {cfg['repeats']} rounds")
        + ". **cold**: the first call in a fresh `python -c` process, after the "
        "imports and the problem's arrays, up to the verdict (`bool(result.passed)`, `block_until_ready`); "
        "**cold + cache**: the same in the second of two processes that call "
        "`fdjax.enable_compilation_cache(tmpdir)` (the first writes the cache); **warm, new fn**: in the "
        "cold process, the first call on a new function object of the same shapes (what the next test of a "
        "file does); **warm, same fn**: the same function again. ÷ cg: the time over that of "
        "`jax.test_util.check_grads(f, (p,), order=1, modes=('rev',))` at the same N in this run. XLA "
        "programs compiled: in the cold call / the new-fn call / the cache-warm call. Imports (not in the "
        "columns; medians): "
        + "; ".join(f"`import {k}` {statistics.median(v):.2f} s" for k, v in sorted(imports.items()))
        + " (fdjax imports its modules lazily, in the first call)."
        + (" torch is not installed: no gradcheck rows." if torch == "not installed" else "")
    )
    parts = [caption, _table(header, body, "lrr" + "r" * (len(header) - 3))]
    at = max((r["n"] for r in rows if r["n"] <= 1_000 and "cold" in r.get("phases", {})), default=None)
    if at is not None:
        brows = []
        for r in rows:
            if r["n"] != at:
                continue
            for kind, label in (("cold", "cold"), ("cache", "cold + cache"), ("new_fn", "warm, new fn")):
                ph = r.get("phases", {}).get(kind)
                if ph is None:
                    continue
                brows.append(
                    [
                        _latency_name(r, dm),
                        label,
                        _s(ph["seconds"]),
                        _s(ph["trace_s"]),
                        _s(ph["lower_s"]),
                        _s(ph["compile_s"]),
                        _s(ph["rest_s"]),
                        f"{ph['compiled']:.0f}",
                        f"{ph['cache_hits']:.0f}",
                        _programs(r.get("programs", {}).get(kind, {})),
                    ]
                )
        bh = ["what", "call", "total (s)", "trace", "lower", "XLA compile / cache read", "rest"]
        bh += ["programs compiled", "read from cache", "slowest programs (s)"]
        parts.append(
            f"Where a first call's time goes at N = {at:,} (seconds, medians; from `jax.monitoring`, each "
            "instant counted once, compilation before lowering before tracing, so a program compiled while "
            "another is traced counts as compilation; rest: Python, lazy imports, running the programs):\n\n"
            + _table(bh, brows, "llrrrrrrrl")
        )
    grows = []
    for g in d["goals"]:
        unit = " s" if g["unit"] == "s" else "×"
        measured = "—" if g["measured"] is None else f"{g['measured']:.3g}{unit} (N = {g['n']:,})"
        met = "not measured" if g["met"] is None else "met" if g["met"] else "**missed**"
        grows.append([g["goal"], f"≤ {g['target']:g}{unit}", measured, met])
    parts.append(
        "Goals (issue 13; the worst N ≤ 1e3 of this run; reported, not asserted):\n\n"
        + _table(["goal", "target", "measured", ""], grows, "lrrl")
    )
    errors = [(r, e) for r in rows for e in r.get("errors", [])]
    if errors:
        parts.append(
            "Failed processes:\n\n"
            + "\n".join(f"- {_latency_name(r, dm)} N = {r['n']:,}: {e}" for r, e in errors)
        )
    return "\n\n".join(parts)


def latency() -> str:
    return latency_table(_load("latency.json"))


# ------------------------------------------------------------------------------------------
# strategies.json: python bench/strategies.py


def strategies() -> str:
    d = _load("strategies.json")
    header = [
        "workload",
        "N",
        "G (s)",
        "dense/G",
        "leaf/G",
        "auto/G",
        "auto/dense",
        "auto compile (s)",
        "auto ran",
    ]
    rows = []
    for r in d["results"]:
        o = r["over_G"]
        ran: dict[str, int] = {}
        for g in r["groups"]["auto"]:
            ran[g["strategy"]] = ran.get(g["strategy"], 0) + g["rows"]
        rows.append(
            [
                r["workload"],
                f"{r['N']:,}",
                _g(r["seconds"]["G"]) + ("*" if r["G_extrapolated"] else ""),
                _g(o["dense"]) if "dense" in o else "—",
                _g(o["leaf"]) if "leaf" in o else "—",
                _g(o["auto"]),
                _g(r["auto_over_dense"]) if r.get("auto_over_dense") else "—",
                f"{r['compile_s']['auto']:.2f}",
                ", ".join(f"{k} {100 * v / r['rows']:.0f}%" for k, v in sorted(ran.items())),
            ]
        )
    note = (
        f"`python bench/strategies.py` (`bench/results/strategies.json`): {_machine(d['machine'])}. "
        "Seconds for one full central-difference gradient (2N evaluations); ratios to G in the same "
        "interleaved rounds. *auto ran*: the share of the rows each strategy evaluated."
    )
    star = [r for r in d["results"] if r["G_extrapolated"]]
    tail = ""
    if star:
        tail = (
            "\n\n`*`: G timed on "
            + " / ".join(f"{r['G_rows_timed']:,}" for r in star)
            + " rows and scaled to 2N."
        )
    return note + "\n\n" + _table(header, rows, "lrrrrrrrl") + tail


# ------------------------------------------------------------------------------------------
# chunk_sizes.json: python -m bench.chunk_sizes


def chunk_sizes_table(d: dict) -> str:
    sizes = [f"B={b}" for b in d["sizes"]]
    header = ["workload", "N", "rows", "best (s)", "default B", "default", "no cap: B", "no cap", *sizes]
    rows = []
    for r in d["results"]:
        o = r["over_best"]
        best = min(v for k, v in r["seconds"].items() if k.startswith("B="))
        rows.append(
            [
                f"{r['what']} (`{r['strategy']}`)",
                f"{r['N']:,}",
                f"{r['rows']:,}",
                f"{best:.3g}",
                str(r["default_chunk"]),
                f"**{o['default']:.2f}**",
                str(r.get("uncapped_chunk", "—")),
                f"{o['no cap']:.2f}" if "no cap" in o else "—",
                *[f"{o[k]:.2f}" for k in sizes],
            ]
        )
    cap = d.get("cpu_max_chunk")
    note = (
        f"`{d['command']}` (`bench/results/chunk_sizes.json`): {_machine(d['machine'])}; the "
        f"last-level cache reads {d['cache_bytes'] / 2**20:,.0f} MiB"
        + (f", rows per chunk capped at {cap}" if cap else ", no cap on rows per chunk")
        + ". Seconds for one central-difference gradient (2N rows, float64, jitted) at the best fixed "
        "B, then every contender as a ratio to that best, medians of interleaved rounds; *default B*: "
        "what the engine chose for the plan's rows; *no cap*: the same rule without the cap on rows "
        "per chunk (as before it), traced and timed in the same rounds."
    )
    return note + "\n\n" + _table(header, rows, "lrrrrrrr" + "r" * len(sizes))


def chunk_sizes() -> str:
    return chunk_sizes_table(_load("chunk_sizes.json"))


def compile_bound() -> str:
    d = _load("compile_bound.json")
    cols = [
        "f",
        "vmap(f), leaves in",
        "vmap(f), flat rows",
        "slices only",
        "fdjax.grad dense",
        "fdjax.grad auto",
    ]
    header = ["layers", "leaves", "N", *(f"{c} (s)" for c in cols), "kernels: leaves in / flat rows"]
    rows = []
    for r in d["results"]:
        k = r["kernels"]
        rows.append(
            [
                str(r["layers"]),
                str(r["leaves"]),
                f"{r['N']:,}",
                *(f"{r['seconds'][c]:.2f}" for c in cols),
                f"{k['vmap(f), leaves in']} / {k['vmap(f), flat rows']}",
            ]
        )
    note = (
        f"`python bench/compile_bound.py` (`bench/results/compile_bound.json`): {_machine(d['machine'])}. "
        f"XLA compile seconds of deep tanh MLPs (width 32, batch 8, float64); the vmapped programs "
        f"evaluate {d['rows']} rows. *fdjax.grad*: first call minus a warm call (every program of the "
        "plan traced, lowered and compiled). *kernels*: fusions in the optimized HLO."
    )
    return note + "\n\n" + _table(header, rows, "rrr" + "r" * len(cols) + "r")


def train_step() -> str:
    """The check inside a jitted optax step (``python -m bench.train_step``)."""
    d = _load("train_step.json")
    header = ["mode", "N", "plain step compile (s)", "step + check compile (s)", "ratio"]
    header += ["checked step (ms)", "passed"]
    rows = [
        [
            f"`{r['mode']}`",
            f"{r['n']:,}",
            f"{r['plain_compile_s']:.2f}",
            f"{r['checked_compile_s']:.2f}",
            f"{r['ratio']:.1f}×",
            f"{r['checked_step_s'] * 1e3:.1f}",
            "yes" if r["passed"] else "**no**",
        ]
        for r in d["rows"]
    ]
    note = (
        f"`{d['command']}` (`bench/results/train_step.json`): a tanh MLP loss, float32, N = 1,152, "
        f"`optax.adam`, jitted; compile = first call − second call, medians of {d['rows'][0]['repeats']} "
        "fresh processes; the checked step returns `check_grad(...).passed`."
    )
    return note + "\n\n" + _table(header, rows, "lrrrrrl")


TABLES: dict[str, Callable[[], str]] = {
    "train-step": train_step,
    "suite-throughput": suite_throughput,
    "suite-chunks": suite_chunks,
    "suite-devices": suite_devices,
    "throughput": throughput,
    "memory": memory,
    "targets": targets,
    "check-time": check_time,
    "adaptive-accuracy": adaptive_accuracy,
    "adaptive-gradient": adaptive_gradient,
    "verdicts": verdicts,
    "false_alarms": false_alarms,
    "latency": latency,
    "strategies": strategies,
    "compile-bound": compile_bound,
    "chunk-sizes": chunk_sizes,
}


# ------------------------------------------------------------------------------------------
# Pages


def pages(root: Path | None = None) -> list[Path]:
    """README.md and every Markdown page under docs/ (of the repository, or of ``root``)."""
    root = ROOT if root is None else root
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def render(text: str, where: str = "<text>") -> str:
    """``text`` with every table block regenerated.

    Raises:
        KeyError: a block names a table that does not exist.
    """

    def sub(m: re.Match) -> str:
        if m["name"] not in TABLES:
            raise KeyError(f"{where}: unknown table {m['name']!r}; known: {sorted(TABLES)}")
        return m["open"] + "\n" + TABLES[m["name"]]().strip() + "\n\n" + m["close"]

    return BLOCK.sub(sub, text)


def stale(root: Path | None = None) -> dict[Path, str]:
    """Pages whose committed tables differ from what the JSON generates: path -> unified diff."""
    root = ROOT if root is None else root
    out = {}
    for path in pages(root):
        old = path.read_text(encoding="utf-8")
        new = render(old, str(path.relative_to(root)))
        if new != old:
            rel = str(path.relative_to(root))
            diff = difflib.unified_diff(old.splitlines(True), new.splitlines(True), rel, rel + " (generated)")
            out[path] = "".join(diff)
    return out


def used(root: Path | None = None) -> dict[str, list[Path]]:
    """Table name -> the pages that show it."""
    root = ROOT if root is None else root
    out: dict[str, list[Path]] = {}
    for path in pages(root):
        for m in BLOCK.finditer(path.read_text(encoding="utf-8")):
            out.setdefault(m["name"], []).append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tables", description=__doc__.splitlines()[0])
    p.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when a committed table is stale"
    )
    args = p.parse_args(argv)
    try:
        changed = stale()
    except (KeyError, ValueError, OSError) as e:
        print(f"python -m bench.tables: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        for path, diff in changed.items():
            sys.stdout.write(diff)
            print(f"{path.relative_to(ROOT)}: tables differ from bench/results/*.json", file=sys.stderr)
        if changed:
            print("run `python -m bench.tables` and commit the pages", file=sys.stderr)
        return 1 if changed else 0
    for path in changed:
        path.write_text(render(path.read_text(encoding="utf-8"), str(path)), encoding="utf-8")
        print(f"rewrote the tables of {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
