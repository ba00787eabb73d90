"""Run a training stage as a TrainJob (Kubeflow Trainer v2, trainer.kubeflow.org) through the kubeflow SDK.

The job runs on the profile's DeepSpeed training runtime (k8s/base/training-runtime.yaml: upstream
`deepspeed-distributed`'s layout, an MPI launcher plus nodes running sshd, with our trainer image). The launcher starts the same `-m medllama.train ...` as every
other launcher under `mpirun`; DeepSpeed reads the ranks from OpenMPI's environment (mpi4py is in the
image). Paths are inside the pods (the work PVC) or s3:// URIs; supervision is launch.kubernetes.supervise.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from medllama.k8s.pytorchjob import container_security, job_name, pod_security
from medllama.launch.kubernetes import FAILED, RUNNING, SUCCEEDED, supervise
from medllama.recipe import TrainStage

log = logging.getLogger(__name__)

# TrainerClient's statuses for the states supervise() waits for
_STATUS = {RUNNING: "Running", SUCCEEDED: "Complete", FAILED: "Failed"}
_STATE = {v: k for k, v in _STATUS.items()}
REPLICATED_JOBS = ("launcher", "node")  # the DeepSpeed runtime's two pod kinds; both run the trainer image
CONTAINER = "node"  # the runtime's trainer container in both


def mpirun_command(train: list[str], nnodes: int, nproc_per_node: int, env_names: list[str]) -> list[str]:
    """`mpirun` starting nnodes x nproc_per_node trainer processes from the launcher pod.

    The SDK's CustomTrainerContainer cannot set numProcPerNode (the runtime's hostfile says 1 slot per
    node), so the processes per node are given here; ranks started over ssh do not inherit the pod's
    environment, so every variable the trainer needs is exported with -x.
    """
    exports = [arg for name in ["PYTHONUNBUFFERED", *env_names] for arg in ("-x", name)]
    return ["mpirun", "--hostfile", "/etc/mpi/hostfile", "-np", str(nnodes * nproc_per_node),
            "--map-by", f"ppr:{nproc_per_node}:node", "--oversubscribe", *exports, "python", *train]


def trainjob_request(train: list[str], stage: TrainStage, *, runtime: str, name: str | None = None, namespace: str,
                     image: str, cpu: str | None = None,
                     memory: str | None = None, gpus: int = 0, gpu_resource: str | None = None,
                     shm_size: str = "1Gi", pvc: str | None = None, mount_path: str | None = None,
                     env: dict[str, str] | None = None, secret_env: dict[str, str] | None = None,
                     node_selector: dict[str, str] | None = None, tolerations: list[dict] | None = None,
                     labels: dict[str, str] | None = None, **ignored: Any) -> dict:
    """Keyword arguments of TrainerClient.train for this stage: runtime, trainer and options (name, labels,
    command, the pod patch with volumes, Secrets, placement and security). `ignored`: options the SDK's
    patches cannot express (image_pull_policy, backoff_limit, priority_class: the runtime's apply)."""
    from kubeflow.trainer import CustomTrainerContainer
    from kubeflow.trainer.options import (ContainerPatch, JobSetSpecPatch, JobSetTemplatePatch, JobSpecPatch,
                                          JobTemplatePatch, Labels, Name, PodSpecPatch, PodTemplatePatch,
                                          ReplicatedJobPatch, RuntimePatch, TrainerCommand, TrainingRuntimeSpecPatch)

    if ignored:
        log.debug("TrainJob: options without a TrainJob equivalent: %s", sorted(ignored))
    env, secret_env = dict(env or {}), dict(secret_env or {})
    resources = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    if gpus:
        resources[gpu_resource] = str(gpus)
    trainer = CustomTrainerContainer(image=image, num_nodes=stage.nnodes, resources_per_node=resources or None,
                                     env={**env, "PYTHONUNBUFFERED": "1"})
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}}]
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if pvc:
        volumes.append({"name": "work", "persistentVolumeClaim": {"claimName": pvc}})
        mounts.append({"name": "work", "mountPath": mount_path})
    secrets = [{"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": k}}} for k, s in secret_env.items()]
    pod = PodSpecPatch(
        volumes=volumes, node_selector=node_selector or None, tolerations=tolerations or None,
        security_context=_api_dict(pod_security()),
        containers=[ContainerPatch(name=CONTAINER, env=secrets or None, volume_mounts=mounts,
                                   security_context=_api_dict(container_security()))],
    )
    patch = RuntimePatch(training_runtime_spec=TrainingRuntimeSpecPatch(template=JobSetTemplatePatch(
        spec=JobSetSpecPatch(replicated_jobs=[
            ReplicatedJobPatch(name=rj, template=JobTemplatePatch(spec=JobSpecPatch(template=PodTemplatePatch(spec=pod))))
            for rj in REPLICATED_JOBS]))))
    name = name or job_name("medllama", stage.objective, str(int(time.time())))
    command = mpirun_command(train, stage.nnodes, stage.nproc_per_node, sorted({*env, *secret_env}))
    return {"runtime": runtime, "trainer": trainer,
            "options": [Name(name=name), Labels(labels={"app.kubernetes.io/name": "medllama-train", **(labels or {})}),
                        TrainerCommand(command=command), patch]}


def _api_dict(model) -> dict:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(model)


class TrainJobs:
    """One TrainJob through kubeflow.trainer.TrainerClient, as `supervise` drives it."""

    kind = "TrainJob"

    def __init__(self, request: dict, namespace: str, client):
        self.request, self.namespace, self.client = request, namespace, client
        self.name = next(o.name for o in request["options"] if type(o).__name__ == "Name")

    def create(self) -> None:
        self.name = self.client.train(**self.request)

    def wait(self, states: set[str], timeout_s: int, poll_s: int) -> str:
        job = self.client.wait_for_job_status(self.name, status={_STATUS[s] for s in states}, timeout=timeout_s,
                                              polling_interval=poll_s)
        return _STATE[job.status]

    def stream_logs(self) -> None:
        for line in self.client.get_job_logs(self.name, follow=True):  # mpirun gathers every rank's output
            print(line, flush=True)

    def failure(self) -> str:
        """The TrainJob's warning events (the SDK's TrainJob has no failure message)."""
        try:
            events = [e for e in self.client.get_job_events(self.name) if e.reason not in ("Created", "Started")]
        except Exception as e:  # noqa: BLE001 - no events (RBAC) must not hide the failure itself
            events, why = [], f"events unreadable: {e}"
        else:
            why = "no events recorded"
        detail = "; ".join(f"{e.involved_object_name}: {e.reason}: {e.message}" for e in events[-3:]) or why
        return f"{detail}; see `kubectl logs -n {self.namespace} -l jobset.sigs.k8s.io/jobset-name={self.name}`"

    def delete(self) -> None:
        self.client.delete_job(self.name)


def run_trainjob(train: list[str], stage: TrainStage, what: str, *, runtime: str, namespace: str,
                 timeout_s: int = 7 * 24 * 3600, poll_s: int = 15, delete: str = "on_success",
                 follow_logs: bool = True, client: Any = None, client_factory: Callable[..., Any] | None = None,
                 **options: Any) -> None:
    """Submit `train` as a TrainJob on `runtime` sized by `stage` and wait for it (same handling as a PyTorchJob)."""
    request = trainjob_request(train, stage, runtime=runtime, namespace=namespace, **options)
    if client is None:
        from kubeflow.common.types import KubernetesBackendConfig
        from kubeflow.trainer import TrainerClient

        client = (client_factory or TrainerClient)(backend_config=KubernetesBackendConfig(namespace=namespace))
    supervise(TrainJobs(request, namespace, client), what, timeout_s=timeout_s, poll_s=poll_s, delete=delete,
              follow_logs=follow_logs)
