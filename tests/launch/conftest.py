"""Fixtures for launcher tests. No Kubernetes API server can run here, so the Kubernetes launcher is
driven against a stand-in TrainingClient that records calls and answers like the SDK."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def condition(kind: str, message: str = "", reason: str = "") -> SimpleNamespace:
    return SimpleNamespace(type=kind, status="True", message=message, reason=reason or f"PyTorchJob{kind}")


class StandInTrainingClient:
    """Mimics kubeflow.training.TrainingClient: create_job, wait_for_job_conditions, get_job_logs, delete_job.

    `outcome` is the job's final condition ("Succeeded", "Failed" or "Timeout"); `on_success` runs when the
    job "succeeds" (e.g. writes the trainer's outputs).
    """

    def __init__(self, outcome="Succeeded", message="", logs_error=None, on_success=None, **_):
        self.outcome, self.message, self.logs_error, self.on_success = outcome, message, logs_error, on_success
        self.calls: list[tuple] = []
        self.created = None

    def create_job(self, job=None, namespace=None, **_):
        self.calls.append(("create_job", job.metadata.name, namespace))
        self.created = job

    def wait_for_job_conditions(self, name, namespace=None, expected_conditions=None, wait_timeout=600,
                                polling_interval=15, **_):
        self.calls.append(("wait", name, frozenset(expected_conditions)))
        if self.outcome == "Timeout":
            raise TimeoutError(f"Timeout waiting for PyTorchJob: {namespace}/{name}")
        conds = [condition("Created"), condition("Running")]
        if "Running" not in expected_conditions or self.outcome == "Failed":
            conds.append(condition(self.outcome, self.message))
            if self.outcome == "Succeeded" and self.on_success:
                self.on_success()
        return SimpleNamespace(metadata=self.created.metadata, status=SimpleNamespace(conditions=conds))

    def get_job_logs(self, name, namespace=None, is_master=True, follow=False, **_):
        self.calls.append(("logs", name, follow))
        if self.logs_error:
            raise self.logs_error
        return {f"{name}-master-0": "step 1 loss 5.0"}, {}

    def delete_job(self, name, namespace=None, **_):
        self.calls.append(("delete", name, namespace))


@pytest.fixture
def stand_in():
    return StandInTrainingClient
