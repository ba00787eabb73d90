"""tests/crd_schema.py: the vendored upstream CRDs accept valid objects and reject what strict field
validation on an API server rejects, naming the path of the first error."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml

from tests.crd_schema import CRD_DIR, CustomResourceInvalid, strict_schema, validate_custom_resource

JOB = yaml.safe_load((CRD_DIR.parents[1] / "k8s" / "jobs" / "me-llama-13b-cpt.yaml").read_text())
ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
    "metadata": {"name": "me-llama", "labels": {"app": "medllama"}},
    "spec": {"predictor": {"model": {"modelFormat": {"name": "medllama"}, "runtime": "medllama-serve",
                                     "storageUri": "s3://models/me-llama",
                                     "resources": {"limits": {"cpu": 2, "memory": "8Gi"}}}}},
}


def master(job: dict) -> dict:
    return job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]


def test_valid_upstream_and_project_objects_pass():
    validate_custom_resource(JOB)
    validate_custom_resource(ISVC)  # cpu: 2 (integer) and memory: "8Gi" (string) are both int-or-string
    runtime = yaml.safe_load((CRD_DIR / "trainer" / "deepspeed_distributed.yaml").read_text())
    validate_custom_resource(runtime)  # upstream's own DeepSpeed runtime against upstream's CRD


def test_unknown_field_is_rejected_with_its_path():
    job = copy.deepcopy(JOB)
    master(job)["containers"][0]["resource"] = {"limits": {"cpu": "1"}}  # typo of `resources`
    with pytest.raises(CustomResourceInvalid, match="unknown field 'resource'") as e:
        validate_custom_resource(job)
    assert e.value.path == "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].resource"

    isvc = copy.deepcopy(ISVC)
    isvc["metadata"]["label"] = {"a": "b"}  # ObjectMeta is strict too
    with pytest.raises(CustomResourceInvalid) as e:
        validate_custom_resource(isvc)
    assert e.value.path == "metadata.label"


def test_wrong_type_is_rejected_with_its_path():
    job = copy.deepcopy(JOB)
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = "19"
    with pytest.raises(CustomResourceInvalid, match="is not of type 'integer'") as e:
        validate_custom_resource(job)
    assert e.value.path == "spec.pytorchReplicaSpecs.Worker.replicas"

    isvc = copy.deepcopy(ISVC)
    isvc["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] = ["2"]  # neither integer nor string
    with pytest.raises(CustomResourceInvalid) as e:
        validate_custom_resource(isvc)
    assert e.value.path == "spec.predictor.model.resources.limits.cpu"


def test_unknown_kind_is_named():
    with pytest.raises(KeyError, match="no vendored CRD for Foo"):
        validate_custom_resource({"apiVersion": "example.com/v1", "kind": "Foo"})


def test_structural_schema_extensions():
    """preserve-unknown-fields keeps any field, embedded resources get apiVersion/kind/metadata, nullable
    accepts null, maps keep their value schema (checked on a small schema: the vendored CRDs hardly use them)."""
    crd_schema = {"type": "object", "properties": {
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "embedded": {"type": "object", "x-kubernetes-embedded-resource": True,
                     "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
        "maybe": {"type": "string", "nullable": True},
        "sizes": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True,
                                                             "anyOf": [{"type": "integer"}, {"type": "string"}]}},
    }}
    v = jsonschema.Draft202012Validator(strict_schema(crd_schema))
    ok = {"free": {"anything": [1]}, "maybe": None, "sizes": {"a": 1, "b": "2Gi"},
          "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"x": 1}}}
    assert list(v.iter_errors(ok)) == []
    for bad in ({"other": 1}, {"maybe": 3}, {"sizes": {"a": 1.5}}, {"embedded": {"metadata": {"nme": "x"}}},
                {"embedded": {"status": {}}}):
        assert list(v.iter_errors(bad)), bad
