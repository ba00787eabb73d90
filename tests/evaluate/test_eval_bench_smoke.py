"""bench/eval_throughput.py at its smallest: both evaluators run and agree item by item, in generate mode (the
paper recipes' mode, vs lm-eval's generate_until) and option-text log-likelihood (no timing checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "eval_throughput.py"


def test_bench_runs_and_predictions_agree(tmp_path):
    spec = importlib.util.spec_from_file_location("eval_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--smoke", "--n", "4", "--batch-size", "2", "--rounds", "1", "--work", str(tmp_path),
                      "--cases", "pubmedqa-gen,medqa-text", "--out", str(tmp_path / "r.json")])
    assert {name: c["mode"] for name, c in out["cases"].items()} == {"pubmedqa-gen": "generate",
                                                                     "medqa-text": "loglikelihood"}
    for case in out["cases"].values():
        assert case["agreement"] == "4/4"  # generate: the raw outputs are identical; loglikelihood: the labels
        assert case["medllama"]["scoring_qps"] > 0 and case["lm_eval"]["scoring_qps"] > 0
    assert (tmp_path / "r.json").exists() and out["versions"]["lm_eval"]
