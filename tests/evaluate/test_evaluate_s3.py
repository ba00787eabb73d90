"""Model and results on S3 (a real moto server): the URIs the pipeline passes between pods."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from medllama import storage
from medllama.evaluate import evaluate
from medllama.recipe import EvalTask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py
from servers import ServerUnavailable, moto_s3_server  # noqa: E402

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def s3_env():
    try:
        with moto_s3_server(buckets=("eval",)) as server:
            yield server
    except ServerUnavailable as e:
        pytest.skip(str(e))


def test_model_from_s3_and_results_to_s3(s3_env, tiny_model, tmp_path, monkeypatch):
    for key, value in {**s3_env.env, "AWS_ENDPOINT_URL": s3_env.endpoint_url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(storage, "CACHE_DIR", tmp_path / "cache")
    (tmp_path / "cache" / "s3").mkdir(parents=True)  # storage.fetch does not create it yet (fix reported)
    storage.publish(tiny_model, "s3://eval/models/tiny")
    task = EvalTask(name="medqa", data="samples://eval/medqa/US/4_options/phrases_no_exclude_test.jsonl", limit=3)
    report = evaluate("s3://eval/models/tiny", [task], output="s3://eval/runs/1/candidate.json")
    assert report.model_sha256 == storage.sha256_tree(tiny_model)
    keys = s3_env.keys("eval", "runs/1/")
    assert keys == ["runs/1/candidate.json", "runs/1/candidate.md", "runs/1/candidate.predictions/medqa.jsonl"]
    body = s3_env.client().get_object(Bucket="eval", Key="runs/1/candidate.json")["Body"].read()
    assert json.loads(body)["metrics"] == report.metrics
