"""The admin's import body is built from the cases file and each model's saved clinical-cases predictions."""

from __future__ import annotations

import json

from medllama.cli import main


def test_payload_from_saved_predictions(tmp_path, capsys):
    preds = tmp_path / "clinical-cases.jsonl"
    preds.write_text(json.dumps({"id": "case-01", "prediction": "Hypothyroidism\nAnemia", "reference": "x"}) + "\n")
    assert main(["rating-payload", "--cases", "samples://eval/clinical-cases/cases.jsonl",
                 "--predictions", f"tiny={preds}"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in body["cases"]] == ["case-01"] and body["cases"][0]["diagnosis"] == "Hypothyroidism"
    assert body["differentials"] == {"tiny": {"case-01": ["Hypothyroidism", "Anemia"]}}
    assert main(["rating-payload", "--cases", "samples://eval/clinical-cases/cases.jsonl", "--predictions", str(preds)]) == 2
    assert "MODEL=PATH" in capsys.readouterr().err
