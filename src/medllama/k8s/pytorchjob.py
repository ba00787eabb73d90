"""The PyTorchJob of a training stage, built as kubeflow-training SDK objects by a pure function.

Master + (nnodes - 1) Workers all run the same `torchrun ... -m medllama.train ...` command; the training
operator sets the rendezvous (PET_MASTER_ADDR, PET_MASTER_PORT, PET_NODE_RANK, PET_NNODES,
PET_NPROC_PER_NODE) that torchrun reads. Data, tokenizer and outputs live on a PVC (or s3://), shared
memory is a memory-backed emptyDir at /dev/shm (NCCL and DataLoader workers need more than 64 MiB),
credentials come from Secrets as environment variables, never from the recipe, and pods run as the
images' non-root user without privileges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml
from kubeflow.training import models as m

from medllama.cluster import RUN_AS_USER

CONTAINER = "pytorch"  # the training operator finds the training container by this name


@dataclass(kw_only=True)
class PyTorchJobOptions:
    """Where and how big; the cluster profile (medllama.cluster.ClusterProfile.job_options) gives the defaults."""

    name: str
    namespace: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    nnodes: int = 1
    nproc_per_node: int = 1
    cpu: str | None = None
    memory: str | None = None
    gpus: int = 0  # GPUs per pod
    gpu_resource: str | None = None  # the extended resource of a GPU, e.g. nvidia.com/gpu (needed when gpus > 0)
    shm_size: str = "1Gi"
    pvc: str | None = None  # PersistentVolumeClaim with data, tokenizer and outputs
    mount_path: str | None = None  # where the PVC is mounted (needed with pvc)
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)  # env variable -> Secret holding a key of that name
    backoff_limit: int = 3
    ttl_seconds_after_finished: int | None = None
    service_account: str | None = None
    priority_class: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    # e.g. [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}] for tainted GPU nodes
    tolerations: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # pods are named NAME-master-0 / NAME-worker-N and their names are DNS labels (<= 63 chars)
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,43}[a-z0-9])?", self.name):
            raise ValueError(f"job name {self.name!r}: use lower-case letters, digits and '-', at most 45 characters")
        if self.nnodes < 1 or self.nproc_per_node < 1:
            raise ValueError("nnodes and nproc_per_node must be >= 1")
        if (self.gpus and not self.gpu_resource) or (self.pvc and not self.mount_path):
            raise ValueError("gpus need gpu_resource and pvc needs mount_path (the cluster profile has both)")
        if self.gpus and self.gpus != self.nproc_per_node:
            raise ValueError(f"gpus={self.gpus} per pod but nproc_per_node={self.nproc_per_node}: torchrun starts one "
                             "process per GPU; make them equal (set the recipe's nproc_per_node or gpus)")


def job_name(*parts: str) -> str:
    """A valid job name from free text, e.g. job_name('tiny', 'cpt', run_id)."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    return name[:45].rstrip("-") or "medllama-train"


def _resources(o: PyTorchJobOptions) -> m.V1ResourceRequirements:
    amounts: dict[str, str] = {}
    if o.cpu:
        amounts["cpu"] = o.cpu
    if o.memory:
        amounts["memory"] = o.memory
    limits = dict(amounts)
    if o.gpus:
        limits[o.gpu_resource] = str(o.gpus)
    return m.V1ResourceRequirements(requests=amounts or None, limits=limits or None)


def env_vars(env: dict[str, str], secret_env: dict[str, str]) -> list[m.V1EnvVar]:
    """Plain variables, then one variable per Secret key (a missing key stops the pod, not the run later)."""
    plain = [m.V1EnvVar(name=k, value=v) for k, v in sorted(env.items())]
    secret = [m.V1EnvVar(name=k, value_from=m.V1EnvVarSource(secret_key_ref=m.V1SecretKeySelector(name=s, key=k)))
              for k, s in secret_env.items()]
    return [*plain, *secret, m.V1EnvVar(name="PYTHONUNBUFFERED", value="1")]


def pod_security() -> m.V1PodSecurityContext:
    return m.V1PodSecurityContext(run_as_non_root=True, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER,
                                  fs_group=RUN_AS_USER, seccomp_profile=m.V1SeccompProfile(type="RuntimeDefault"))


def container_security() -> m.V1SecurityContext:
    return m.V1SecurityContext(allow_privilege_escalation=False, privileged=False,
                               capabilities=m.V1Capabilities(drop=["ALL"]))


def _pod(command: list[str], o: PyTorchJobOptions) -> m.V1PodTemplateSpec:
    volumes = [m.V1Volume(name="dshm", empty_dir=m.V1EmptyDirVolumeSource(medium="Memory", size_limit=o.shm_size))]
    mounts = [m.V1VolumeMount(name="dshm", mount_path="/dev/shm")]
    if o.pvc:
        claim = m.V1PersistentVolumeClaimVolumeSource(claim_name=o.pvc)
        volumes.append(m.V1Volume(name="work", persistent_volume_claim=claim))
        mounts.append(m.V1VolumeMount(name="work", mount_path=o.mount_path))
    container = m.V1Container(
        name=CONTAINER,
        image=o.image,
        image_pull_policy=o.image_pull_policy,
        command=list(command),
        env=env_vars(o.env, o.secret_env),
        resources=_resources(o),
        security_context=container_security(),
        volume_mounts=mounts,
    )
    tolerations = [m.V1Toleration(**t) for t in o.tolerations] or None
    spec = m.V1PodSpec(containers=[container], volumes=volumes, service_account_name=o.service_account,
                       node_selector=o.node_selector or None, tolerations=tolerations,
                       priority_class_name=o.priority_class, security_context=pod_security())
    labels = {"app.kubernetes.io/name": "medllama-train", **o.labels}
    return m.V1PodTemplateSpec(metadata=m.V1ObjectMeta(labels=labels), spec=spec)


def build_pytorchjob(command: list[str], options: PyTorchJobOptions) -> m.KubeflowOrgV1PyTorchJob:
    """A PyTorchJob running `command` (the full `torchrun ...` line) in a Master and nnodes - 1 Workers."""
    o = options
    replicas = {"Master": m.KubeflowOrgV1ReplicaSpec(replicas=1, restart_policy="OnFailure", template=_pod(command, o))}
    if o.nnodes > 1:
        replicas["Worker"] = m.KubeflowOrgV1ReplicaSpec(replicas=o.nnodes - 1, restart_policy="OnFailure",
                                                        template=_pod(command, o))
    return m.KubeflowOrgV1PyTorchJob(
        api_version="kubeflow.org/v1",
        kind="PyTorchJob",
        metadata=m.V1ObjectMeta(name=o.name, namespace=o.namespace,
                                labels={"app.kubernetes.io/name": "medllama-train", **o.labels}),
        spec=m.KubeflowOrgV1PyTorchJobSpec(
            nproc_per_node=str(o.nproc_per_node),
            pytorch_replica_specs=replicas,
            run_policy=m.KubeflowOrgV1RunPolicy(backoff_limit=o.backoff_limit, clean_pod_policy="None",
                                                ttl_seconds_after_finished=o.ttl_seconds_after_finished),
        ),
    )


def to_dict(job: m.KubeflowOrgV1PyTorchJob) -> dict:
    """The job as the API server's JSON (camelCase keys, no nulls)."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(job)


def to_yaml(job: m.KubeflowOrgV1PyTorchJob) -> str:
    """YAML for `kubectl apply -f`."""
    return yaml.safe_dump(to_dict(job), sort_keys=False)


def from_dict(data: dict) -> m.KubeflowOrgV1PyTorchJob:
    """Parse API JSON back into SDK objects (the inverse of to_dict)."""
    import json

    from kubeflow.training.api_client import ApiClient

    class _Response:  # ApiClient.deserialize reads a REST response's `.data`
        def __init__(self, payload: dict):
            self.data = json.dumps(payload)

    return ApiClient().deserialize(_Response(data), "KubeflowOrgV1PyTorchJob")
