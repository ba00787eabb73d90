"""Top-k diagnosis accuracy on hand-made cases: exact matching after normalisation, k = 1, 5, 10, and a judge model
(the tiny test model: its verdicts carry no meaning, but each is recorded with its prompt and decided by its scores)."""

from __future__ import annotations

import json

import pytest

from medllama.cli import main
from medllama.clinical.judge import judge_cases

# gold at rank 1 (written differently), rank 3 (a synonym), rank 7, rank 10, rank 12 (beyond k=10), and never
CASES = [
    ("c1", ["PARKINSON'S  disease.", "Essential tremor"], ["Parkinson's disease"]),
    ("c2", ["Gout", "Pseudogout", "Systemic lupus erythematosus"], ["Lupus", "Systemic lupus erythematosus"]),
    ("c3", [f"d{i}" for i in range(6)] + ["DKA"], ["Diabetic ketoacidosis", "DKA"]),
    ("c4", [f"d{i}" for i in range(9)] + ["Sarcoidosis"], ["Sarcoidosis"]),
    ("c5", [f"d{i}" for i in range(11)] + ["Migraine"], ["Migraine"]),
    ("c6", ["Asthma", "COPD"], ["Pulmonary embolism"]),
]


@pytest.fixture
def predictions(tmp_path):
    path = tmp_path / "clinical-cases.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prediction": "\n".join(p), "reference": "\n".join(r)}) + "\n"
                            for i, p, r in CASES))
    return path


def test_exact_matching_after_normalisation_at_k_1_5_10(predictions, tmp_path):
    metrics, cases = judge_cases(predictions, output=tmp_path / "out")
    assert [c.first_match for c in cases] == [1, 3, 7, 10, None, None]
    assert metrics == {"top1_accuracy": pytest.approx(1 / 6), "top5_accuracy": pytest.approx(2 / 6),
                       "top10_accuracy": pytest.approx(4 / 6), "cases": 6.0, "judged": 0.0}
    rows = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").open()]
    assert rows[1]["verdicts"][2] == {"rank": 3, "candidate": "Systemic lupus erythematosus", "match": True,
                                      "by": "exact", "prompt": None, "scores": None}
    assert len(rows[4]["verdicts"]) == 10  # only the top 10 are looked at


def test_normalisation_ignores_case_spacing_and_punctuation(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "prediction": ["parkinson s disease"], "reference": ["Parkinson's  Disease."]}))
    metrics, _ = judge_cases(path, ks=(1,))
    assert metrics["top1_accuracy"] == 1.0


def test_judge_verdicts_are_recorded_per_case(predictions, tiny_model, tmp_path):
    metrics, cases = judge_cases(predictions, judge=str(tiny_model), output=tmp_path / "out")
    judged = [v for c in cases for v in c.verdicts if v.by == "judge"]
    assert len(judged) == metrics["judged"] == sum(min(len(p), 10) for _, p, _ in CASES) - 4  # 4 exact
    for v in judged:
        assert "Candidate diagnosis: " + v.candidate in v.prompt and "Reference diagnosis:" in v.prompt
        assert v.match == (v.scores["yes"] > v.scores["no"])
    ranks = [c.first_match for c in cases]
    assert metrics["top10_accuracy"] == pytest.approx(sum(r is not None and r <= 10 for r in ranks) / 6)
    assert all(r is not None and r <= e for r, e in zip(ranks, [1, 3, 7, 10]))  # a judge only adds matches
    saved = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").open()]
    assert [s["first_match"] for s in saved] == ranks


def test_cli_and_bad_input(predictions, tmp_path, capsys):
    assert main(["judge-cases", "--predictions", str(predictions), "--k", "1,10"]) == 0
    assert json.loads(capsys.readouterr().out)["top10_accuracy"] == pytest.approx(4 / 6)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prediction": "Gout"}\n')
    assert main(["judge-cases", "--predictions", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
