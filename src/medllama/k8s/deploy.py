"""Deploy a registered version: render its KServe resources, record them as YAML, create or update them with
KServe's `KServeClient` and wait until KServe reports the served resource Ready.

Without a Kubernetes API (kfp.local, a laptop) only the YAML is written: what a cluster run would apply.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import yaml

from medllama.k8s.serving import GROUP, ServingOptions, serving_resources

log = logging.getLogger(__name__)
PLURALS = {"InferenceService": "inferenceservices", "LLMInferenceService": "llminferenceservices"}
REMOTE = ("s3://", "gs://", "hf://", "pvc://")  # what KServe's storage initializer and vLLM can read


class DeployFailed(RuntimeError):
    """The resource did not become Ready in time; the message carries its last conditions."""


def deploy_registered(name: str, version: str, manifest: str | Path, *, cluster: str, gpus: int = 0,
                      namespace: str = "", tracking_uri: str | None = None, exported_uri: str = "",
                      work_pvc: str = "", client=None) -> dict:
    """The pipeline's deploy step: serve registered `name` `version` on the cluster profile `cluster`;
    applied when a Kubernetes API is reachable (in a pod, or `client` given), else only recorded in `manifest`."""
    from medllama.cluster import load_profile

    profile = load_profile(cluster)
    apply = client is not None or "KUBERNETES_SERVICE_HOST" in os.environ
    storage = artifact_uri(name, version, tracking_uri, exported_uri, work_pvc or profile.work.pvc,
                           profile.work.mount_path) if gpus else None
    options = ServingOptions(name, version, namespace or profile.namespace, profile.gpu_resource, storage, gpus)
    return deploy_version(options, manifest, apply, client)


def artifact_uri(name: str, version: str, tracking_uri: str | None, exported_uri: str, work_pvc: str,
                 work_mount: str) -> str:
    """Where vLLM can read the version: the registry's artifact location when it is remote storage, else the
    exported folder it was registered from (the same bytes) as `pvc://WORK_PVC/…` or its s3:// URI."""
    from mlflow import MlflowClient

    from medllama.registry.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    registered = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_download_uri(name, version)
    for candidate in (registered, exported_uri):
        if candidate.startswith(REMOTE):
            return candidate
        if work_pvc and candidate.startswith(work_mount.rstrip("/") + "/"):
            return f"pvc://{work_pvc}/{candidate[len(work_mount.rstrip('/')) + 1:]}"
    raise ValueError(f"models:/{name}/{version}: its artifacts ({registered}) and export ({exported_uri or 'none'}) are "
                     "not on storage a cluster can read (s3://, gs://, hf://, or the work PVC)")


def deploy_version(options: ServingOptions, manifest: str | Path, apply: bool, client=None,
                   timeout_s: float = 1800, poll_s: float = 10) -> dict:
    """Write the resources of `options` to `manifest` (multi-document YAML); with `apply`, create or update
    them and wait for Ready. Returns what was done: kinds, names, applied, and the URL once Ready."""
    resources = serving_resources(options)
    Path(manifest).write_text(yaml.safe_dump_all(resources, sort_keys=False))
    outcome = {"resources": [f"{r['kind']}/{r['metadata']['name']}" for r in resources], "namespace": options.namespace,
               "applied": apply, "url": None}
    if apply:
        outcome["url"] = apply_and_wait(resources, client, timeout_s, poll_s)
    return outcome


def apply_and_wait(resources: list[dict], client=None, timeout_s: float = 1800, poll_s: float = 10) -> str | None:
    """Create each resource, or merge-patch it when it exists (a new version of the model); then wait for the
    last one to be Ready."""
    if client is None:
        from kserve import KServeClient

        client = KServeClient()
    api = client.api_instance  # KServeClient's CustomObjectsApi: its SDK has no LLMInferenceService calls
    for obj in resources:
        _create_or_update(api, obj)
    served = resources[-1]
    name, namespace = served["metadata"]["name"], served["metadata"]["namespace"]
    if served["kind"] == "InferenceService":
        client.wait_isvc_ready(name, namespace=namespace, timeout_seconds=int(timeout_s), polling_interval=int(poll_s))
        status = client.get(name, namespace=namespace).get("status", {})
    else:
        status = _wait_ready(api, served, timeout_s, poll_s)
    log.info("%s %s/%s is Ready at %s", served["kind"], namespace, name, status.get("url"))
    return status.get("url")


def _coordinates(obj: dict) -> tuple[str, str, str, str]:
    return obj["apiVersion"].split("/")[1], obj["metadata"]["namespace"], PLURALS[obj["kind"]], obj["metadata"]["name"]


def _create_or_update(api, obj: dict) -> None:
    from kubernetes.client.rest import ApiException

    version, namespace, plural, name = _coordinates(obj)
    try:
        api.get_namespaced_custom_object(GROUP, version, namespace, plural, name)
    except ApiException as e:
        if e.status != 404:
            raise
        api.create_namespaced_custom_object(GROUP, version, namespace, plural, obj)
        log.info("created %s %s/%s", obj["kind"], namespace, name)
        return
    api.patch_namespaced_custom_object(GROUP, version, namespace, plural, name, obj)
    log.info("updated %s %s/%s", obj["kind"], namespace, name)


def _wait_ready(api, obj: dict, timeout_s: float, poll_s: float) -> dict:
    version, namespace, plural, name = _coordinates(obj)
    deadline = time.monotonic() + timeout_s
    status: dict = {}
    while time.monotonic() < deadline:
        status = api.get_namespaced_custom_object(GROUP, version, namespace, plural, name).get("status") or {}
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])):
            return status
        time.sleep(poll_s)
    raise DeployFailed(f"{obj['kind']} {namespace}/{name} not Ready after {timeout_s:.0f} s; "
                       f"conditions: {status.get('conditions')}")
