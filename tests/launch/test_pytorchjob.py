"""The PyTorchJob builder: SDK objects that round-trip through the API's JSON, with the right shape."""

from __future__ import annotations

import pytest
import yaml
from kubeflow.training import models as m

from medllama.k8s.pytorchjob import PyTorchJobOptions, build_pytorchjob, from_dict, job_name, to_dict, to_yaml

COMMAND = ["torchrun", "--nnodes", "2", "--nproc_per_node", "4", "-m", "medllama.train", "--recipe", "tiny"]


@pytest.fixture
def job():
    opts = PyTorchJobOptions(name="tiny-cpt-1", namespace="ml", image="reg/medllama-trainer:1.0", nnodes=2,
                             nproc_per_node=4, cpu="8", memory="32Gi", gpus=4, shm_size="16Gi", pvc="medllama-work",
                             mount_path="/mnt/work", env={"MLFLOW_TRACKING_URI": "http://mlflow:5000"},
                             secret_env={"AWS_ACCESS_KEY_ID": "s3-credentials", "MLFLOW_TRACKING_PASSWORD": "mlflow-credentials"},
                             backoff_limit=5, gpu_resource="example.com/gpu", priority_class="training")
    return build_pytorchjob(COMMAND, opts)


def test_round_trips_through_the_sdk_model_classes(job):
    assert isinstance(job, m.KubeflowOrgV1PyTorchJob)
    data = to_dict(job)
    assert data["apiVersion"] == "kubeflow.org/v1" and data["kind"] == "PyTorchJob"
    assert from_dict(data) == job
    assert from_dict(yaml.safe_load(to_yaml(job))) == job


def test_master_and_workers_run_the_same_command(job):
    specs = job.spec.pytorch_replica_specs
    assert set(specs) == {"Master", "Worker"}
    assert specs["Master"].replicas == 1 and specs["Worker"].replicas == 1
    assert job.spec.nproc_per_node == "4"
    for spec in specs.values():
        assert spec.restart_policy == "OnFailure"
        (container,) = spec.template.spec.containers
        assert container.name == "pytorch"  # the operator injects the rendezvous env into this container
        assert container.command == COMMAND and container.image == "reg/medllama-trainer:1.0"
    assert job.spec.run_policy.backoff_limit == 5


def test_resources_volumes_and_secrets(job):
    pod = job.spec.pytorch_replica_specs["Worker"].template.spec
    c = pod.containers[0]
    assert c.resources.limits == {"cpu": "8", "memory": "32Gi", "example.com/gpu": "4"}
    assert c.resources.requests == {"cpu": "8", "memory": "32Gi"}
    volumes = {v.name: v for v in pod.volumes}
    mounts = {v.mount_path: v.name for v in c.volume_mounts}
    assert volumes[mounts["/dev/shm"]].empty_dir.medium == "Memory"
    assert volumes[mounts["/dev/shm"]].empty_dir.size_limit == "16Gi"
    assert volumes[mounts["/mnt/work"]].persistent_volume_claim.claim_name == "medllama-work"
    secret_refs = {e.name: e.value_from.secret_key_ref for e in c.env if e.value_from}
    assert {k: (r.name, r.key) for k, r in secret_refs.items()} == {
        "AWS_ACCESS_KEY_ID": ("s3-credentials", "AWS_ACCESS_KEY_ID"),
        "MLFLOW_TRACKING_PASSWORD": ("mlflow-credentials", "MLFLOW_TRACKING_PASSWORD")}
    assert {e.name: e.value for e in c.env}["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert pod.priority_class_name == "training"


def test_pods_run_unprivileged_as_the_images_user(job):
    pod = job.spec.pytorch_replica_specs["Master"].template.spec
    assert pod.security_context.run_as_non_root and pod.security_context.run_as_user == 1000
    sc = pod.containers[0].security_context
    assert sc.allow_privilege_escalation is False and sc.privileged is False and sc.capabilities.drop == ["ALL"]


def test_single_node_has_no_workers_and_no_gpu_limit():
    job = build_pytorchjob(["torchrun"], PyTorchJobOptions(name="one", namespace="ml", image="r/t:1",
                                                                       nproc_per_node=2, cpu="2", memory="4Gi"))
    assert set(job.spec.pytorch_replica_specs) == {"Master"}
    c = job.spec.pytorch_replica_specs["Master"].template.spec.containers[0]
    assert "nvidia.com/gpu" not in c.resources.limits
    assert [v.name for v in job.spec.pytorch_replica_specs["Master"].template.spec.volumes] == ["dshm"]


def test_names_are_validated_and_derived():
    with pytest.raises(ValueError, match="job name"):
        PyTorchJobOptions(name="Tiny_CPT", namespace="ml", image="r/t:1")
    name = job_name("Me-LLaMA 13B", "cpt", "run/42" * 10)
    assert PyTorchJobOptions(name=name, namespace="ml", image="r/t:1").name == name and len(name) <= 45


def test_gpus_must_match_processes_per_pod():
    with pytest.raises(ValueError, match="one process per GPU"):
        PyTorchJobOptions(name="x", namespace="ml", image="r/t:1", nproc_per_node=2, gpus=8, gpu_resource="nvidia.com/gpu")
    with pytest.raises(ValueError, match="gpu_resource"):
        PyTorchJobOptions(name="x", namespace="ml", image="r/t:1", nproc_per_node=2, gpus=2)
    with pytest.raises(ValueError, match="mount_path"):
        PyTorchJobOptions(name="x", namespace="ml", image="r/t:1", pvc="work")
