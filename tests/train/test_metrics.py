"""Run reporting: MLflow only when configured (and never fatal), metrics.json, the loss plot."""

from __future__ import annotations

import json

from medllama.train.metrics import MlflowLogger, RunMetrics, plot_loss, write_metrics


def test_no_tracking_uri_means_no_mlflow(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    logger = MlflowLogger({"lr": 1e-3}, run_name="x")
    assert logger.mlflow is None
    logger.log_step(1, {"loss": 1.0})
    logger.close()


def test_logs_params_and_step_metrics(monkeypatch, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "medllama-test")
    monkeypatch.chdir(tmp_path)  # the default artifact root is ./mlruns
    logger = MlflowLogger({"lr": 1e-3, "zero_stage": 2}, run_name="tiny-cpt", recipe_yaml="name: tiny\n")
    assert logger.mlflow is not None
    run_id = mlflow.active_run().info.run_id
    for step, loss in enumerate([3.0, 2.0, 1.0], start=1):
        logger.log_step(step, {"loss": loss, "lr": 1e-3})
    logger.close()
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.data.params["zero_stage"] == "2" and run.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [3.0, 2.0, 1.0]
    assert [a.path for a in client.list_artifacts(run_id)] == ["recipe.yaml"]


def test_unreachable_server_disables_logging(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    logger = MlflowLogger({"lr": 1e-3}, run_name="x")
    assert logger.mlflow is None


def test_metrics_json_and_plot(tmp_path):
    m = RunMetrics(stage="cpt", start_step=0, steps=3, losses=[3.0, 2.0, 1.5], tokens=300, train_seconds=2.0, world_size=2)
    data = json.loads(write_metrics(m, tmp_path).read_text())
    assert data["first_loss"] == 3.0 and data["final_loss"] == 1.5 and data["tokens_per_s"] == 150.0
    assert {"stage", "steps", "losses", "first_loss", "final_loss", "tokens_per_s", "train_seconds"} <= set(data)
    assert plot_loss(m.losses, tmp_path / "loss.png", "t").read_bytes()[:4] == b"\x89PNG"
