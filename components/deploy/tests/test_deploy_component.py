"""The deploy component called directly with stand-in artifacts (no Kubernetes API here): it records the
resources it would apply for the registered version, and names the GPU path's artifact URI on the work PVC."""

# no `from __future__ import annotations`: KFP reads the component's annotations as real types

from types import SimpleNamespace

import pytest
import yaml

from components.deploy.component import deploy_model


class _Artifact(SimpleNamespace):
    def __init__(self, path, metadata=None):
        super().__init__(path=str(path), metadata=dict(metadata or {}))


def test_without_a_cluster_the_component_records_the_cpu_resources(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    manifest = _Artifact(tmp_path / "manifest")
    url = deploy_model.python_func(model_name="me-llama-tiny", version="4", cluster="dev", tracking_uri="",
                                   model=_Artifact(tmp_path / "m", {"uri": "/mnt/medllama/runs/r/sft/model"}),
                                   work_pvc="medllama-work", gpus=0, namespace="team-a", manifest=manifest)
    assert url == "" and manifest.metadata["applied"] is False
    (isvc,) = yaml.safe_load_all(open(manifest.path).read())
    assert isvc["kind"] == "InferenceService" and isvc["metadata"]["namespace"] == "team-a"
    assert isvc["spec"]["predictor"]["model"]["args"] == ["--model", "models:/me-llama-tiny/4"]


@pytest.mark.local
def test_gpu_path_serves_the_registered_folder_from_the_work_pvc(tmp_path, monkeypatch):
    """A local MLflow store keeps artifacts on local disk: vLLM reads the same bytes from the work PVC."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
    from registry.conftest import save_tiny_llama

    from medllama.cluster import load_profile
    from medllama.registry import register_model

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.chdir(tmp_path)
    rv = register_model(save_tiny_llama(tmp_path / "model"), "gpu-tiny", {"acc": 0.5})
    manifest = _Artifact(tmp_path / "manifest")
    deploy_model.python_func(model_name="gpu-tiny", version=rv.version, cluster="gpu", tracking_uri=rv.tracking_uri,
                             model=_Artifact(tmp_path / "m", {"uri": "/mnt/medllama/runs/r/sft/model"}),
                             work_pvc="medllama-work", gpus=1, namespace="", manifest=manifest)
    (llm,) = yaml.safe_load_all(open(manifest.path).read())
    assert llm["spec"]["model"]["uri"] == "pvc://medllama-work/runs/r/sft/model"
    assert llm["metadata"]["namespace"] == load_profile("gpu").namespace  # the profile's, unless given
    assert llm["spec"]["template"]["containers"][0]["resources"]["limits"] == {load_profile("gpu").gpu_resource: "1"}
