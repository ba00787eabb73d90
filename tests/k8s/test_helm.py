"""helm/medllama: lint clean in strict mode, rendered (helm-python-sdk: Helm's own Go library, offline) with
the default and the ci/ values into valid objects that follow the pod policy, the same objects as the
kustomize overlay of the same profile, settings read from the cluster profile, every value documented
in values.schema.json, and forbidden combinations refused with the fix in the message."""

from __future__ import annotations

import helm_python as helm
import pytest
import yaml

from medllama.cluster import load_profile
from tests.k8s.manifests import ROOT, kustomize, policy_violations, validate

CHART = ROOT / "helm" / "medllama"
CI_VALUES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((CHART / "ci").glob("*.yaml"))}
NAMESPACE = "medllama"


def render(values: dict | None = None, namespace: str = NAMESPACE) -> list[dict]:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values or {}, name="medllama", namespace=namespace)
    return [d for name, text in sorted(manifests.items()) if name.endswith(".yaml")
            for d in yaml.safe_load_all(text) if d]


def names(objs: list[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objs}


@pytest.mark.parametrize("values", ["default", *CI_VALUES])
def test_lint_is_clean_in_strict_mode(values):
    report = helm.lint(str(CHART), CI_VALUES.get(values, {}), strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # 2 = warning, 3 = error


@pytest.mark.parametrize("values", ["default", *CI_VALUES])
def test_rendered_objects_are_valid_and_follow_the_policy(values):
    objs = render(CI_VALUES.get(values))
    for obj in objs:
        validate(obj)
        # Helm sets no namespace; it installs into the release namespace
        assert obj["metadata"].get("namespace") is None
    assert [v for obj in objs for v in policy_violations(obj)] == []


@pytest.mark.parametrize("values,overlay", [("default", "dev"), ("gpu-values", "gpu")])
def test_chart_and_kustomize_deploy_the_same_objects(values, overlay):
    chart = names(render(CI_VALUES.get(values)))
    kustomized = names(kustomize(ROOT / "k8s" / "overlays" / overlay)) - {("Namespace", NAMESPACE)}
    assert chart == kustomized


@pytest.mark.parametrize("values,profile", [("default", "dev"), ("gpu-values", "gpu")])
def test_settings_come_from_the_cluster_profile(values, profile):
    p = load_profile(profile)
    objs = {(o["kind"], o["metadata"]["name"]): o for o in render(CI_VALUES.get(values))}
    assert objs[("ConfigMap", p.env_config_map)]["data"] == p.pod_env()
    pvc = objs[("PersistentVolumeClaim", p.work.pvc)]["spec"]
    assert pvc["resources"]["requests"]["storage"] == p.work.size and pvc["accessModes"] == ["ReadWriteMany"]
    assert ("ServiceAccount", p.service_account) in objs and ("TrainingRuntime", p.training.runtime) in objs
    assert objs[("Deployment", "medllama-gate")]["spec"]["template"]["spec"]["containers"][0]["image"] == p.images.gate
    assert objs[("ServingRuntime", "medllama-serve")]["spec"]["containers"][0]["image"] == p.images.serve
    isvc = objs[("InferenceService", "me-llama")]["spec"]["predictor"]
    if profile == "gpu":
        assert isvc["model"]["resources"]["limits"][p.gpu_resource] == "1"
        assert isvc["nodeSelector"] == p.node_selector and objs[("AuthorizationPolicy", "medllama-gate")]
    else:
        assert p.gpu_resource not in isvc["model"]["resources"]["limits"]


def test_gate_proxy_and_envoy_gateway_wiring():
    objs = {(o["kind"], o["metadata"]["name"]): o for o in render()}
    args = objs[("Deployment", "medllama-gate")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--upstream") + 1] == f"http://me-llama-predictor.{NAMESPACE}.svc.cluster.local"
    objs = {(o["kind"], o["metadata"]["name"]): o for o in render(CI_VALUES["envoy-gateway-values"])}
    assert not [k for k in objs if "postgres" in k[1]]  # external database
    extauth = objs[("SecurityPolicy", "medllama-gate")]["spec"]["extAuth"]
    assert extauth["http"]["path"] == "/check/envoy" and extauth["http"]["backendRefs"][0]["name"] == "medllama-gate"
    args = objs[("Deployment", "medllama-gate")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--upstream" not in args  # the gateway routes; the gate only decides


@pytest.mark.parametrize("values,namespace,error", [
    ({"gate": {"enabled": False}}, NAMESPACE, "exposes the model without the data-use-agreement gate"),
    ({"gate": {"enabled": False}, "serving": {"exposure": "istio"}}, NAMESPACE, "serving.exposure=istio exposes"),
    ({}, "default", "install with -n medllama"),
    ({"serving": {"gpus": 1}}, NAMESPACE, "profile dev has no GPU nodes"),
    ({"profile": "nosuch"}, NAMESPACE, 'profile "nosuch": no cluster/nosuch.yaml'),
])
def test_forbidden_combinations_fail_with_the_fix(values, namespace, error):
    with pytest.raises(helm.HelmRenderError, match=error):
        render(values, namespace)
    render({"gate": {"enabled": False}, "serving": {"exposure": "none"}})  # internal-only serving needs no gate


def test_values_are_schema_checked_and_documented():
    with pytest.raises(helm.HelmValuesError, match="additional properties 'replica' not allowed"):
        render({"gate": {"replica": 2}})
    with pytest.raises(helm.HelmValuesError, match="serving/exposure"):
        render({"serving": {"exposure": "public"}})
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(values: dict, node: dict, path: str) -> None:
        assert node.get("additionalProperties") is False or "additionalProperties" in node, path
        for key, value in values.items():
            sub = node["properties"].get(key)
            assert sub and sub.get("description"), f"{path}{key}: undocumented in values.schema.json"
            if isinstance(value, dict) and "properties" in sub:
                walk(value, sub, f"{path}{key}.")

    walk(defaults, schema, "")
