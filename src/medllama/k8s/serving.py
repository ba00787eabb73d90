"""The KServe resource that serves a registered model version, built as a plain dict by pure functions.

- GPUs: an `LLMInferenceService` (serving.kserve.io/v1alpha2): KServe's vLLM deployment of the version's
  artifact URI. The kserve 0.21 SDK has no spec models for it, so it is a dict checked in tests against
  the upstream CRD schema, as the API server checks it.
- CPU: an `InferenceService` on the `medllama-serve` ServingRuntime (installed with the cluster by k8s/
  and the chart: our serve image running `medllama serve`), given `--model models:/NAME/VERSION`: the
  same server as on a laptop, resolving the version through the registry.
Both carry the registry name and version as labels, so `kubectl get` shows what is deployed, and the
`app.kubernetes.io/name: medllama-serve` pod label the NetworkPolicies open to the gate only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GROUP = "serving.kserve.io"
RUNTIME = "medllama-serve"  # k8s/base/serving.yaml
MODEL_FORMAT = "medllama"
SERVER_POD_LABELS = {"app.kubernetes.io/name": "medllama-serve"}  # what k8s/base/networkpolicies.yaml selects


@dataclass
class ServingOptions:
    model_name: str  # registered name = the name clients send
    version: str
    namespace: str
    gpu_resource: str  # the cluster profile's (nvidia.com/gpu, amd.com/gpu, ...)
    storage_uri: str | None = None  # the version's artifacts (s3://, pvc://, hf://): vLLM loads them (GPU)
    gpus: int = 0  # > 0: LLMInferenceService with vLLM; 0: InferenceService on our runtime (its resources)
    replicas: int = 1

    @property
    def name(self) -> str:
        """The resource name: a DNS-1035 label from the registered name."""
        name = re.sub(r"[^a-z0-9-]+", "-", self.model_name.lower()).strip("-")
        name = re.sub(r"^[^a-z]+", "", name)[:45].rstrip("-")
        return name or "medllama"

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/part-of": "medllama-ops", "medllama.io/model": self.name,
                "medllama.io/version": str(self.version)}


def serving_resources(o: ServingOptions) -> list[dict]:
    """What to apply: the LLMInferenceService (GPUs) or the InferenceService (CPU)."""
    return [llm_inference_service(o) if o.gpus > 0 else inference_service(o)]


def llm_inference_service(o: ServingOptions) -> dict:
    if not o.storage_uri:
        raise ValueError(f"{o.model_name} v{o.version}: a GPU deployment needs the version's artifact URI "
                         "(s3://, pvc:// or hf://) for vLLM to load")
    return {
        "apiVersion": f"{GROUP}/v1alpha2", "kind": "LLMInferenceService",
        "metadata": {"name": o.name, "namespace": o.namespace, "labels": o.labels},
        "spec": {
            "model": {"uri": o.storage_uri, "name": o.model_name},
            "replicas": o.replicas,
            "labels": SERVER_POD_LABELS,
            "template": {"containers": [{
                "name": "main",
                "resources": {"limits": {o.gpu_resource: str(o.gpus)}, "requests": {o.gpu_resource: str(o.gpus)}},
            }]},
        },
    }


def inference_service(o: ServingOptions) -> dict:
    return {
        "apiVersion": f"{GROUP}/v1beta1", "kind": "InferenceService",
        "metadata": {"name": o.name, "namespace": o.namespace, "labels": o.labels,
                     "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
        "spec": {"predictor": {
            "minReplicas": o.replicas,
            "labels": SERVER_POD_LABELS,
            "model": {
                "modelFormat": {"name": MODEL_FORMAT},
                "runtime": RUNTIME,
                "args": ["--model", f"models:/{o.model_name}/{o.version}"],
            },
        }},
    }
