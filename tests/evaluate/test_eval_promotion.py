"""The gate: promote iff every considered metric is within tolerance of the base."""

from __future__ import annotations

import math

from medllama.evaluate import decide_promotion, plot_comparison

BASE = {"pubmedqa/accuracy": 0.50, "pubmedqa/macro_f1": 0.40, "medqa/accuracy": 0.30}


def test_promotes_within_tolerance():
    cand = {"pubmedqa/accuracy": 0.49, "pubmedqa/macro_f1": 0.45, "medqa/accuracy": 0.30}
    d = decide_promotion(cand, BASE, tolerance=0.02, keys=None)
    assert d.promote and bool(d)
    assert len(d.reasons) == 3 and all("pass" in r for r in d.reasons)
    assert any("0.4900" in r and "0.5000" in r for r in d.reasons)


def test_blocks_when_one_key_falls_behind():
    cand = {"pubmedqa/accuracy": 0.47, "pubmedqa/macro_f1": 0.45, "medqa/accuracy": 0.90}
    d = decide_promotion(cand, BASE, tolerance=0.02, keys=None)
    assert not d.promote
    assert [r.split(":")[0] for r in d.reasons if r.endswith("block")] == ["pubmedqa/accuracy"]


def test_only_gated_keys_count():
    cand = {"pubmedqa/accuracy": 0.10, "pubmedqa/macro_f1": 0.45, "medqa/accuracy": 0.30}
    assert decide_promotion(cand, BASE, tolerance=0.0, keys=["medqa/accuracy", "pubmedqa/macro_f1"]).promote


def test_missing_or_nan_blocks():
    d = decide_promotion({"medqa/accuracy": 0.9}, BASE, tolerance=1.0, keys=["pubmedqa/accuracy"])
    assert not d.promote and "missing from candidate" in d.reasons[0]
    assert not decide_promotion({"medqa/accuracy": math.nan}, BASE, tolerance=1.0).promote
    assert not decide_promotion({"other/x": 1.0}, BASE, tolerance=1.0).promote


def test_tolerance_boundary_is_inclusive():
    assert decide_promotion({"m": 0.5}, {"m": 0.75}, tolerance=0.25).promote


def test_plot_comparison_writes_png(tmp_path):
    path = plot_comparison({k: v + 0.1 for k, v in BASE.items()}, BASE, tmp_path / "cmp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
