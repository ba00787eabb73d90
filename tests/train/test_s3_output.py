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


def test_each_rank_downloads_only_its_own_checkpoint_shards(s3, tmp_path):
    """A ZeRO checkpoint's layout in S3: rank 1 (not a node leader) takes only its partitions and RNG
    state; a leader also takes the shared files; no one takes COMPLETE (fetched last, apart)."""
    from medllama.train.outputs import download_checkpoint

    names = ["mp_rank_00_model_states.pt", "trainer_state.json", "COMPLETE", "rng-rank0.pt", "rng-rank1.pt",
             "rng-rank10.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt",
             "zero_pp_rank_10_mp_rank_00_optim_states.pt"]
    for n in names:
        s3.client().put_object(Bucket="runs", Key=f"x/checkpoints/step-0000010/{n}", Body=n.encode())
    uri = "s3://runs/x/checkpoints/step-0000010"
    got = download_checkpoint(uri, tmp_path / "r1", rank=1, leader=False)
    assert sorted(got) == ["rng-rank1.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == sorted(got)
    assert (tmp_path / "r1" / "rng-rank1.pt").read_bytes() == b"rng-rank1.pt"
    lead = download_checkpoint(uri, tmp_path / "r10", rank=10, leader=True)
    assert sorted(lead) == ["mp_rank_00_model_states.pt", "rng-rank10.pt", "trainer_state.json",
                            "zero_pp_rank_10_mp_rank_00_optim_states.pt"]


def test_fetch_cache_is_keyed_by_etag(s3, tmp_path, monkeypatch):
    """A rewritten object is fetched anew, never served stale from the cache; an unchanged one is not
    downloaded twice."""
    from medllama import storage

    monkeypatch.setattr(storage, "CACHE_DIR", tmp_path / "cache")
    client = s3.client()
    client.put_object(Bucket="runs", Key="tok/vocab.json", Body=b'{"v": 1}')
    first = storage.fetch("s3://runs/tok/vocab.json")
    assert first.read_bytes() == b'{"v": 1}' and storage.fetch("s3://runs/tok/vocab.json") == first
    client.put_object(Bucket="runs", Key="tok/vocab.json", Body=b'{"v": 2}')
    assert storage.fetch("s3://runs/tok/vocab.json").read_bytes() == b'{"v": 2}'
    prefix = storage.fetch("s3://runs/tok/")
    client.put_object(Bucket="runs", Key="tok/merges.txt", Body=b"a b")  # a file added under a prefix
    assert sorted(p.name for p in storage.fetch("s3://runs/tok/").iterdir()) == ["merges.txt", "vocab.json"]
    assert sorted(p.name for p in prefix.iterdir()) == ["vocab.json"]
