"""A real supervised run: the tiny model registered in a real MLflow store (SQLite), tuned on the bundled PubMedQA
training split by the project's trainer (DeepSpeed on CPU, LoRA), scored beside its zero-shot self, registered as
its own version linked both ways to its base version."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from medllama.cli import main
from medllama.registry import register_model
from medllama.supervised import SupervisedResult, finetune_task
from medllama.supervised.report import BASE_LINK_TAG, TUNED_LINK_TAG

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def supervised_run(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("supervised")
    store = f"sqlite:///{root / 'mlflow.db'}"
    base = register_model(tiny_model, "me-llama-tiny", {"pubmedqa/accuracy": 0.0}, tracking_uri=store)
    result = finetune_task("tiny", "pubmedqa", base.model_uri, root / "out", register=True, tracking_uri=store)
    return result, store, root


def test_tuning_moves_the_score_away_from_zero_shot(supervised_run):
    result, _, root = supervised_run
    assert result.training["steps"] == 8 and result.training["examples"] == 60
    assert result.training["final_loss"] < result.training["first_loss"]
    assert result.stage["lora"]["r"] == 8 and result.stage["objective"] == "sft"  # the task's stage in tiny.yaml
    assert result.stage["nproc_per_node"] == 1 and result.stage["micro_batch_size"] == 8  # the rest from sft
    assert set(result.zero_shot) == set(result.supervised) == {"pubmedqa/accuracy", "pubmedqa/macro_f1"}
    moved = {k: result.supervised[k] - result.zero_shot[k] for k in result.supervised}
    print("supervised minus zero-shot:", moved)  # the direction is reported, not judged
    assert any(abs(d) > 0 for d in moved.values())
    saved = SupervisedResult.load(root / "out")
    assert saved.supervised == result.supervised and saved.overlap["dropped"] == 0
    report = (root / "out" / "result.md").read_text()
    assert "| pubmedqa | accuracy |" in report and "0 of 20" in report  # the 20 PMIDs of the sample's test_ground_truth.json
    zero = json.loads((root / "out" / "eval" / "zero-shot.json").read_text())
    tuned = json.loads((root / "out" / "eval" / "supervised.json").read_text())
    assert [s["id"] for s in zero["tasks"][0]["samples"]] == [s["id"] for s in tuned["tasks"][0]["samples"]]
    assert zero["model_sha256"] != tuned["model_sha256"]


def test_tuned_model_is_its_own_version_linked_to_its_base(supervised_run):
    result, store, _ = supervised_run
    assert result.base_version == "models:/me-llama-tiny/1"
    assert result.registered == "models:/me-llama-tiny-pubmedqa/1"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    tuned = client.get_model_version("me-llama-tiny-pubmedqa", "1")
    assert tuned.tags[BASE_LINK_TAG] == "models:/me-llama-tiny/1"
    assert tuned.tags["medllama.task"] == "pubmedqa" and tuned.tags["medllama.setting"] == "supervised"
    assert "| task | metric | zero-shot | supervised | Δ |" in tuned.description  # the card, side by side
    base = client.get_model_version("me-llama-tiny", "1")
    assert base.tags[TUNED_LINK_TAG.format(task="pubmedqa")] == "models:/me-llama-tiny-pubmedqa/1"
    metrics = client.get_run(tuned.run_id).data.metrics
    assert metrics["pubmedqa/accuracy"] == pytest.approx(result.supervised["pubmedqa/accuracy"])
    assert metrics["zero-shot/pubmedqa/accuracy"] == pytest.approx(result.zero_shot["pubmedqa/accuracy"])
    assert metrics["overlap/pubmedqa/dropped"] == 0


def test_cli_names_what_is_missing(capsys, tiny_model, tmp_path):
    assert main(["finetune-task", "--model", str(tiny_model), "--task", "bionli", "--output", str(tmp_path)]) == 2
    assert "not in the recipe's supervised.tasks" in capsys.readouterr().err
    assert main(["finetune-task", "--model", str(tmp_path / "nope"), "--task", "pubmedqa",
                 "--output", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
