"""The TrainJob launcher (Kubeflow Trainer v2), chosen by a cluster profile with `training.operator: trainjob`.

No Kubernetes API server can run here, so the client is a stand-in for kubeflow.trainer.TrainerClient
whose `train` goes through the SDK's real KubernetesBackend.train: only the API calls are answered from
memory (the runtime lookup returns our TrainingRuntime from k8s/base, the create is recorded), so the
TrainJob checked here is the one the SDK would send.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from kubeflow.common.types import KubernetesBackendConfig
from kubeflow.trainer.backends.kubernetes.backend import KubernetesBackend
from kubernetes.client import ApiException, Configuration

from medllama.cluster import load_profile
from medllama.launch import TrainingFailed, render_pytorchjob, run_stage
from tests.crd_schema import CRD_DIR, validate_custom_resource

RUNTIME = yaml.safe_load((CRD_DIR.parents[1] / "k8s" / "base" / "training-runtime.yaml").read_text())


class _Done:
    """What an `async_req=True` call of the kubernetes client returns."""

    def __init__(self, value):
        self.value = value

    def get(self, timeout=None):
        return self.value


class RecordingCustomObjectsApi:
    """The two API calls TrainerClient.train makes: look up the runtime, create the TrainJob."""

    def __init__(self):
        self.created = None

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, async_req=False):
        if (plural, name) != ("trainingruntimes", RUNTIME["metadata"]["name"]):
            raise ApiException(status=404)
        return _Done(RUNTIME)

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.created = {**body, "metadata": {**body["metadata"], "namespace": namespace}}


class StandInTrainerClient:
    """Mimics TrainerClient: train (through the real SDK backend), wait_for_job_status, get_job_logs,
    get_job_events, delete_job. `outcome`: "Complete", "Failed" or "Timeout"."""

    def __init__(self, namespace="medllama", outcome="Complete", events=(), on_success=None):
        with mock.patch.object(KubernetesBackend, "verify_backend"):  # reads a ConfigMap from the API server
            self.backend = KubernetesBackend(KubernetesBackendConfig(namespace=namespace,
                                                                     client_configuration=Configuration()))
        self.backend.custom_api = RecordingCustomObjectsApi()
        self.outcome, self.events, self.on_success = outcome, list(events), on_success
        self.calls: list[tuple] = []

    @property
    def created(self) -> dict:
        return self.backend.custom_api.created

    def train(self, **request):
        name = self.backend.train(**request)
        self.calls.append(("train", name))
        return name

    def wait_for_job_status(self, name, status, timeout, polling_interval):
        self.calls.append(("wait", frozenset(status)))
        if self.outcome == "Timeout":
            raise TimeoutError(f"Timeout waiting for TrainJob {name}")
        reached = "Running" if "Running" in status and self.outcome != "Failed" else self.outcome
        if reached == "Complete" and self.on_success:
            self.on_success()
        return SimpleNamespace(name=name, status=reached)

    def get_job_logs(self, name, follow=False, step="node-0"):
        self.calls.append(("logs", follow))
        yield "step 1 loss 5.0"

    def get_job_events(self, name):
        return self.events

    def delete_job(self, name):
        self.calls.append(("delete", name))


@pytest.fixture
def trainjob_profile(tmp_path):
    profile = yaml.safe_load((CRD_DIR.parents[1] / "cluster" / "gpu.yaml").read_text())
    profile["training"]["operator"] = "trainjob"
    path = tmp_path / "trainjob.yaml"
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def launch(tmp_path, profile, client, stage="cpt", **options):
    return run_stage("tiny", stage, "/mnt/medllama/data", "/mnt/medllama/tok", None, str(tmp_path / "out"),
                     launcher="kubernetes", cluster=profile, overrides={"cpt.max_steps": 5}, client=client,
                     name="tiny-cpt", poll_s=1, **options)


def test_submits_a_valid_trainjob_running_the_trainer_under_mpirun(tmp_path, trainjob_profile):
    out = tmp_path / "out"

    def write_outputs():
        out.mkdir()
        (out / "metrics.json").write_text(json.dumps({"steps": 5}))

    client = StandInTrainerClient(on_success=write_outputs)
    result = launch(tmp_path, trainjob_profile, client)
    assert [c[0] for c in client.calls] == ["train", "wait", "logs", "wait", "delete"]
    assert result.metrics == {"steps": 5}

    job = client.created
    validate_custom_resource(job)  # the upstream Trainer v2.3.0 CRD, strict
    profile = load_profile(trainjob_profile)
    assert job["metadata"]["name"] == "tiny-cpt" and job["metadata"]["namespace"] == profile.namespace
    assert job["spec"]["runtimeRef"] == {"name": profile.training.runtime, "kind": "TrainingRuntime"}
    trainer = job["spec"]["trainer"]
    assert trainer["image"] == profile.images.trainer and trainer["numNodes"] == 1
    assert trainer["resourcesPerNode"]["limits"][profile.gpu_resource] == "2"  # tiny: 2 processes, one GPU each
    command = trainer["command"]
    assert command[:3] == ["mpirun", "--hostfile", "/etc/mpi/hostfile"] and command[command.index("-np") + 1] == "2"
    exported = {command[i + 1] for i, arg in enumerate(command) if arg == "-x"}
    assert exported >= {*profile.pod_env(), *profile.secret_env()}  # ranks started over ssh get the pod's env

    # the same trainer command line as the PyTorchJob launcher's, after the process launcher
    v1 = yaml.safe_load(render_pytorchjob("tiny", "cpt", "/mnt/medllama/data", "/mnt/medllama/tok", None, str(out),
                                          {"cpt.max_steps": 5}, cluster="gpu", name="tiny-cpt"))
    v1_command = v1["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("python") + 1:] == v1_command[v1_command.index("-m"):]

    (patch,) = job["spec"]["runtimePatches"]
    jobs = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert [j["name"] for j in jobs] == ["launcher", "node"]
    pod = jobs[0]["template"]["spec"]["template"]["spec"]
    assert {"name": "work", "persistentVolumeClaim": {"claimName": profile.work.pvc}} in pod["volumes"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["nodeSelector"] == profile.node_selector
    (container,) = pod["containers"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]} == profile.secret_env()


def test_failure_names_the_events_and_keeps_the_job(tmp_path, trainjob_profile):
    event = SimpleNamespace(involved_object_name="tiny-cpt-node-0-0", reason="BackOff",
                            message="Back-off restarting failed container node")
    client = StandInTrainerClient(outcome="Failed", events=[event])
    with pytest.raises(TrainingFailed, match="TrainJob medllama/tiny-cpt failed: tiny-cpt-node-0-0: BackOff"):
        launch(tmp_path, trainjob_profile, client)
    assert [c[0] for c in client.calls] == ["train", "wait", "wait"]  # no logs of a failed job, not deleted


def test_timeout_is_a_training_failure(tmp_path, trainjob_profile):
    with pytest.raises(TrainingFailed, match="did not finish"):
        launch(tmp_path, trainjob_profile, StandInTrainerClient(outcome="Timeout"), timeout_s=3)


def test_dry_run_is_refused_with_the_reason(tmp_path, trainjob_profile):
    with pytest.raises(ValueError, match="runs TrainJobs"):
        launch(tmp_path, trainjob_profile, StandInTrainerClient(), dry_run=True)
