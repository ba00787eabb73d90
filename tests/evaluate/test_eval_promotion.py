"""The gate: against each reference (CPT parent, original base), no task worse than tolerance and the mean
over tasks at least the margin better."""

from __future__ import annotations

import math

from medllama.evaluate import decide_promotion, plot_comparison

PARENT = {"pubmedqa/accuracy": 0.50, "pubmedqa/macro_f1": 0.40, "medqa/accuracy": 0.30}
BASE = {"pubmedqa/accuracy": 0.40, "pubmedqa/macro_f1": 0.30, "medqa/accuracy": 0.25}


def test_promotes_when_better_than_both_references():
    cand = {"pubmedqa/accuracy": 0.49, "pubmedqa/macro_f1": 0.45, "medqa/accuracy": 0.34}
    d = decide_promotion(cand, {"cpt_parent": PARENT, "base_model": BASE}, tolerance=0.02, margin=0.01)
    assert d.promote and bool(d)
    assert "no task more than 0.02 worse" in d.rule and "+0.01 better" in d.rule
    # per reference: one line per task (mean of its metrics) and one for the mean
    assert len(d.reasons) == 6 and all(r.endswith("pass") for r in d.reasons)
    assert "vs cpt_parent: pubmedqa 0.4700 vs 0.4500 (delta +0.0200" in d.reasons[1]


def test_blocks_when_one_task_falls_behind_one_reference():
    cand = {"pubmedqa/accuracy": 0.40, "pubmedqa/macro_f1": 0.40, "medqa/accuracy": 0.90}
    d = decide_promotion(cand, {"cpt_parent": PARENT, "base_model": BASE}, tolerance=0.02, margin=0.0)
    assert not d.promote
    blocked = [r for r in d.reasons if "block" in r]
    assert blocked == ["vs cpt_parent: pubmedqa 0.4000 vs 0.4500 (delta -0.0500, tolerance 0.02) "
                       "-> block: worse than tolerance"]


def test_blocks_when_the_mean_is_not_the_margin_better():
    """No task worse (within tolerance), yet not better enough on average: refused."""
    same = dict(PARENT)
    d = decide_promotion(same, {"cpt_parent": PARENT}, tolerance=0.02, margin=0.05)
    assert not d.promote and d.reasons[-1].endswith("block: below the margin")
    assert decide_promotion(same, {"cpt_parent": PARENT}, tolerance=0.0, margin=0.0).promote


def test_only_gated_keys_count():
    cand = {"pubmedqa/accuracy": 0.10, "pubmedqa/macro_f1": 0.45, "medqa/accuracy": 0.30}
    assert decide_promotion(cand, {"cpt_parent": PARENT}, tolerance=0.0,
                            keys=["medqa/accuracy", "pubmedqa/macro_f1"]).promote


def test_missing_or_nan_blocks():
    d = decide_promotion({"medqa/accuracy": 0.9}, {"p": PARENT}, tolerance=1.0, margin=-1, keys=["pubmedqa/accuracy"])
    assert not d.promote and "missing from candidate" in d.reasons[0]
    assert not decide_promotion({"medqa/accuracy": math.nan}, {"p": PARENT}, tolerance=1.0, margin=-1).promote
    assert not decide_promotion({"other/x": 1.0}, {"p": PARENT}, tolerance=1.0, margin=-1).promote


def test_tolerance_boundary_is_inclusive():
    assert decide_promotion({"m": 0.5}, {"p": {"m": 0.75}}, tolerance=0.25, margin=-0.25).promote


def test_plot_comparison_writes_png(tmp_path):
    path = plot_comparison({k: v + 0.1 for k, v in PARENT.items()}, {"cpt_parent": PARENT, "base_model": BASE},
                           tmp_path / "cmp.png", paper={"pubmedqa/accuracy": 0.7})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
