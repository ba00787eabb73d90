"""register_model against real stores: the local SQLite default and `mlflow server` on PostgreSQL + S3."""

from __future__ import annotations

import json
import os
import shlex
import urllib.request
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from medllama.recipe import load_recipe
from medllama.registry import (DATA_USE_NOTE, RegisteredVersion, RegistryError, download_model, flatten_metrics,
                               recipe_params, register_model, registry_cli)
from medllama.storage import sha256_file, sha256_tree
from servers import free_port, http_server, venv_bin

METRICS = {"pubmedqa/accuracy": 0.61, "pubmedqa/macro_f1": 0.48, "medqa/accuracy": 0.375}
PARAMS = {"data.ratio.biomedical": "15.0", "data.ratio.clinical": "1.0", "data.ratio.general": "4.0", "sft.lr": "1e-05"}
TAGS = {"recipe": "tiny", "stage": "sft"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"  # session-shared servers: one registered model per test


def assert_registered(rv: RegisteredVersion, model_dir: Path, version: str, tmp: Path) -> MlflowClient:
    """The version exists with its run's metrics, tags and card, and downloads byte-identical."""
    client = MlflowClient(tracking_uri=rv.tracking_uri, registry_uri=rv.tracking_uri)
    assert (rv.version, rv.model_uri) == (version, f"models:/{rv.name}/{version}")
    run = client.get_run(rv.run_id)
    assert run.data.metrics == METRICS  # '/' in metric names is accepted and kept
    assert run.data.params == PARAMS
    assert run.data.tags["recipe"] == "tiny" and run.info.status == "FINISHED"
    mv = client.get_model_version(rv.name, rv.version)
    assert mv.run_id == rv.run_id and mv.source == f"runs:/{rv.run_id}/model"
    assert mv.tags["data_use_agreement"] == DATA_USE_NOTE and mv.tags["recipe"] == "tiny"
    assert mv.tags["medllama.agreement"] == "me-llama-dua@1"  # what the gate reads
    assert json.loads(mv.tags["metrics"]) == METRICS
    assert mv.tags["model_sha256"] == sha256_tree(model_dir)
    assert mv.description.startswith(f"# {rv.name}") and "| pubmedqa | accuracy | 0.6100 |" in mv.description
    assert "not for clinical decision-making" in mv.description.lower()
    got = download_model(rv.model_uri, tmp / f"dl-{version}", rv.tracking_uri)
    assert sorted(p.name for p in Path(got).iterdir()) == sorted(p.name for p in model_dir.iterdir())
    assert sha256_tree(got) == sha256_tree(model_dir)
    return client


@pytest.mark.usefixtures("fresh_cwd")
def test_local_default_store(tiny_model_dir: Path, tmp_path: Path) -> None:
    rv = register_model(tiny_model_dir, "me-llama-tiny", METRICS, PARAMS, TAGS)
    store = tmp_path / ".medllama"
    assert rv.tracking_uri == f"sqlite:///{store / 'mlflow.db'}"
    assert rv.ui_command == (f"mlflow ui --backend-store-uri sqlite:///{store / 'mlflow.db'} "
                             f"--default-artifact-root {(store / 'mlartifacts').as_uri()}")
    assert_registered(rv, tiny_model_dir, "1", tmp_path)
    assert (store / "mlartifacts" / rv.run_id / "artifacts" / "model" / "model.safetensors").is_file()
    assert (store / "mlartifacts" / rv.run_id / "artifacts" / "model_card.md").is_file()
    assert not (tmp_path / "mlruns").exists()

    rv2 = register_model(tiny_model_dir, "me-llama-tiny", METRICS, PARAMS, TAGS)
    assert rv2.run_id != rv.run_id
    assert_registered(rv2, tiny_model_dir, "2", tmp_path)


@pytest.mark.usefixtures("fresh_cwd")
def test_downloaded_model_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rv = register_model(tiny_model_dir, "loadable", {"pubmedqa/accuracy": 0.5})
    got = download_model(rv.model_uri, tmp_path / "dl", rv.tracking_uri)
    model = AutoModelForCausalLM.from_pretrained(got)
    ids = AutoTokenizer.from_pretrained(got)("w1 w2 w3", return_tensors="pt").input_ids
    assert model(ids).logits.shape == (1, 3, 128)


@pytest.mark.usefixtures("fresh_cwd")
def test_env_tracking_uri_and_extra_artifacts(tiny_model_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'elsewhere' / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"pubmedqa": {"accuracy": 0.5}}))
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "loss.png").write_bytes(b"\x89PNG fake")
    rv = register_model(tiny_model_dir, "env-store", {"pubmedqa/accuracy": 0.5},
                        artifacts={"eval/pubmedqa.json": report, "plots": plots})
    assert rv.tracking_uri == uri and not (tmp_path / ".medllama").exists()
    client = MlflowClient(uri)
    listed = {f.path for folder in (None, "eval") for f in client.list_artifacts(rv.run_id, folder)}
    assert {"model", "model_card.md", "plots", "eval/pubmedqa.json"} <= listed
    run_root = tmp_path / "elsewhere" / "mlartifacts" / rv.run_id / "artifacts"
    assert (run_root / "plots" / "loss.png").read_bytes() == b"\x89PNG fake"


@pytest.mark.usefixtures("fresh_cwd")
def test_alias_resolves(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rv1 = register_model(tiny_model_dir, "aliased", METRICS, alias="candidate")
    client = MlflowClient(rv1.tracking_uri)
    # str(): the SQLite store's get_model_version_by_alias returns the version as an int
    assert str(client.get_model_version_by_alias("aliased", "candidate").version) == "1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", rv1.tracking_uri)  # plain MLflow resolves models:/ globally
    got = mlflow.artifacts.download_artifacts("models:/aliased@candidate", dst_path=str(tmp_path / "dl"))
    assert sha256_tree(got) == sha256_tree(tiny_model_dir)
    register_model(tiny_model_dir, "aliased", METRICS, alias="candidate")
    assert str(client.get_model_version_by_alias("aliased", "candidate").version) == "2"  # the alias moved


@pytest.mark.usefixtures("fresh_cwd")
def test_registry_cli_reads_the_eval_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    from medllama.evaluate.report import EvalReport, TaskResult

    task = TaskResult(name="pubmedqa", data="samples://x", data_sha256={}, mode="loglikelihood", template="",
                      instruction="", decoding={}, metrics={"accuracy": 0.6, "macro_f1": 0.5}, wall_s=1.0)
    report = EvalReport(model_dir=str(tiny_model_dir), model_sha256="abc", seed=1234, versions={},
                        tasks=[task]).to_json(tmp_path / "results.json")
    rv = registry_cli(tiny_model_dir, "cli-model", report, None, "champion")
    client = MlflowClient(rv.tracking_uri)
    assert client.get_run(rv.run_id).data.metrics == {"pubmedqa/accuracy": 0.6, "pubmedqa/macro_f1": 0.5}
    assert [f.path for f in client.list_artifacts(rv.run_id, "eval")] == ["eval/results.json"]
    assert str(client.get_model_version_by_alias("cli-model", "champion").version) == rv.version


def test_flatten_metrics_nested_report() -> None:
    report = {"pubmedqa": {"accuracy": 0.6, "n": 500, "ok": True, "note": "x"}, "medqa": {"f1": {"macro": 0.4}}}
    assert flatten_metrics(report) == {"pubmedqa/accuracy": 0.6, "pubmedqa/n": 500.0, "medqa/f1/macro": 0.4}


@pytest.mark.usefixtures("fresh_cwd")
def test_registry_cli_with_recipe(tiny_model_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe("tiny")
    rv = registry_cli(tiny_model_dir, None, None, None, None, recipe="tiny")
    client = MlflowClient(rv.tracking_uri)
    assert rv.name == recipe.registry.model_name
    run = client.get_run(rv.run_id)
    assert run.data.params == recipe_params(recipe) and run.data.params["data.ratio.clinical"] == "1.0"
    assert run.data.tags["recipe"] == "tiny"
    mv = client.get_model_version(rv.name, rv.version)
    assert mv.description.startswith(f"# {rv.name}\n\n{recipe.registry.description}")
    assert "| clinical | 1.0 | 5.0% |" in mv.description
    got = client.download_artifacts(rv.run_id, "recipe.yaml", str(tmp_path))
    assert Path(got).read_text() == recipe.to_yaml()


@pytest.mark.parametrize("case, message", [
    ("missing_dir", "no such directory"),
    ("not_hf", "no config.json"),
    ("bad_metric", "not a finite number"),
    ("bad_name", "model name"),
    ("bad_alias", "alias 'latest'"),
    ("missing_artifact", "does not exist"),
])
@pytest.mark.usefixtures("fresh_cwd")
def test_bad_input_creates_nothing(case: str, message: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    args = dict(model_dir=tiny_model_dir, name="bad", metrics={"pubmedqa/accuracy": 0.5})
    args.update({
        "missing_dir": dict(model_dir=tmp_path / "no-such-model"),
        "not_hf": dict(model_dir=tmp_path / "empty"),
        "bad_metric": dict(metrics={"pubmedqa/accuracy": float("nan")}),
        "bad_name": dict(name="team/model"),
        "bad_alias": dict(alias="latest"),
        "missing_artifact": dict(artifacts={"eval/report.json": tmp_path / "nope.json"}),
    }[case])
    with pytest.raises(RegistryError, match=message):
        register_model(**args)
    assert not (tmp_path / ".medllama").exists()  # not even the store was created


def test_unreachable_server_fails_fast(tiny_model_dir: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(RegistryError, match=f"tracking server {uri}: not reachable"):
        register_model(tiny_model_dir, "nowhere", METRICS, tracking_uri=uri)


# --- against `mlflow server` on PostgreSQL, artifacts proxied to S3 (moto) ----------------------------------------


@pytest.mark.local
def test_server_store_postgres_s3(tracking_server, s3, tiny_model_dir: Path, tmp_path: Path) -> None:
    name = unique("me-llama-server")
    rv = register_model(tiny_model_dir, name, METRICS, PARAMS, TAGS, tracking_uri=tracking_server.url)
    assert rv.tracking_uri == tracking_server.url and rv.ui_command == f"python3 -m webbrowser {tracking_server.url}"
    client = assert_registered(rv, tiny_model_dir, "1", tmp_path)
    assert client.get_run(rv.run_id).info.artifact_uri.startswith("mlflow-artifacts:")

    keys = s3.keys("mlflow", "artifacts/")
    model_keys = sorted(k for k in keys if f"/{rv.run_id}/artifacts/model/" in k)
    assert [k.rsplit("/", 1)[1] for k in model_keys] == sorted(p.name for p in tiny_model_dir.iterdir())
    weights = next(k for k in model_keys if k.endswith("model.safetensors"))
    obj = tmp_path / "from-s3.safetensors"
    s3.client().download_file("mlflow", weights, str(obj))
    assert sha256_file(obj) == sha256_file(tiny_model_dir / "model.safetensors")

    rv2 = register_model(tiny_model_dir, name, METRICS, PARAMS, TAGS, tracking_uri=tracking_server.url)
    assert_registered(rv2, tiny_model_dir, "2", tmp_path)


@pytest.mark.local
def test_server_alias_and_long_card(tracking_server, tiny_model_dir: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # PostgreSQL enforces VARCHAR(5000) on descriptions (SQLite does not): the card must be cut to fit
    name = unique("aliased-server")
    rv = register_model(tiny_model_dir, name, METRICS, description="A long summary. " * 400,
                        tracking_uri=tracking_server.url, alias="candidate")
    client = MlflowClient(tracking_server.url)
    mv = client.get_model_version_by_alias(name, "candidate")
    assert mv.version == rv.version == "1"
    assert len(mv.description) <= 5000 and "model_card.md" in mv.description
    card = mlflow.artifacts.download_artifacts(run_id=rv.run_id, artifact_path="model_card.md",
                                               dst_path=str(tmp_path), tracking_uri=tracking_server.url)
    assert len(Path(card).read_text()) > 5000
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    got = mlflow.artifacts.download_artifacts(f"models:/{name}@candidate", dst_path=str(tmp_path / "dl"))
    assert sha256_tree(got) == sha256_tree(tiny_model_dir)


@pytest.mark.local
def test_server_takes_more_metrics_and_params_than_one_request_holds(tracking_server, tiny_model_dir: Path) -> None:
    """A server accepts at most 1000 metrics and 100 params per log_batch request: everything still lands."""
    metrics = {f"task{i}/accuracy": i / 2000 for i in range(1500)}
    params = {f"p{i}": str(i) for i in range(250)}
    rv = register_model(tiny_model_dir, unique("many-metrics"), metrics, params, tracking_uri=tracking_server.url)
    run = MlflowClient(tracking_server.url).get_run(rv.run_id)
    assert run.data.metrics == metrics and run.data.params == params


@pytest.mark.local
def test_server_bad_input_creates_no_model(tracking_server, tmp_path: Path) -> None:
    name = unique("never-created")
    with pytest.raises(RegistryError, match="no such directory"):
        register_model(tmp_path / "missing", name, METRICS, tracking_uri=tracking_server.url)
    assert MlflowClient(tracking_server.url).search_registered_models(f"name = '{name}'") == []


@pytest.mark.local
@pytest.mark.usefixtures("fresh_cwd")
def test_ui_command_serves_the_local_store(tiny_model_dir: Path, tmp_path: Path) -> None:
    rv = register_model(tiny_model_dir, "ui-model", METRICS)
    mlflow_bin = venv_bin("mlflow")
    if mlflow_bin is None:
        pytest.skip("mlflow console script not installed")
    port = free_port()
    cmd = [mlflow_bin, *shlex.split(rv.ui_command)[1:], "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    assert cmd[1] == "ui"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    base = f"http://127.0.0.1:{port}"
    with http_server(cmd, f"{base}/health", "mlflow ui", env):
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/get?name=ui-model") as r:
            model = json.load(r)["registered_model"]
        assert [v["version"] for v in model["latest_versions"]] == ["1"]
        # the UI reads the run's artifacts straight from .medllama/mlartifacts
        with urllib.request.urlopen(f"{base}/get-artifact?path=model/config.json&run_uuid={rv.run_id}") as r:
            assert r.read() == (tiny_model_dir / "config.json").read_bytes()


@pytest.mark.local
@pytest.mark.usefixtures("fresh_cwd")
def test_model_dir_on_s3(s3, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medllama import storage

    for key, value in {**s3.env, "AWS_ENDPOINT_URL": s3.endpoint_url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(storage, "CACHE_DIR", tmp_path / "cache")  # fetch() caches by URI
    (tmp_path / "cache" / "s3").mkdir(parents=True)  # storage.fetch does not create it yet (reported to the lead)
    uri = storage.publish(tiny_model_dir, f"s3://mlflow/{unique('checkpoints')}/sft")
    rv = register_model(uri, "from-s3", {"pubmedqa/accuracy": 0.5})
    assert sha256_tree(download_model(rv.model_uri, tmp_path / "dl", rv.tracking_uri)) == sha256_tree(tiny_model_dir)
    with pytest.raises(RegistryError, match="model_dir s3://mlflow/nothing-here: no objects match"):
        register_model("s3://mlflow/nothing-here", "from-s3", {"pubmedqa/accuracy": 0.5})
