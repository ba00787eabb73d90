"""An s3:// output (moto_server as S3): checkpoints, model and metrics land under the prefix, and a run in
a fresh "pod" (empty local cache) resumes from the checkpoint in S3."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from medllama.launch import run_stage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py
from servers import ServerUnavailable, moto_s3_server  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.local]


@pytest.fixture
def s3(monkeypatch):
    try:
        with moto_s3_server(buckets=("runs",)) as server:
            for k, v in server.env.items():
                monkeypatch.setenv(k, v)
            monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
            yield server
    except ServerUnavailable as e:
        pytest.skip(str(e))


def test_s3_output_publishes_and_resumes_from_s3(s3, tiny_assets, tmp_path, monkeypatch):
    uri = "s3://runs/tiny/cpt"

    def run(steps, pod):
        monkeypatch.setenv("MEDLLAMA_CACHE", str(tmp_path / pod))  # each pod starts with an empty local disk
        return run_stage(str(tiny_assets["recipe"]), "cpt", tiny_assets["cpt"], tiny_assets["tokenizer"], None, uri,
                         overrides={"cpt.max_steps": steps, "cpt.save_every": 10, "cpt.keep_last": 2})

    first = run(30, "pod-a")
    keys = s3.keys("runs", "tiny/cpt/")
    steps = sorted({k.split("/")[3] for k in keys if k.startswith("tiny/cpt/checkpoints/step-")})
    assert steps == ["step-0000020", "step-0000030"]  # keep_last applies in S3 too
    assert "tiny/cpt/checkpoints/step-0000030/COMPLETE" in keys
    assert {"tiny/cpt/model/config.json", "tiny/cpt/model/model.safetensors", "tiny/cpt/metrics.json",
            "tiny/cpt/loss.png"} <= set(keys)
    assert first.model_dir == f"{uri}/model" and first.metrics["steps"] == 30

    second = run(40, "pod-b")
    assert second.metrics["start_step"] == 30 and second.metrics["steps"] == 40
    assert second.metrics["losses"][:30] == first.metrics["losses"]
    body = s3.client().get_object(Bucket="runs", Key="tiny/cpt/metrics.json")["Body"].read()
    assert json.loads(body)["steps"] == 40
