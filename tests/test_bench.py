"""The benchmark suite runs (a smoke test: figures are measured in bench/, never asserted)."""

import json

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
    assert data["peak_matmul_gflops"] > 0 and data["chunk_curve"]
    assert data["machine"]["backend"] == "cpu"
