"""Run a training stage as a Kubernetes job: build it, create it, stream its log, wait, clean up.

`supervise` holds that sequence for both job kinds: PyTorchJob (Training Operator v1, here) and TrainJob
(Kubeflow Trainer v2, launch.trainjob). Paths in the command are paths inside the pods (the PVC mount)
or s3:// URIs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from medllama.k8s.pytorchjob import PyTorchJobOptions, build_pytorchjob, job_name, to_yaml
from medllama.launch.command import torchrun_argv
from medllama.launch.local import TrainingFailed
from medllama.recipe import TrainStage

log = logging.getLogger(__name__)

SUCCEEDED, FAILED, RUNNING = "Succeeded", "Failed", "Running"
DELETE_POLICIES = ("always", "on_success", "never")


def _conditions(job) -> list:
    status = getattr(job, "status", None)
    return list(getattr(status, "conditions", None) or [])


def _has(job, kind: str) -> bool:
    return any(c.type == kind and str(c.status) == "True" for c in _conditions(job))


def failure_message(job) -> str:
    failed = [c for c in _conditions(job) if c.type == FAILED]
    if not failed:
        return "no Failed condition recorded"
    c = failed[-1]
    return f"{c.reason or 'Failed'}: {c.message or '(no message)'}"


RUN_ONLY = {"timeout_s", "poll_s", "delete", "follow_logs", "yaml_path", "client", "client_factory"}


def stage_job(train: list[str], stage: TrainStage, *, name: str | None = None, **options: Any):
    """The PyTorchJob that runs `train` under torchrun, sized by the stage's nnodes and nproc_per_node.

    Options only run_pytorchjob uses (timeout_s, delete, client, ...) are ignored, so a dry run takes the
    same options as a real one.
    """
    options = {k: v for k, v in options.items() if k not in RUN_ONLY}
    opts = PyTorchJobOptions(name=name or job_name("medllama", stage.objective, str(int(time.time()))),
                             nnodes=stage.nnodes, nproc_per_node=stage.nproc_per_node, **options)
    return build_pytorchjob(["torchrun", *torchrun_argv(train, opts.nproc_per_node, opts.nnodes)], opts)


class PyTorchJobs:
    """One PyTorchJob through kubeflow.training.TrainingClient, as `supervise` drives it."""

    kind = "PyTorchJob"

    def __init__(self, job, client):
        self.job, self.client = job, client
        self.name, self.namespace = job.metadata.name, job.metadata.namespace
        self.last = None

    def create(self) -> None:
        self.client.create_job(job=self.job, namespace=self.namespace)

    def wait(self, states: set[str], timeout_s: int, poll_s: int) -> str:
        self.last = self.client.wait_for_job_conditions(self.name, namespace=self.namespace, expected_conditions=states,
                                                        wait_timeout=timeout_s, polling_interval=poll_s)
        return next(s for s in (FAILED, SUCCEEDED, RUNNING) if _has(self.last, s))

    def stream_logs(self) -> None:
        self.client.get_job_logs(self.name, namespace=self.namespace, is_master=True, follow=True)

    def failure(self) -> str:
        return f"{failure_message(self.last)}; see `kubectl logs -n {self.namespace} {self.name}-master-0`"

    def delete(self) -> None:
        self.client.delete_job(self.name, namespace=self.namespace)


def supervise(job, what: str, *, timeout_s: int, poll_s: int, delete: str, follow_logs: bool) -> None:
    """Create the job, stream its log once it runs, wait for it to end, clean up; TrainingFailed unless it succeeded.

    `job` is PyTorchJobs or launch.trainjob.TrainJobs; `delete`: "always", "on_success" (keep a failed job to
    inspect) or "never".
    """
    if delete not in DELETE_POLICIES:
        raise ValueError(f"delete={delete!r}: use one of {DELETE_POLICIES}")
    job.create()
    log.info("created %s %s/%s", job.kind, job.namespace, job.name)
    title = f"{job.kind} {job.namespace}/{job.name}"
    succeeded = False
    try:
        deadline = time.monotonic() + timeout_s
        if follow_logs:
            _follow_log(job, deadline, poll_s)
        try:
            state = job.wait({SUCCEEDED, FAILED}, max(poll_s + 1, int(deadline - time.monotonic())), poll_s)
        except TimeoutError as e:
            raise TrainingFailed(f"{what}: {title} did not finish within {timeout_s} s ({e})") from None
        if state != SUCCEEDED:
            raise TrainingFailed(f"{what}: {title} failed: {job.failure()}")
        succeeded = True
    finally:
        if delete == "always" or (delete == "on_success" and succeeded):
            try:
                job.delete()
            except Exception as e:  # noqa: BLE001 - cleanup must not hide the real outcome
                log.warning("could not delete %s: %s", title, e)


def _follow_log(job, deadline: float, poll_s: int) -> None:
    """Once the job runs (or ends), stream its main process's log; log streaming is best effort."""
    try:
        if job.wait({RUNNING, SUCCEEDED, FAILED}, max(poll_s + 1, int(deadline - time.monotonic())), poll_s) != FAILED:
            job.stream_logs()
    except TimeoutError:
        return  # the final wait reports the timeout
    except Exception as e:  # noqa: BLE001 - no logs (RBAC, pod gone) must not fail a running job
        log.warning("cannot stream the logs of %s/%s: %s", job.namespace, job.name, e)


def run_pytorchjob(
    train: list[str],
    stage: TrainStage,
    what: str,
    *,
    timeout_s: int = 7 * 24 * 3600,
    poll_s: int = 15,
    delete: str = "on_success",
    follow_logs: bool = True,
    yaml_path: str | Path | None = None,
    client: Any = None,
    client_factory: Callable[..., Any] | None = None,
    **options: Any,
) -> None:
    """Submit `train` as a PyTorchJob sized by `stage` (nnodes, nproc_per_node) and wait for it.

    `options` are PyTorchJobOptions fields (name, namespace, image, pvc, cpu, memory, gpus, env, ...).
    """
    job = stage_job(train, stage, **options)
    if yaml_path:
        Path(yaml_path).write_text(to_yaml(job))
    if client is None:
        from kubeflow.training import TrainingClient

        client = (client_factory or TrainingClient)(namespace=job.metadata.namespace)
    supervise(PyTorchJobs(job, client), what, timeout_s=timeout_s, poll_s=poll_s, delete=delete,
              follow_logs=follow_logs)
