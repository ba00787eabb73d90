"""Fixtures for serving tests: a tiny random Llama exported the way training exports one (BPE tokenizer
trained on the bundled samples, the recipe's chat template), and `medllama serve` as a real process."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py
from registry.conftest import postgres, s3, tracking_server  # noqa: E402,F401  (the real MLflow server)
from servers import MlflowServer, free_port, http_server, venv_bin  # noqa: E402

MODEL = "serve-tiny"  # the registered name clients send
ALIAS = "champion"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "medllama" / "samples"


def export_tiny_model(dest: Path, context: int = 256) -> Path:
    """A random 2-layer Llama with a byte-level BPE (vocab 512) and the tiny recipe's chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from medllama.data.instructions import chat_template
    from medllama.data.tokenizer import train_bpe
    from medllama.recipe import load_recipe
    from medllama.train.model import export

    texts = [json.loads(line).get("text", "") for f in sorted((SAMPLES / "corpus").rglob("*.jsonl"))
             for line in f.read_text().splitlines() if line.strip()]
    tok = train_bpe(texts + ["### Instruction:\n### Input:\n### Response:\n"] * 10, 512, dest.with_name("tok"))
    tok.chat_template = chat_template(load_recipe("tiny").data)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=len(tok), max_position_embeddings=context,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return export(LlamaForCausalLM(config), tok, dest)


@pytest.fixture(scope="session")
def tiny_served_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("served") / "model")


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT

    @property
    def openai_url(self) -> str:
        return f"{self.url}/openai/v1"

    def client(self, **kw):
        import openai

        return openai.OpenAI(base_url=self.openai_url, api_key="unused", max_retries=0, **kw)


@contextlib.contextmanager
def medllama_serve(model: str, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> Iterator[Server]:
    """`medllama serve --model MODEL` as a process on `port` (default a free one), until V2 health says ready."""
    port = port or free_port()
    cmd = [venv_bin("medllama") or "medllama", "serve", "--model", model, "--port", str(port), *args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), **(env or {})}
    url = f"http://127.0.0.1:{port}"
    with http_server(cmd, f"{url}/v2/health/ready", "medllama serve", env=env, timeout=180):
        yield Server(url)


@pytest.fixture(scope="session")
def registered(tiny_served_dir: Path, tracking_server: MlflowServer):
    """The tiny model registered on the real MLflow server (PostgreSQL, artifacts on S3) as MODEL@ALIAS."""
    from medllama.registry import register_model

    return register_model(tiny_served_dir, MODEL, {"pubmedqa/accuracy": 0.5}, tracking_uri=tracking_server.url,
                          alias=ALIAS)


@pytest.fixture(scope="session")
def server(registered) -> Iterator[Server]:
    """`medllama serve --model models:/MODEL@ALIAS`, resolved through the registry."""
    with medllama_serve(f"models:/{MODEL}@{ALIAS}", "--tracking-uri", registered.tracking_uri) as s:
        yield s
