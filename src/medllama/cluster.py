"""The cluster profile: where the stack runs on Kubernetes, in one typed file per cluster (cluster/*.yaml).

Images, namespace, work volume, Secrets, MLflow, GPU resource, node placement and the variables recipes
expand (${MEDLLAMA_*}) are stated there and nowhere else: the pipeline (compile time), the training
launchers (PyTorchJob, TrainJob), k8s/jobs and the Helm chart (helm/medllama/profiles -> cluster/) read it.
`dev` is a CPU cluster (kind, minikube, a CPU node pool); `gpu` has NVIDIA GPU nodes for the paper recipes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# A checkout's cluster/; an image sets MEDLLAMA_CLUSTER_PROFILES to where it copied them.
PROFILES_DIR = Path(os.environ.get("MEDLLAMA_CLUSTER_PROFILES", Path(__file__).resolve().parents[2] / "cluster"))
DEFAULT_PROFILE = "dev"
RUN_AS_USER = 1000  # the non-root user every medllama image runs as (images/*.Dockerfile)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Images(_Strict):
    trainer: str = Field(..., description="pipeline tasks and training pods (images/trainer.Dockerfile)")
    serve: str = Field(..., description="the KServe runtime running `medllama serve` (images/serve.Dockerfile)")
    gate: str = Field(..., description="the data-use-agreement gate (images/gate.Dockerfile)")
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"

    @field_validator("trainer", "serve", "gate")
    @classmethod
    def _pinned(cls, ref: str) -> str:
        tag = ref.rsplit("/", 1)[-1]
        if "@sha256:" not in ref and (":" not in tag or tag.endswith(":latest")):
            raise ValueError(f"image {ref!r}: pin a version tag or digest (`latest` moves under a running job)")
        return ref


class Work(_Strict):
    pvc: str = Field(..., description="ReadWriteMany claim with data, models, checkpoints (k8s/, the chart create it)")
    mount_path: str = Field(..., description="where every task and training pod mounts it")
    size: str = Field(..., description="requested capacity of the claim")
    storage_class: str | None = Field(None, description="an RWX class (NFS, CephFS, EFS...); null = cluster default")


class SecretEnv(_Strict):
    name: str = Field(..., description="a Secret in the namespace")
    keys: list[str] = Field(..., min_length=1, description="its keys, each exported as the env variable of that name")


class Toleration(_Strict):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Resources(_Strict):
    cpu: str
    memory: str


class Training(_Strict):
    operator: Literal["pytorchjob", "trainjob"] = Field(
        ..., description="pytorchjob: Training Operator v1 (kubeflow.org); trainjob: Kubeflow Trainer v2 (trainer.kubeflow.org)")
    runtime: str = Field("medllama-deepspeed", description="trainjob: the TrainingRuntime (namespaced) to run on")
    gpus: bool = Field(..., description="request one GPU per process (the recipe's nproc_per_node per pod)")
    resources: Resources = Field(..., description="CPU and memory of each training pod")
    shm_size: str = Field(..., description="memory-backed /dev/shm (NCCL, DataLoader workers)")
    backoff_limit: int = Field(3, ge=0)


class Tasks(_Strict):
    resources: Resources = Field(..., description="CPU and memory requested and limited for each pipeline task")
    retries: int = Field(1, ge=0, description="KFP retries of a failed task (the training task is not retried)")
    evaluate_gpus: int = Field(0, ge=0, description="GPUs of the evaluate task")


class ClusterProfile(_Strict):
    name: str
    images: Images
    namespace: str
    service_account: str = Field(..., description="runs pipeline tasks; may create training jobs and read pod logs")
    work: Work
    secrets: list[SecretEnv] = Field(..., description="S3 and MLflow credentials, as env of tasks and training pods")
    mlflow_uri: str = Field(..., description="MLflow tracking server every task and rank 0 logs to")
    gpu_resource: str = Field("nvidia.com/gpu", description="extended resource name of a GPU")
    node_selector: dict[str, str] = Field(default_factory=dict, description="GPU pods (training, evaluate) only")
    tolerations: list[Toleration] = Field(default_factory=list, description="GPU pods only (tainted GPU nodes)")
    priority_class: str | None = Field(None, description="PriorityClass of training pods")
    env: dict[str, str] = Field(..., description="variables recipes expand, e.g. MEDLLAMA_MODELS")
    env_config_map: str = Field(..., description="ConfigMap holding pod_env() (k8s/ and the chart create it): "
                                "pipeline tasks read their env from it, so kfp.local runs keep their own")
    training: Training
    tasks: Tasks

    @field_validator("mlflow_uri")
    @classmethod
    def _served(cls, uri: str) -> str:
        if not re.match(r"https?://", uri):
            raise ValueError(f"mlflow_uri {uri!r}: use the MLflow server's http(s) URL (a file or SQLite store "
                             "inside a pod vanishes with the pod)")
        return uri

    def pod_env(self) -> dict[str, str]:
        """Plain env of every task and training pod: the recipe variables and the MLflow server."""
        return {**self.env, "MLFLOW_TRACKING_URI": self.mlflow_uri}

    def secret_env(self) -> dict[str, str]:
        """Env variable -> Secret it comes from."""
        return {key: s.name for s in self.secrets for key in s.keys}

    def job_options(self, nproc_per_node: int) -> dict:
        """medllama.k8s.pytorchjob.PyTorchJobOptions fields of a training job with `nproc_per_node` processes per pod."""
        gpu_pod = self.training.gpus
        return dict(
            namespace=self.namespace, image=self.images.trainer, image_pull_policy=self.images.pull_policy,
            pvc=self.work.pvc, mount_path=self.work.mount_path, env=self.pod_env(), secret_env=self.secret_env(),
            gpus=nproc_per_node if gpu_pod else 0, gpu_resource=self.gpu_resource,
            cpu=self.training.resources.cpu, memory=self.training.resources.memory, shm_size=self.training.shm_size,
            node_selector=dict(self.node_selector) if gpu_pod else {},
            tolerations=[t.model_dump(exclude_none=True) for t in self.tolerations] if gpu_pod else [],
            priority_class=self.priority_class, backoff_limit=self.training.backoff_limit,
        )


def profile_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    return PROFILES_DIR / f"{name_or_path}.yaml"


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> ClusterProfile:
    """A profile by name (cluster/NAME.yaml) or path; ValueError naming the file and the bad field."""
    path = profile_path(name_or_path)
    if not path.is_file():
        known = sorted(q.stem for q in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"cluster profile {name_or_path!r}: no {path}; known: {', '.join(known)}")
    try:
        return ClusterProfile.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"cluster profile {path}: {field}: {first['msg']}") from None
