"""The throughput benchmark runs end to end at a tiny scale and reports every field (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "data_throughput.py"


def test_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(SCRIPT), "--scale", "0.02", "--cores", "1", "--rss-scales", "1,2",
                    "--phi-notes", "20", "--workdir", str(tmp_path), "--json", str(out)], check=True, capture_output=True, timeout=600)
    r = json.loads(out.read_text())
    for key in ("ceiling", "ours_dedup_off", "ours_minhash", "hf_run_clm"):
        assert r[key]["tokens_per_s"] > 0 and r[key]["wall_s"] > 0 and r[key]["peak_rss_tree_mb"] > 0, key
    assert r["tokens"] > 0 and r["ours_dedup_off"]["tokens_out"] == r["ours_minhash"]["tokens_out"] == r["tokens"]
    assert set(r["ratios"]) == {"a_off/c", "a_minhash/c", "a_off/b", "a_minhash/b", "c/b", "rss_max/rss_min"}
    assert set(r["rss"]) == {"1x", "2x"} and r["machine"]["cpus"] >= 1
    phi = r["phi_scan"]
    assert phi["notes"] == 20 and phi["scan_s"] > 0 and phi["tokenize_s"] > 0 and phi["tokens"] > 0
    assert phi["per_type"]["MRN"]["gold"] == 20 and set(phi["per_type"]) >= {"NAME", "DATE", "SSN", "AGE_OVER_89"}
