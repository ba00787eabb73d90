"""k8s/: the kustomize overlays render (real `kubectl kustomize`), every object is valid for its kind, our
pods follow the policy, and names, images and settings agree with the cluster profile of the same name."""

from __future__ import annotations

import os

import pytest
import yaml

from medllama.cli import build_parser
from medllama.cluster import load_profile
from tests.k8s.manifests import ROOT, kustomize, policy_violations, validate

K8S = ROOT / "k8s"
ISSUE_RULES = {  # the pipeline's Role, as issue 13 lists it, plus what the pods of a KFP run and the deploy step need
    ("kubeflow.org", "pytorchjobs"): {"create", "get", "list", "watch", "delete"},
    ("trainer.kubeflow.org", "trainjobs"): {"create", "get", "list", "watch", "delete"},
    ("trainer.kubeflow.org", "trainingruntimes"): {"get"},
    ("serving.kserve.io", "inferenceservices"): {"create", "get", "list", "watch", "delete", "patch"},  # deploy step
    ("serving.kserve.io", "llminferenceservices"): {"create", "get", "list", "watch", "delete", "patch"},
    ("", "pods"): {"get", "list"},
    ("", "pods/log"): {"get", "list"},
    ("argoproj.io", "workflowtaskresults"): {"create", "patch"},
    ("", "configmaps"): {"get"},
}


@pytest.fixture(scope="module", params=["dev", "gpu"])
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, kustomize(K8S / "overlays" / request.param)


def by_kind(objs: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_every_object_is_valid_and_follows_the_policy(overlay):
    _, objs = overlay
    for obj in objs:
        validate(obj)
    assert [v for obj in objs for v in policy_violations(obj)] == []
    for isvc in by_kind(objs, "InferenceService").values():
        assert {"requests", "limits"} <= set(isvc["spec"]["predictor"]["model"]["resources"])


def test_objects_match_the_cluster_profile(overlay):
    name, objs = overlay
    profile = load_profile(name)
    assert {o["metadata"].get("namespace", profile.namespace) for o in objs} == {profile.namespace}
    assert set(by_kind(objs, "Namespace")) == {profile.namespace}
    pvc = by_kind(objs, "PersistentVolumeClaim")[profile.work.pvc]["spec"]
    assert pvc["accessModes"] == ["ReadWriteMany"] and pvc["resources"]["requests"]["storage"] == profile.work.size
    assert by_kind(objs, "ConfigMap")[profile.env_config_map]["data"] == profile.pod_env()
    assert profile.service_account in by_kind(objs, "ServiceAccount")
    images = {c["image"] for o in objs for pod in _pods(o) for c in pod["containers"]}
    ours = {i for i in images if "/medllama-ops/" in i}
    assert ours <= {profile.images.trainer, profile.images.serve, profile.images.gate}
    runtime = by_kind(objs, "TrainingRuntime")[profile.training.runtime]
    assert {c["image"] for pod in _pods(runtime) for c in pod["containers"]} == {profile.images.trainer}


def _pods(obj):
    from tests.k8s.manifests import pod_specs

    return list(pod_specs(obj))


def test_pipeline_role_is_least_privilege(overlay):
    _, objs = overlay
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (role,) = by_kind(objs, "Role").values()
    granted = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == ISSUE_RULES
    assert [r["resourceNames"] for r in role["rules"] if "configmaps" in r["resources"]] == [["kfp-launcher"]]


def test_only_the_gate_and_the_pipeline_reach_model_servers_and_mlflow(overlay):
    _, objs = overlay
    policies = by_kind(objs, "NetworkPolicy")
    sources = {name: [f.get("podSelector", {}).get("matchLabels") for rule in p["spec"]["ingress"] for f in rule["from"]]
               for name, p in policies.items()}
    gate, pipeline = {"app.kubernetes.io/name": "medllama-gate"}, {"app.kubernetes.io/component": "medllama-pipeline"}
    assert sources["medllama-model-servers"] == [gate, pipeline]
    assert {"app.kubernetes.io/name": "medllama-train"} in sources["medllama-mlflow"]
    assert sources["medllama-postgres"] == [{"app.kubernetes.io/name": "medllama-mlflow"}, gate]
    serving = policies["medllama-model-servers"]["spec"]["podSelector"]["matchLabels"]
    (isvc,) = by_kind(objs, "InferenceService").values()
    assert isvc["spec"]["predictor"]["labels"].items() >= serving.items()


def test_containers_run_our_cli_with_flags_it_has(overlay):
    """The gate's and the model server's command lines parse with the real `medllama` CLI parser."""
    _, objs = overlay
    gate = by_kind(objs, "Deployment")["medllama-gate"]["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(gate["args"])
    assert (args.command, args.port) == ("gate", 8000)
    (runtime,) = by_kind(objs, "ServingRuntime").values()
    (isvc,) = by_kind(objs, "InferenceService").values()
    assert isvc["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]
    container = runtime["spec"]["containers"][0]
    assert container["command"][0] == "medllama"
    argv = container["command"][1:] + container["args"] + isvc["spec"]["predictor"]["model"]["args"]
    args = build_parser().parse_args(argv)  # KServe appends the InferenceService's args to the runtime's
    assert (args.command, args.port, args.model) == ("serve", 8080, argv[-1])


def test_gpu_overlay_puts_the_gate_in_front_through_istio():
    objs = kustomize(K8S / "overlays" / "gpu")
    (policy,) = by_kind(objs, "AuthorizationPolicy").values()
    mesh = yaml.safe_load((K8S / "components" / "istio-authz" / "meshconfig.yaml").read_text())
    (provider,) = mesh["spec"]["meshConfig"]["extensionProviders"]
    assert policy["spec"]["action"] == "CUSTOM" and policy["spec"]["provider"]["name"] == provider["name"]
    assert policy["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "medllama-serve"}
    authz = provider["envoyExtAuthzHttp"]
    gate = by_kind(objs, "Service")["medllama-gate"]
    assert authz["service"] == f"medllama-gate.{gate['metadata']['namespace']}.svc.cluster.local"
    assert authz["port"] == gate["spec"]["ports"][0]["port"] and authz["pathPrefix"] == "/check/envoy"
    assert by_kind(objs, "Namespace")["medllama"]["metadata"]["labels"]["istio-injection"] == "enabled"
    (isvc,) = by_kind(objs, "InferenceService").values()
    assert isvc["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_envoy_gateway_variant(tmp_path):
    """An overlay with the Envoy Gateway component: SecurityPolicy extAuth on the HTTPRoute to the model server."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(K8S / "base", tmp_path)],
        "components": [os.path.relpath(K8S / "components" / "envoy-gateway-authz", tmp_path)]}))
    objs = kustomize(tmp_path)
    for obj in objs:
        validate(obj)
    (route,) = by_kind(objs, "HTTPRoute").values()
    (policy,) = by_kind(objs, "SecurityPolicy").values()
    assert policy["spec"]["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                             "name": route["metadata"]["name"]}]
    http = policy["spec"]["extAuth"]["http"]
    gate = by_kind(objs, "Service")["medllama-gate"]
    assert http["backendRefs"] == [{"name": "medllama-gate", "port": gate["spec"]["ports"][0]["port"]}]
    assert http["path"] == "/check/envoy" and policy["spec"]["extAuth"]["failOpen"] is False
    (backend,) = route["spec"]["rules"][0]["backendRefs"]
    assert backend["name"] == f"{by_kind(objs, 'InferenceService')['me-llama']['metadata']['name']}-predictor"


def test_validation_catches_broken_manifests():
    objs = kustomize(K8S / "overlays" / "dev")
    deployment = by_kind(objs, "Deployment")["medllama-gate"]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    deployment["spec"]["template"]["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/medllama-ops/medllama-gate:latest"
    problems = "\n".join(policy_violations(deployment))
    assert "privileged" in problems and "hostPath" in problems and "not pinned" in problems
    isvc = by_kind(objs, "InferenceService")["me-llama"]
    isvc["spec"]["predictor"]["model"]["runtim"] = "x"
    with pytest.raises(ValueError, match="unknown field 'runtim'"):
        validate(isvc)
