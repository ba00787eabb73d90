"""Run a training stage as a PyTorchJob: build it, create it, stream the master's log, wait, clean up.

Paths in the command are paths inside the pods (the PVC mount) or s3:// URIs.
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


def stage_job(train: list[str], stage: TrainStage, *, name: str | None = None, namespace: str = "default",
              **options: Any):
    """The PyTorchJob that runs `train` under torchrun, sized by the stage's nnodes and nproc_per_node.

    Options only run_pytorchjob uses (timeout_s, delete, client, ...) are ignored, so a dry run takes the
    same options as a real one.
    """
    options = {k: v for k, v in options.items() if k not in RUN_ONLY}
    opts = PyTorchJobOptions(name=name or job_name("medllama", stage.objective, str(int(time.time()))),
                             namespace=namespace, nnodes=stage.nnodes, nproc_per_node=stage.nproc_per_node, **options)
    return build_pytorchjob(["torchrun", *torchrun_argv(train, opts.nproc_per_node, opts.nnodes)], opts)


def run_pytorchjob(
    train: list[str],
    stage: TrainStage,
    what: str,
    *,
    name: str | None = None,
    namespace: str = "default",
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

    `options` are PyTorchJobOptions fields (image, pvc, cpu, memory, gpus, env, env_from_secrets, ...).
    `delete`: "always", "on_success" (keep a failed job to inspect) or "never".
    """
    if delete not in DELETE_POLICIES:
        raise ValueError(f"delete={delete!r}: use one of {DELETE_POLICIES}")
    job = stage_job(train, stage, name=name, namespace=namespace, **options)
    name = job.metadata.name
    if yaml_path:
        Path(yaml_path).write_text(to_yaml(job))
    if client is None:
        from kubeflow.training import TrainingClient

        client = (client_factory or TrainingClient)(namespace=namespace)
    client.create_job(job=job, namespace=namespace)
    log.info("created PyTorchJob %s/%s (%d x %d processes)", namespace, name, stage.nnodes, stage.nproc_per_node)
    succeeded = False
    try:
        deadline = time.monotonic() + timeout_s
        if follow_logs:
            _follow_master_log(client, name, namespace, deadline, poll_s)
        remaining = max(poll_s, int(deadline - time.monotonic()))
        try:
            job = client.wait_for_job_conditions(name, namespace=namespace, expected_conditions={SUCCEEDED, FAILED},
                                                 wait_timeout=remaining, polling_interval=poll_s)
        except TimeoutError as e:
            raise TrainingFailed(f"{what}: PyTorchJob {namespace}/{name} did not finish within {timeout_s} s ({e})") \
                from None
        if not _has(job, SUCCEEDED):
            raise TrainingFailed(f"{what}: PyTorchJob {namespace}/{name} failed: {failure_message(job)}; "
                                 f"see `kubectl logs -n {namespace} {name}-master-0`")
        succeeded = True
    finally:
        if delete == "always" or (delete == "on_success" and succeeded):
            try:
                client.delete_job(name, namespace=namespace)
            except Exception as e:  # noqa: BLE001 - cleanup must not hide the real outcome
                log.warning("could not delete PyTorchJob %s/%s: %s", namespace, name, e)


def _follow_master_log(client, name: str, namespace: str, deadline: float, poll_s: int) -> None:
    """Once the job runs (or ends), stream the master pod's log; log streaming is best effort."""
    try:
        job = client.wait_for_job_conditions(name, namespace=namespace,
                                             expected_conditions={RUNNING, SUCCEEDED, FAILED},
                                             wait_timeout=max(poll_s, int(deadline - time.monotonic())),
                                             polling_interval=poll_s)
        if _has(job, FAILED):
            return
        client.get_job_logs(name, namespace=namespace, is_master=True, follow=True)
    except TimeoutError:
        return  # the final wait reports the timeout
    except Exception as e:  # noqa: BLE001 - no logs (RBAC, pod gone) must not fail a running job
        log.warning("cannot stream the logs of %s/%s: %s", namespace, name, e)
