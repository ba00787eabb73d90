"""The serving resources of a registered version, checked against the upstream KServe CRD schemas, and the
deploy step's create-or-update-then-wait against a stand-in for KServeClient: no Kubernetes API server runs
here, so the stand-in records the calls and plays the controller by reporting Ready."""

from __future__ import annotations

import copy

import pytest
import yaml
from kubernetes.client.rest import ApiException

from medllama.k8s.deploy import DeployFailed, deploy_version
from medllama.k8s.serving import ServingOptions, serving_resources
from tests.crd_schema import CustomResourceInvalid, validate_custom_resource

CPU = ServingOptions("me-llama-tiny", "3", "team-a", "nvidia.com/gpu")
GPU = ServingOptions("Me-LLaMA 13B", "7", "team-a", "nvidia.com/gpu",
                     storage_uri="s3://mlflow/artifacts/1/abc/artifacts/model", gpus=2)


@pytest.mark.parametrize("options", [CPU, GPU], ids=["cpu", "gpu"])
def test_rendered_resources_are_valid_for_the_upstream_crds(options):
    for obj in serving_resources(options):
        validate_custom_resource(obj)  # raises with the path of the first field the API server would refuse


def test_cpu_serves_the_version_through_medllama_serve_on_the_clusters_runtime():
    """The runtime is the one k8s/base installs (our serve image running `medllama serve`); its pods get the
    label the NetworkPolicies open to the gate only."""
    (isvc,) = serving_resources(CPU)
    base = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open("k8s/base/serving.yaml"))}
    runtime = base[("ServingRuntime", "medllama-serve")]
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] and runtime["spec"]["containers"][0]["command"] == ["medllama", "serve"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["args"] == ["--model", "models:/me-llama-tiny/3"]
    assert isvc["spec"]["predictor"]["labels"] == base[("InferenceService", "me-llama")]["spec"]["predictor"]["labels"]
    assert isvc["metadata"]["labels"]["medllama.io/version"] == "3"


def test_gpu_serves_the_versions_artifacts_with_vllm_on_its_gpus():
    (llm,) = serving_resources(GPU)
    assert (llm["apiVersion"], llm["kind"]) == ("serving.kserve.io/v1alpha2", "LLMInferenceService")
    assert llm["metadata"]["name"] == "me-llama-13b"  # a DNS label from the registered name
    assert llm["spec"]["model"] == {"uri": GPU.storage_uri, "name": "Me-LLaMA 13B"}
    assert llm["spec"]["template"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    with pytest.raises(ValueError, match="artifact URI"):
        serving_resources(ServingOptions("m", "1", "ns", "nvidia.com/gpu", gpus=1))


def test_an_unknown_field_is_caught_by_the_schema_check():
    (llm,) = serving_resources(GPU)
    bad = copy.deepcopy(llm)
    bad["spec"]["model"]["path"] = "/models"
    with pytest.raises(CustomResourceInvalid, match="spec.model"):
        validate_custom_resource(bad)


class StandInCustomObjects:
    """CustomObjectsApi calls KServeClient makes, on a dict; `ready_after` polls until the controller says Ready."""

    def __init__(self, ready_after: int | None = 1):
        self.objects: dict[tuple, dict] = {}
        self.calls: list[str] = []
        self.ready_after, self.polls = ready_after, 0

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        key = (plural, namespace, name)
        if key not in self.objects:
            raise ApiException(status=404)
        obj = copy.deepcopy(self.objects[key])
        self.polls += 1
        if self.ready_after is not None and self.polls > self.ready_after:
            obj["status"] = {"url": f"http://{name}.{namespace}.example", "conditions": [{"type": "Ready", "status": "True"}]}
        return obj

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.calls.append(f"create {plural}/{body['metadata']['name']}")
        self.objects[(plural, namespace, body["metadata"]["name"])] = copy.deepcopy(body)

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.calls.append(f"patch {plural}/{name}")
        self.objects[(plural, namespace, name)].update(copy.deepcopy(body))


class StandInKServeClient:
    def __init__(self, ready_after: int | None = 1):
        self.api_instance = StandInCustomObjects(ready_after)

    def wait_isvc_ready(self, name, namespace, timeout_seconds, polling_interval):
        self.api_instance.polls = self.api_instance.ready_after or 0

    def get(self, name, namespace):
        return self.api_instance.get_namespaced_custom_object("serving.kserve.io", "v1beta1", namespace,
                                                              "inferenceservices", name)


def test_deploy_creates_then_updates_and_waits_for_ready(tmp_path):
    client = StandInKServeClient()
    first = deploy_version(GPU, tmp_path / "a.yaml", apply=True, client=client, poll_s=0)
    assert first["url"] == "http://me-llama-13b.team-a.example" and first["applied"]
    newer = ServingOptions(**{**GPU.__dict__, "version": "8", "storage_uri": "s3://mlflow/artifacts/1/def/artifacts/model"})
    deploy_version(newer, tmp_path / "b.yaml", apply=True, client=client, poll_s=0)
    assert client.api_instance.calls == ["create llminferenceservices/me-llama-13b", "patch llminferenceservices/me-llama-13b"]
    stored = client.api_instance.objects[("llminferenceservices", "team-a", "me-llama-13b")]
    assert stored["spec"]["model"]["uri"].endswith("/def/artifacts/model")
    assert list(yaml.safe_load_all((tmp_path / "b.yaml").read_text())) == serving_resources(newer)


def test_cpu_deploy_applies_the_inference_service_and_waits_with_kserve_client(tmp_path):
    client = StandInKServeClient()
    out = deploy_version(CPU, tmp_path / "m.yaml", apply=True, client=client)
    assert client.api_instance.calls == ["create inferenceservices/me-llama-tiny"]
    assert out["url"] == "http://me-llama-tiny.team-a.example"


def test_a_resource_that_never_gets_ready_fails_with_its_conditions(tmp_path):
    with pytest.raises(DeployFailed, match="not Ready"):
        deploy_version(GPU, tmp_path / "m.yaml", apply=True, client=StandInKServeClient(ready_after=None),
                       timeout_s=0.05, poll_s=0.01)


def test_without_a_cluster_the_step_only_records_what_it_would_apply(tmp_path):
    out = deploy_version(CPU, tmp_path / "m.yaml", apply=False)
    assert out == {"resources": ["InferenceService/me-llama-tiny"], "namespace": "team-a", "applied": False, "url": None}
    assert [d["kind"] for d in yaml.safe_load_all((tmp_path / "m.yaml").read_text())] == ["InferenceService"]
