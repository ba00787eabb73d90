"""The committed pipelines/me_llama.yaml is what the KFP compiler makes of pipelines/me_llama.py."""

import subprocess
import sys
from pathlib import Path

import yaml
from kfp import components

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
    assert {"recipe", "overrides", "launcher", "work_uri", "work_pvc", "tracking_uri", "prepare_shards"} <= set(inputs)
    assert inputs["recipe"].default == "tiny"


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
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 6
    assert all(e["pvcMount"][0]["mountPath"] == me_llama.WORK_MOUNT for e in executors.values())
