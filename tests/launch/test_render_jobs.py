"""k8s/jobs/*.yaml: committed, rendered by the launcher's own builder from the `gpu` cluster profile, fresh,
equal to what the launcher submits, and valid Kubernetes.

No API server can run here, so validity is checked three ways: the whole PyTorchJob against the
training operator's CRD schema (tests/crd_schema.py, strict) and through the kubeflow-training SDK model
classes, and every replica's pod template as a core/v1 PodTemplate against the Kubernetes OpenAPI schema
(kubernetes-validate, strict: unknown fields fail) — the part of the job a cluster actually runs.
"""

from __future__ import annotations

import pytest
import yaml

from medllama.cluster import load_profile
from medllama.k8s.pytorchjob import from_dict, to_dict
from medllama.k8s.render_jobs import DEFAULT_DIR, JOBS, PROFILE, main, render_all, stage_paths, stale
from medllama.launch import run_stage
from medllama.recipe import load_recipe
from medllama.train.__main__ import parse_args
from tests.crd_schema import validate_custom_resource

KUBERNETES_VERSION = "1.30.0"  # the kubernetes client the SDK pins (30.1.0) speaks 1.30


def committed() -> dict[tuple[str, str], dict]:
    return {(r, s): yaml.safe_load((DEFAULT_DIR / f"{r}-{s}.yaml").read_text()) for r, s in JOBS}


def test_committed_jobs_are_fresh(tmp_path):
    assert stale() == [], "k8s/jobs is stale: run `python -m medllama.k8s.render_jobs` and commit the files"
    assert sorted(p.name for p in DEFAULT_DIR.glob("*.yaml")) == sorted(f"{r}-{s}.yaml" for r, s in JOBS)
    assert main(["--check"]) == 0
    (tmp_path / "me-llama-13b-cpt.yaml").write_text("stale\n")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert main(["--out", str(tmp_path)]) == 0 and stale(tmp_path) == []


@pytest.mark.parametrize("recipe,stage", JOBS)
def test_job_matches_the_recipe_and_cluster_defaults(recipe, stage):
    data = committed()[(recipe, stage)]
    spec = load_recipe(recipe).stage(stage)
    assert to_dict(from_dict(data)) == data  # the SDK model classes carry every field
    profile = load_profile(PROFILE)
    validate_custom_resource(data)
    assert data["metadata"] == {"labels": {"app.kubernetes.io/name": "medllama-train"}, "name": f"{recipe}-{stage}",
                                "namespace": profile.namespace}
    replicas = data["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas.get("Worker", {}).get("replicas", 0) == spec.nnodes - 1
    for replica in replicas.values():
        pod = replica["template"]["spec"]
        (c,) = pod["containers"]
        assert c["image"] == profile.images.trainer
        assert c["resources"]["limits"][profile.gpu_resource] == str(spec.nproc_per_node)
        secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
        assert secret_refs == profile.secret_env()
        assert {e["name"]: e["value"] for e in c["env"] if "value" in e}.items() >= profile.pod_env().items()
        assert pod["nodeSelector"] == profile.node_selector and pod["securityContext"]["runAsNonRoot"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["work"]["persistentVolumeClaim"]["claimName"] == profile.work.pvc
        assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/dev/shm", profile.work.mount_path}
        assert c["command"][:5] == ["torchrun", "--nnodes", str(spec.nnodes), "--nproc_per_node", str(spec.nproc_per_node)]
        assert c["command"][5:7] == ["-m", "medllama.train"]
        args = parse_args(c["command"][7:])  # after `-m medllama.train`: the trainer's own command line
        assert (args.recipe, args.stage, args.output) == (recipe, stage, f"/mnt/medllama/runs/{recipe}/{stage}")
        assert args.data == f"/mnt/medllama/data/{recipe}/{stage}"
        assert args.init == (load_recipe(recipe).model.base if stage == "cpt" else f"/mnt/medllama/runs/{recipe}/cpt/model")


@pytest.mark.parametrize("recipe,stage", JOBS)
def test_the_launcher_submits_the_committed_job(recipe, stage, stand_in):
    """What `run_stage(launcher="kubernetes", cluster="gpu")` creates (through a stand-in TrainingClient: no API
    server here) is the committed file, field for field."""
    client = stand_in(outcome="Failed", message="stopped by the test")
    with pytest.raises(Exception, match="stopped by the test"):
        run_stage(recipe, stage, **stage_paths(recipe, stage, load_profile(PROFILE).work.mount_path),
                  launcher="kubernetes", cluster=PROFILE, name=f"{recipe}-{stage}", client=client, poll_s=1)
    assert to_dict(client.created) == committed()[(recipe, stage)]


@pytest.mark.parametrize("recipe,stage", JOBS)
def test_pod_templates_are_valid_core_v1(recipe, stage):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for role, replica in committed()[(recipe, stage)]["spec"]["pytorchReplicaSpecs"].items():
        template = {"apiVersion": "v1", "kind": "PodTemplate",
                    "metadata": {"name": f"{recipe}-{stage}-{role.lower()}"}, "template": replica["template"]}
        kubernetes_validate.validate(template, KUBERNETES_VERSION, strict=True)


def test_validation_would_catch_a_broken_template():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    replica = committed()[JOBS[0]]["spec"]["pytorchReplicaSpecs"]["Master"]
    replica["template"]["spec"]["containers"][0]["resources"]["limitz"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"},
                                      "template": replica["template"]}, KUBERNETES_VERSION, strict=True)


def test_render_all_names_every_job(tmp_path):
    assert sorted(p.name for p in render_all(tmp_path)) == sorted(f"{r}-{s}.yaml" for r, s in JOBS)
