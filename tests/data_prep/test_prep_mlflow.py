"""Prepare stats reach MLflow as flat metrics plus the length histogram, only when a tracking URI is set."""

from __future__ import annotations

import pytest

from medllama.data import log_stats_to_mlflow


def test_not_logged_without_tracking_uri(tiny_run, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert log_stats_to_mlflow(tiny_run.stats) is None


def test_logged_to_a_new_run(tiny_run, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "prep-test")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store keeps the test fast (no DB migrations)
    run_id = log_stats_to_mlflow(tiny_run.stats, histogram=tiny_run.output_dir / "length_hist.png")
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    m = run.data.metrics
    assert m["cpt/rows"] == tiny_run.stats["cpt"]["rows"]
    assert m["domains/clinical/docs_kept"] == tiny_run.stats["domains"]["clinical"]["docs_kept"]
    assert "decontamination/sets/medqa/docs_matched" in m
    assert m["phi/by_type/AGE_OVER_89"] == tiny_run.stats["phi"]["by_type"]["AGE_OVER_89"]  # the PHI scan's counts
    assert m["phi/per_1k_tokens"] == tiny_run.stats["phi"]["per_1k_tokens"]
    assert [a.path for a in client.list_artifacts(run_id, "prepare")] == ["prepare/length_hist.png"]
    assert log_stats_to_mlflow({"cpt": {"rows": 1}}, run_id=run_id) == run_id  # an existing run
