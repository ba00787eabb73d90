"""bench/gate_overhead.py at its smallest: every path answers 200 through real processes (no timing checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gate_overhead.py"


@pytest.mark.slow
@pytest.mark.local
def test_gate_bench_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gate_overhead", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--requests", "20", "--out", str(tmp_path / "r.json")])
    assert set(out["latency"]) == {"model direct", "nginx plain", "nginx + gate auth_request", "gate proxy",
                                   "gate check endpoint alone"}
    assert all(v["n"] == 20 for v in out["latency"].values())
    assert out["checks_over_http"]["requests"] == 40 and out["checks_in_process"]["checks_per_cpu_s"] > 0
    assert (tmp_path / "r.json").exists()
