"""The whole pipeline on this machine: kfp.local runs prepare → CPT → SFT → evaluate → register with the
tiny recipe (shortened), real DeepSpeed on CPU, and a real MLflow store; the registered version is read back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.local]

SHORT = ["--set", "cpt.max_steps=40", "--set", "sft.max_steps=20", "--set", "cpt.save_every=20"]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("pipeline"), SHORT)


def _run(workdir: Path, args: list[str]):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(
        [sys.executable, "-m", "medllama.cli", "pipeline", "run", "--recipe", "tiny", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=900,
    )
    return workdir, out


def test_pipeline_registers_a_model_version_with_metrics(pipeline_run):
    workdir, out = pipeline_run
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Registered model: me-llama-tiny  version 1" in out.stdout
    assert "mlflow ui" in out.stdout
    uri = f"sqlite:///{workdir / '.medllama' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("me-llama-tiny", "1")
    metrics = client.get_run(version.run_id).data.metrics
    for key in ("pubmedqa/accuracy", "pubmedqa/macro_f1", "medqa/accuracy", "medqa/macro_f1",
                "cpt_parent/pubmedqa/accuracy", "cpt_parent/medqa/accuracy",
                "contamination/pubmedqa/share", "contamination/medqa/share"):  # test sets found in the corpus
        assert 0.0 <= metrics[key] <= 1.0, key


def test_supervised_branch_registers_each_tuned_model_linked_to_the_registered_one(pipeline_run):
    workdir, out = pipeline_run
    assert out.returncode == 0
    uri = f"sqlite:///{workdir / '.medllama' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    base = client.get_model_version("me-llama-tiny", "1")
    for task in ("pubmedqa", "medqa"):  # the tiny recipe's supervised.tasks
        tuned = client.get_model_version(f"me-llama-tiny-{task}", "1")
        assert tuned.tags["medllama.base_version"] == "models:/me-llama-tiny/1"
        assert base.tags[f"medllama.supervised.{task}"] == f"models:/me-llama-tiny-{task}/1"
        metrics = client.get_run(tuned.run_id).data.metrics
        assert {f"{task}/accuracy", f"zero-shot/{task}/accuracy", f"overlap/{task}/dropped"} <= set(metrics)
    reports = list((workdir / ".medllama" / "runs" / "kfp-root").glob("*/supervised-report/report"))
    assert len(reports) == 1
    table = reports[0].read_text()
    assert "| pubmedqa | accuracy |" in table and "| medqa | accuracy |" in table


def test_training_stages_learned_and_left_hf_models(pipeline_run):
    workdir, out = pipeline_run
    assert out.returncode == 0
    runs = [p for p in (workdir / ".medllama" / "runs").iterdir() if (p / "cpt").is_dir()]
    assert len(runs) == 1
    for stage in ("cpt", "sft"):
        metrics = json.loads((runs[0] / stage / "metrics.json").read_text())
        assert metrics["final_loss"] < metrics["first_loss"], stage
        assert (runs[0] / stage / "model" / "model.safetensors").is_file()
        assert (runs[0] / stage / "model" / "tokenizer.json").is_file()


def test_a_refused_candidate_stops_the_pipeline_with_its_reasons_in_the_report(tmp_path):
    """A gate no candidate can pass (the mean over tasks 0.5 better than its CPT parent): evaluate runs, register
    does not, nothing reaches the registry, and the evaluate task's Markdown artifact (what the KFP UI shows)
    holds the decision and the rule's reasons."""
    tasks = '[{name: pubmedqa, data: "samples://eval/pubmedqa/ori_pqal.json", limit: 4}]'
    quick = ["--set", "cpt.max_steps=2", "--set", "sft.max_steps=1", "--set", "cpt.save_every=2",
             "--set", f"eval.tasks={tasks}", "--set", "eval.tolerance=0.0", "--set", "eval.margin=0.5"]
    workdir, out = _run(tmp_path, quick)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]  # the CLI's "nothing registered"
    assert "Nothing registered for me-llama-tiny" in out.stdout
    uri = f"sqlite:///{workdir / '.medllama' / 'mlflow.db'}"
    assert MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions("name='me-llama-tiny'") == []
    root = workdir / ".medllama" / "runs" / "kfp-root"
    reports = [p for p in root.rglob("report") if p.is_file() and p.read_text().startswith("# Evaluation")]
    assert len(reports) == 1
    text = reports[0].read_text()
    assert "**Decision: NOT promoted**" in text and "block: below the margin" in text
    assert "vs base_model: none, the recipe trains from random init" in text and "| pubmedqa/accuracy | 4 |" in text
    assert not any("register" in p.name for p in root.rglob("*") if p.is_dir())


def test_deploy_step_records_what_it_would_apply_and_the_summary_says_how_to_call(pipeline_run):
    """kfp.local has no Kubernetes API: the deploy step writes the InferenceService it would apply."""
    import yaml

    workdir, out = pipeline_run
    assert out.returncode == 0
    (manifest,) = [p for p in (workdir / ".medllama" / "runs" / "kfp-root").rglob("manifest") if p.is_file()]
    (isvc,) = yaml.safe_load_all(manifest.read_text())
    assert isvc["kind"] == "InferenceService"
    assert isvc["spec"]["predictor"]["model"]["args"] == ["--model", "models:/me-llama-tiny/1"]
    assert "medllama serve --model models:/me-llama-tiny/1" in out.stdout
    assert "/openai/v1/chat/completions" in out.stdout
    (sft_model,) = (workdir / ".medllama" / "runs").glob("*/sft/model")  # exported with the SFT chat template
    assert "### Instruction:" in (sft_model / "chat_template.jinja").read_text()
