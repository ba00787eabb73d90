"""bench/train_throughput.py runs end to end on CPU at --tiny and reports both rows with every field
(no timing is asserted: 2 shared cores say nothing about an H100)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "train_throughput.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_cpu_bench_reports_hf_and_medllama_rows(tmp_path):
    out = tmp_path / "train.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--steps", "2", "--warmup", "1",
                           "--micro-batch", "2", "--docs-per-row", "3", "--workdir", str(tmp_path), "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert {"date", "device", "device_name", "torch", "deepspeed", "transformers", "flops_per_token", "peak_flops",
            "model", "rows"} <= set(r)
    assert r["device"] == "cpu" and r["peak_flops"] is None and r["flops_per_token"] > 0
    assert [(row["impl"], row["micro_batch"]) for row in r["rows"]] == [("hf", 2), ("medllama", 2)]
    for row in r["rows"]:
        assert "error" not in row, row
        assert len(row["step_seconds"]) == 3 and row["tokens_per_s"] > 0 and row["mfu"] is None
    assert "| medllama | default | 2 |" in proc.stdout
    assert not (tmp_path / "RESULTS.md").exists()
    assert [p.name for p in (tmp_path / "train-logs").glob("medllama-*.log")]  # the trainer row's log came back


def test_record_touches_only_its_section(tmp_path):
    bench = load_bench()
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Data preparation\n\nfigures\n\n## Training throughput\n\nold\n\n## Evaluation\n\nx\n")
    bench.record("| new table |\n", results)
    text = results.read_text()
    assert text == ("# Results\n\n## Data preparation\n\nfigures\n\n## Training throughput\n\nold\n\n| new table |\n"
                    "\n## Evaluation\n\nx\n")
    fresh = tmp_path / "NEW.md"
    bench.record("| t |\n", fresh)
    assert fresh.read_text() == "## Training throughput\n\n| t |\n"


def test_variants_parse_as_stage_overrides():
    bench = load_bench()
    assert bench.parse_variant("fused_optimizer=true, compile=true,attn_implementation=sdpa") == {
        "fused_optimizer": True, "compile": True, "attn_implementation": "sdpa"}
    assert bench.parse_variant("") == {}
    with pytest.raises(SystemExit):
        bench.parse_variant("compile")


def test_table_from_an_earlier_result(tmp_path, capsys):
    bench = load_bench()
    result = {"date": "2026-11-25 12:00 UTC", "device_name": "NVIDIA H100 80GB HBM3", "tiny": False,
              "model": {"hidden_size": 2048, "num_hidden_layers": 22, "vocab_size": 32000, "seq_len": 2048},
              "torch": "2.11", "deepspeed": "0.19.8", "transformers": "5.17", "steps": 10, "warmup": 3,
              "peak_flops": 989e12, "command": "python bench/train_throughput.py --device cuda",
              "rows": [{"impl": "hf", "variant": "", "micro_batch": 4, "tokens_per_s": 40933.0, "mfu": 0.319},
                       {"impl": "medllama", "variant": "compile=true", "micro_batch": 4, "error": "boom",
                        "tokens_per_s": None, "mfu": None}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    assert bench.main(["--from-json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| hf | default | 4 | 40,933 | 31.9% |" in out and "| medllama | compile=true | 4 | failed | — |" in out
