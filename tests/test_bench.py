"""The benchmark suite runs (a smoke test: figures are measured in bench/, never asserted)."""

import json
import subprocess
import sys

import pytest

from subprocess_json import ROOT, run_command


def test_bench_suite_runs_and_writes_its_table_and_json(tmp_path):
    out = tmp_path / "suite.json"
    proc = run_command(
        [
            "-m",
            "bench",
            "--quick",
            "--sizes",
            "1000",
            "--repeats",
            "1",
            "--seconds",
            "0.02",
            "--chunk-n",
            "1000",
            "--out",
            str(out),
        ],
        cwd=ROOT,
    )
    assert "### Throughput" in proc.stdout and "### Chunk size" in proc.stdout
    data = json.loads(out.read_text())
    (row,) = data["throughput"]
    assert row["N"] >= 1000 and row["evals_per_s"] > 0 and row["limit_evals_per_s"] > 0
    assert row["chunk_size"] >= 1 and row["compile_s"] > 0
    assert data["peak_matmul_gflops"] > 0 and len(data["chunk_curve"]) == 7  # 6 fixed B and auto
    assert all(c["N"] >= 1000 and c["evals_per_s"] > 0 for c in data["chunk_curve"])
    assert data["machine"]["backend"] == "cpu"


def test_latency_bench_runs_and_writes_its_json(tmp_path):
    """bench/latency.py end to end at N = 10: cold, cache pair and warm processes, the table."""
    from bench.latency import SIZES, shape_for

    assert all(h * (k + 2) + 1 == n for n in SIZES for k, h in [shape_for(n)])
    out = tmp_path / "latency.json"
    args = ["--quick", "--sizes", "10", "--modes", "directional", "--cache-sizes", "10", "--out", str(out)]
    proc = run_command(["-m", "bench.latency", *args], cwd=ROOT)
    assert "Where a first call's time goes" in proc.stdout and "Goals (issue 13" in proc.stdout
    data = json.loads(out.read_text())
    rows = {r["what"]: r for r in data["rows"]}
    assert {"check_grad:directional", "check_grads"} <= set(rows)
    for r in rows.values():
        assert not r["errors"], r["errors"]
        assert min(r["cold_s"], r["cache_s"], r["new_fn_s"], r["same_fn_s"], r["import_s"]) > 0
    fd = rows["check_grad:directional"]
    assert fd["verdict"] == "pass" and fd["cold_vs_check_grads"] > 0
    # the second process reads every program from the persistent cache the first one wrote
    assert fd["phases"]["cache"]["compiled"] == 0 and fd["phases"]["cache"]["cache_hits"] > 0
    assert fd["phases"]["cold"]["compiled"] > 0 and data["machine"]["backend"] == "cpu"


@pytest.mark.parametrize(
    "args,message",
    [
        (["-m", "bench", "--repeats", "0"], "--repeats must be positive, got 0"),
        (["-m", "bench", "--chunk-n", "-5"], "--chunk-n must be positive, got -5"),
        (["-m", "bench.false_alarms", "--key-ids", "1", "-3"], "--key-ids must be non-negative, got [1, -3]"),
    ],
)
def test_bench_options_out_of_range_are_usage_errors(args, message):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
