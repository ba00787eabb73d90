"""Fixtures for registry tests: a tiny HF model folder and real servers (PostgreSQL, moto S3, mlflow server).

Servers start once per session; a missing binary skips the tests that need it, nothing else does.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py
from servers import (  # noqa: E402
    MlflowServer,
    Postgres,
    S3Server,
    ServerUnavailable,
    mlflow_server,
    moto_s3_server,
    postgres_server,
)

ARTIFACT_BUCKET = "mlflow"
ARTIFACT_PREFIX = "artifacts"


def save_tiny_llama(dest: Path) -> Path:
    """A random 2-layer LlamaForCausalLM (hidden 32, vocab 128) with a word-level tokenizer; no downloads."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=128, max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(dest)
    vocab = {f"w{i}": i for i in range(125)} | {"<unk>": 125, "<s>": 126, "</s>": 127}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(dest / "tokenizer.json"))
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}))
    return dest


@pytest.fixture
def fresh_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no MLFLOW_* variables: registrations go to <tmp>/.medllama."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        with postgres_server() as pg:
            yield pg
    except ServerUnavailable as e:  # raised only on start: a binary is missing
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    try:
        with moto_s3_server(buckets=(ARTIFACT_BUCKET,)) as server:
            yield server
    except ServerUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def tracking_server(postgres: Postgres, s3: S3Server) -> Iterator[MlflowServer]:
    """`mlflow server` on PostgreSQL with artifacts proxied to s3://mlflow/artifacts on moto."""
    try:
        with mlflow_server(postgres.create_database("mlflow"), f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_PREFIX}",
                           s3) as server:
            yield server
    except ServerUnavailable as e:
        pytest.skip(str(e))
