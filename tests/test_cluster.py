"""The cluster profile (medllama.cluster, cluster/*.yaml): typed, validated with the file and field named,
and the one place the pipeline, the launchers and the CLI take cluster settings from."""

from __future__ import annotations

import pytest
import yaml

from medllama.cluster import DEFAULT_PROFILE, PROFILES_DIR, load_profile
from medllama.cli import main


def test_every_profile_loads_and_is_named_after_its_file():
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    assert {"dev", "gpu"} <= set(names) and DEFAULT_PROFILE == "dev"
    for name in names:
        assert load_profile(name).name == name


@pytest.mark.parametrize("change,error", [
    (lambda p: p["images"].update(trainer="ghcr.io/x/trainer:latest"), "images.trainer: .*pin a version"),
    (lambda p: p["images"].update(gate="ghcr.io/x/gate"), "images.gate: .*pin a version"),
    (lambda p: p.update(mlflow_uri="sqlite:///mlflow.db"), "mlflow_uri: .*vanishes with the pod"),
    (lambda p: p["training"].update(operator="mpijob"), "training.operator"),
    (lambda p: p["work"].update(pvc_name="x"), "work.pvc_name: Extra inputs are not permitted"),
])
def test_bad_profiles_name_the_file_and_field(tmp_path, change, error):
    data = yaml.safe_load((PROFILES_DIR / "dev.yaml").read_text())
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=f"{path}: {error}"):
        load_profile(path)
    with pytest.raises(FileNotFoundError, match="known: .*dev.*gpu"):
        load_profile("nosuch")


def test_job_options_put_gpus_and_placement_only_on_gpu_profiles():
    dev, gpu = load_profile("dev").job_options(2), load_profile("gpu").job_options(8)
    assert dev["gpus"] == 0 and dev["node_selector"] == {} and dev["tolerations"] == []
    assert gpu["gpus"] == 8 and gpu["node_selector"] == load_profile("gpu").node_selector and gpu["tolerations"]
    for options in (dev, gpu):
        assert options["env"]["MLFLOW_TRACKING_URI"].startswith("http")
        assert {"MEDLLAMA_MODELS", "MEDLLAMA_CORPORA", "MEDLLAMA_EVAL_DATA"} <= set(options["env"])
        assert {"AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_PASSWORD"} <= set(options["secret_env"])


def test_components_declare_the_profiles_image():
    from components.images import MEDLLAMA_IMAGE

    assert MEDLLAMA_IMAGE == load_profile().images.trainer


def test_cli_dry_run_uses_the_chosen_profile(capsys):
    argv = ["train", "--recipe", "tiny", "--stage", "cpt", "--data", "/mnt/medllama/d", "--tokenizer", "/mnt/t",
            "--output", "/mnt/medllama/out", "--launcher", "kubernetes", "--dry-run"]
    assert main([*argv, "--cluster", "gpu"]) == 0
    job = yaml.safe_load(capsys.readouterr().out.split("\n{")[0])
    container = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2" and job["metadata"]["namespace"] == "medllama"
    assert main([*argv, "--cluster", "nosuch"]) == 2
    assert "cluster profile 'nosuch'" in capsys.readouterr().err


def test_no_sqlite_store_inside_a_pod(monkeypatch):
    from medllama.registry.store import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None).startswith("sqlite:///")  # on a workstation: the local store
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI"):
        resolve_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert resolve_tracking_uri(None) == "http://mlflow:5000"
