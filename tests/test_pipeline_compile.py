"""The committed pipelines/me_llama.yaml is what the KFP compiler makes of pipelines/me_llama.py, and its
Kubernetes configuration places every task as the cluster profile says, in pods a cluster accepts."""

import subprocess
import sys
from pathlib import Path

import yaml
import pytest
from kfp import components

from medllama.cluster import load_profile
from pipelines import me_llama

ROOT = Path(__file__).resolve().parents[1]


def test_committed_yaml_is_not_stale(tmp_path):
    fresh = tmp_path / "me_llama.yaml"
    # A subprocess, so MEDLLAMA_IMAGE or earlier imports in this session cannot change the output.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "pipelines.me_llama", "compile", "--output", str(fresh)],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    assert fresh.read_text() == me_llama.COMPILED.read_text(), "pipelines/me_llama.yaml is stale: run `make compile`"


def test_compiled_yaml_loads_back_with_kfp():
    pipeline = components.load_component_from_file(str(me_llama.COMPILED))
    assert pipeline.name == "me-llama"
    inputs = pipeline.component_spec.inputs
    assert {"recipe", "overrides", "launcher", "cluster", "work_uri", "work_pvc", "tracking_uri",
            "prepare_shards"} <= set(inputs)
    assert inputs["recipe"].default == "tiny" and inputs["cluster"].default == "dev"
    assert inputs["tracking_uri"].default == load_profile("dev").mlflow_uri  # the cluster's server, not a pod's file


def test_compiled_yaml_chains_the_stages_and_mounts_the_work_volume():
    docs = list(yaml.safe_load_all(me_llama.COMPILED.read_text()))
    spec, platform = docs[0], docs[1]
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["for-loop-1"]["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--shard-indices-Output"
    assert tasks["merge-shards"]["dependentTasks"] == ["for-loop-1"]
    assert tasks["train-stage"]["dependentTasks"] == ["merge-shards"]
    assert set(tasks["train-stage-2"]["dependentTasks"]) == {"merge-shards", "train-stage"}
    assert set(tasks["evaluate-models"]["dependentTasks"]) == {"merge-shards", "train-stage", "train-stage-2"}  # the stats too
    condition = tasks["condition-2"]["triggerPolicy"]["condition"]
    assert "evaluate-models-Output" in condition
    supervised = spec["components"]["comp-condition-2"]["dag"]["tasks"]  # after registration, in the same branch
    loop = supervised["for-loop-3"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--supervised-tasks-Output"
    assert loop["dependentTasks"] == ["supervised-tasks"]
    assert supervised["supervised-tasks"]["dependentTasks"] == ["register-model"]
    assert supervised["supervised-report"]["dependentTasks"] == ["for-loop-3"]
    tune = spec["components"]["comp-for-loop-3"]["dag"]["tasks"]["tune-on-task"]["inputs"]["parameters"]
    assert tune["base_version"]["parameterExpressionSelector"] == 'parseJson(string_value)["base_version"]'
    assert tune["task"]["parameterExpressionSelector"] == 'parseJson(string_value)["dataset"]'
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 11  # every task: the shard planner, the supervised branch and the deploy step included
    assert supervised["deploy-model"]["dependentTasks"] == ["register-model"]  # deploys what was just registered
    assert all(e["pvcMount"][0]["mountPath"] == load_profile("dev").work.mount_path for e in executors.values())


@pytest.fixture(scope="module")
def gpu_compiled(tmp_path_factory):
    path = me_llama.compile_pipeline(tmp_path_factory.mktemp("gpu") / "me_llama.yaml", cluster="gpu")
    return list(yaml.safe_load_all(path.read_text()))


def test_tasks_are_placed_by_the_cluster_profile(gpu_compiled):
    spec, platform = gpu_compiled
    profile = load_profile("gpu")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    containers = {name: e["container"] for name, e in spec["deploymentSpec"]["executors"].items()}
    assert {c["image"] for c in containers.values()} == {profile.images.trainer}
    for name, k8s in executors.items():
        assert {s["secretName"]: [m["envVar"] for m in s["keyToEnv"]] for s in k8s["secretAsEnv"]} == \
            {s.name: s.keys for s in profile.secrets}
        (env,) = k8s["configMapAsEnv"]
        assert env["configMapName"] == profile.env_config_map
        assert {m["envVar"] for m in env["keyToEnv"]} == set(profile.pod_env())
        assert k8s["securityContext"]["runAsNonRoot"] is True
        resources = containers[name]["resources"]
        assert resources["resourceCpuLimit"] == resources["resourceCpuRequest"] == profile.tasks.resources.cpu
    gpu_tasks = {name for name, c in containers.items() if "accelerator" in c["resources"]}
    assert gpu_tasks == {"exec-evaluate-models", "exec-tune-on-task"}  # both score models
    assert containers["exec-evaluate-models"]["resources"]["accelerator"]["resourceType"] == profile.gpu_resource
    assert executors["exec-evaluate-models"]["nodeSelector"]["labels"] == profile.node_selector
    assert executors["exec-evaluate-models"]["tolerations"] == [t.model_dump(exclude_none=True) for t in profile.tolerations]
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["merge-shards"]["retryPolicy"]["maxRetryCount"] == profile.tasks.retries
    assert "retryPolicy" not in tasks["train-stage"]  # a retried launcher would submit a second training job


def test_every_task_pod_is_valid_core_v1(gpu_compiled):
    """The pod KFP's driver makes of each task (container spec + Kubernetes platform config), validated
    against the Kubernetes OpenAPI schema (strict), with requests and limits set and no root."""
    import kubernetes_validate

    spec, platform = gpu_compiled
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, executor in spec["deploymentSpec"]["executors"].items():
        pod = task_pod(name, executor["container"], executors[name])
        kubernetes_validate.validate(pod, "1.30.0", strict=True)
        (c,) = pod["spec"]["containers"]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
        assert not c["image"].endswith(":latest")


def task_pod(name: str, container: dict, k8s: dict) -> dict:
    """The Pod a KFP v2 task runs in, built from its compiled spec as the KFP driver builds it."""
    r = container["resources"]
    limits = {"cpu": r["resourceCpuLimit"], "memory": r["resourceMemoryLimit"]}
    if "accelerator" in r:
        limits[r["accelerator"]["resourceType"]] = r["accelerator"]["resourceCount"]
    env = [{"name": m["envVar"], "valueFrom": {"configMapKeyRef": {"name": c["configMapName"], "key": m["configMapKey"]}}}
           for c in k8s.get("configMapAsEnv", []) for m in c["keyToEnv"]]
    env += [{"name": m["envVar"], "valueFrom": {"secretKeyRef": {"name": s["secretName"], "key": m["secretKey"]}}}
            for s in k8s.get("secretAsEnv", []) for m in s["keyToEnv"]]
    volumes = [{"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": "medllama-work"}}
               for i, _ in enumerate(k8s.get("pvcMount", []))]
    sc = k8s.get("securityContext", {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name.removeprefix("exec-")},
            "spec": {"containers": [{
                "name": "main", "image": container["image"], "imagePullPolicy": k8s["imagePullPolicy"],
                "command": container["command"], "args": container.get("args", []), "env": env,
                "resources": {"requests": {"cpu": r["resourceCpuRequest"], "memory": r["resourceMemoryRequest"]},
                              "limits": limits},
                "volumeMounts": [{"name": f"pvc-{i}", "mountPath": m["mountPath"]}
                                 for i, m in enumerate(k8s.get("pvcMount", []))],
                "securityContext": {"runAsNonRoot": sc.get("runAsNonRoot"), "runAsUser": int(sc["runAsUser"]),
                                    "allowPrivilegeEscalation": False}}],
                "volumes": volumes, "nodeSelector": k8s.get("nodeSelector", {}).get("labels", {}),
                "tolerations": k8s.get("tolerations", [])}}
