"""Fixtures of the data-preparation tests: small synthetic corpora and recipes that point at them."""

from __future__ import annotations

from pathlib import Path

import pytest

from medllama.data import PrepareResult, prepare
from medllama.recipe import Recipe, load_recipe

from .helpers import small_recipe, synthetic_docs, write_instructions, write_jsonl


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    """Three domains of synthetic JSONL: biomedical 600 docs, clinical 100, general 300."""
    return {d: write_jsonl(tmp_path / "src" / f"{d}.jsonl", synthetic_docs(d, n))
            for d, n in (("biomedical", 600), ("clinical", 100), ("general", 300))}


@pytest.fixture
def corpus_recipe(tmp_path: Path, corpus: dict[str, Path]) -> Recipe:
    inst = write_instructions(tmp_path / "src" / "inst.jsonl")
    return small_recipe([{"path": str(p), "domain": d} for d, p in corpus.items()], [str(inst)])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> PrepareResult:
    """`prepare` of the tiny recipe on the bundled samples (a couple of seconds)."""
    return prepare(load_recipe("tiny"), tmp_path_factory.mktemp("tiny"), progress=False)


@pytest.fixture
def s3(tmp_path: Path, monkeypatch):
    """An in-process S3 (moto) with bucket `corpus`; the storage cache points into tmp_path."""
    moto = pytest.importorskip("moto")
    import boto3

    import medllama.storage as storage

    for k in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(storage, "CACHE_DIR", tmp_path / "cache")
    (tmp_path / "cache" / "s3").mkdir(parents=True)  # storage.fetch does not create it yet (reported)
    with moto.mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="corpus")
        yield client
