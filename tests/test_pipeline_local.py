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
    workdir = tmp_path_factory.mktemp("pipeline")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(
        [sys.executable, "-m", "medllama.cli", "pipeline", "run", "--recipe", "tiny", *SHORT],
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
                "base/pubmedqa/accuracy", "base/medqa/accuracy",
                "contamination/pubmedqa/share", "contamination/medqa/share"):  # test sets found in the corpus
        assert 0.0 <= metrics[key] <= 1.0, key


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
