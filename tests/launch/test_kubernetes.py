"""The Kubernetes launcher's call sequence and failure handling.

No Kubernetes API server or training operator can run here, so `client` is a stand-in for
kubeflow.training.TrainingClient (tests/launch/conftest.py) that answers like the SDK does.
"""

from __future__ import annotations

import json

import pytest

from medllama.launch import TrainingFailed, run_stage


def launch(tmp_path, client, **options):
    return run_stage("tiny", "cpt", "/mnt/work/packed", "/mnt/work/tok", None, str(tmp_path / "out"),
                     launcher="kubernetes", overrides={"cpt.max_steps": 5}, client=client, name="tiny-cpt",
                     namespace="ml", image="reg/trainer:1", pvc="work", poll_s=1, **options)


def write_outputs(out):
    def write():
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"stage": "cpt", "steps": 5, "final_loss": 1.0}))
    return write


def test_success_creates_follows_logs_waits_and_deletes(tmp_path, stand_in):
    client = stand_in(on_success=write_outputs(tmp_path / "out"))
    result = launch(tmp_path, client, yaml_path=tmp_path / "job.yaml")
    assert [c[0] for c in client.calls] == ["create_job", "wait", "logs", "wait", "delete"]
    assert client.calls[2] == ("logs", "tiny-cpt", True)
    assert client.calls[3][2] == {"Succeeded", "Failed"}
    assert result.metrics["steps"] == 5 and str(result.model_dir) == f"{tmp_path}/out/model"
    container = client.created.spec.pytorch_replica_specs["Master"].template.spec.containers[0]
    cmd = container.command
    assert cmd[:5] == ["torchrun", "--nnodes", "1", "--nproc_per_node", "2"]  # tiny: 1 node x 2 processes
    assert cmd[5:7] == ["-m", "medllama.train"] and cmd[cmd.index("--set") + 1] == "cpt.max_steps=5"
    assert "kind: PyTorchJob" in (tmp_path / "job.yaml").read_text()


def test_failure_reports_the_condition_message_and_keeps_the_job(tmp_path, stand_in):
    client = stand_in(outcome="Failed", message="pytorch container exited with code 137 (OOMKilled)")
    with pytest.raises(TrainingFailed, match="OOMKilled"):
        launch(tmp_path, client)
    assert "delete" not in [c[0] for c in client.calls] and "logs" not in [c[0] for c in client.calls]
    client = stand_in(outcome="Failed", message="boom")
    with pytest.raises(TrainingFailed, match="boom"):
        launch(tmp_path, client, delete="always")
    assert client.calls[-1][0] == "delete"


def test_timeout_is_a_training_failure(tmp_path, stand_in):
    client = stand_in(outcome="Timeout")
    with pytest.raises(TrainingFailed, match="did not finish"):
        launch(tmp_path, client, timeout_s=3)


def test_log_streaming_errors_do_not_fail_the_job(tmp_path, stand_in):
    client = stand_in(logs_error=RuntimeError("pods is forbidden"), on_success=write_outputs(tmp_path / "out"))
    assert launch(tmp_path, client, delete="never").metrics["stage"] == "cpt"
    assert "delete" not in [c[0] for c in client.calls]


def test_unreadable_outputs_give_empty_metrics(tmp_path, stand_in):
    assert launch(tmp_path, stand_in()).metrics == {}


def test_bad_options_are_rejected(tmp_path, stand_in):
    with pytest.raises(ValueError, match="delete"):
        launch(tmp_path, stand_in(), delete="sometimes")
    with pytest.raises(TypeError, match="local"):
        run_stage("tiny", "cpt", "d", "t", None, tmp_path, launcher="local", image="x")
    with pytest.raises(ValueError, match="launcher"):
        run_stage("tiny", "cpt", "d", "t", None, tmp_path, launcher="slurm")


def test_dry_run_yaml_is_the_job_that_would_be_created(tmp_path, stand_in):
    import yaml

    from medllama.k8s.pytorchjob import to_dict
    from medllama.launch import render_pytorchjob

    text = render_pytorchjob("tiny", "cpt", "/mnt/work/packed", "/mnt/work/tok", None, str(tmp_path / "out"),
                             overrides={"cpt.max_steps": 5}, name="tiny-cpt", namespace="ml", image="reg/trainer:1",
                             pvc="work")
    client = stand_in()
    launch(tmp_path, client)
    assert yaml.safe_load(text) == to_dict(client.created)


def test_dry_run_prints_and_submits_nothing(tmp_path, stand_in, capsys):
    client = stand_in()
    result = run_stage("tiny", "cpt", "/mnt/work/packed", "/mnt/work/tok", None, str(tmp_path / "out"),
                       launcher="kubernetes", dry_run=True, client=client, name="tiny-cpt", timeout_s=5)
    assert client.calls == [] and result.metrics == {}
    text = capsys.readouterr().out
    assert "kind: PyTorchJob" in text and "name: tiny-cpt" in text
    run_stage("tiny", "cpt", "/d", "/t", "none", str(tmp_path / "out"), dry_run=True)
    line = capsys.readouterr().out
    assert "torch.distributed.run" in line and "--nproc_per_node 2" in line and "--init none" in line


def test_init_defaults_to_the_recipes_base(tmp_path, capsys):
    run_stage("tiny", "sft", "/d", "/t", None, str(tmp_path / "out"), overrides={"model.base": "s3://m/base"},
              dry_run=True)
    assert "--init s3://m/base" in capsys.readouterr().out
    run_stage("tiny", "sft", "/d", "/t", None, str(tmp_path / "out"), dry_run=True)  # tiny: base is null
    assert "--init none" in capsys.readouterr().out
