"""Fixtures for trainer tests: a tiny BPE tokenizer and packed CPT/SFT data of repetitive, learnable text.

The text is generated (no network, no bundled corpus needed), structured enough that a randomly
initialised 4-layer model's loss falls visibly within a few dozen steps.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from medllama.data.packed import IGNORE_INDEX, Manifest, PackedWriter, token_dtype
from medllama.recipe import RECIPES_DIR

SEQ_LEN = 64
DRUGS = ["aspirin", "metformin", "insulin", "heparin", "warfarin", "statin", "lisinopril", "ibuprofen"]
CONDITIONS = ["diabetes", "hypertension", "asthma", "sepsis", "anemia", "migraine", "angina", "gout"]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        i = rng.randrange(len(DRUGS))
        out.append(f"the patient with {CONDITIONS[i]} was treated with {DRUGS[i]} and improved .")
    return out


def build_tokenizer(directory: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", "<unk>"])
    tok.train_from_iterator(sentences(500) + ["### Instruction: ### Response: what treats ?"], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(directory)
    return fast


def write_cpt(directory: Path, tok, rows: int = 160) -> Path:
    """Sentences joined by EOS, with the document-boundary index (so rows carry restarting position_ids)."""
    ids: list[int] = []
    for s in sentences(rows * 8, seed=1):
        ids += tok.encode(s, add_special_tokens=False) + [tok.eos_token_id]
    manifest = Manifest("cpt", SEQ_LEN, token_dtype(len(tok)).name, len(tok), tok.eos_token_id, tok.pad_token_id)
    w = PackedWriter(directory, manifest, rows_per_shard=64)
    for r in range(rows):
        row = np.array(ids[r * SEQ_LEN:(r + 1) * SEQ_LEN])
        w.add(row, doc_starts=np.flatnonzero(row[:-1] == tok.eos_token_id) + 1)
    w.close()
    return directory


def sft_row(tok, condition: str, drug: str) -> tuple[np.ndarray, np.ndarray]:
    prompt = tok.encode(f"### Instruction: what treats {condition} ? ### Response:", add_special_tokens=False)
    answer = tok.encode(f" {drug} .", add_special_tokens=False) + [tok.eos_token_id]
    ids = (prompt + answer + [tok.pad_token_id] * SEQ_LEN)[:SEQ_LEN]
    labels = ([IGNORE_INDEX] * len(prompt) + answer + [IGNORE_INDEX] * SEQ_LEN)[:SEQ_LEN]
    return np.array(ids), np.array(labels)


def write_sft(directory: Path, tok, rows: int = 96) -> Path:
    manifest = Manifest("sft", SEQ_LEN, token_dtype(len(tok)).name, len(tok), tok.eos_token_id, tok.pad_token_id)
    w = PackedWriter(directory, manifest)
    for r in range(rows):
        w.add(*sft_row(tok, CONDITIONS[r % 8], DRUGS[r % 8]))
    w.close()
    return directory


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> dict[str, Path]:
    """tokenizer dir, packed cpt and sft dirs, and a test recipe (tiny.yaml, smaller model, short runs)."""
    root = tmp_path_factory.mktemp("assets")
    tok = build_tokenizer(root / "tokenizer")
    recipe = yaml.safe_load((RECIPES_DIR / "tiny.yaml").read_text())
    recipe["model"]["config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ_LEN)
    for name in ("cpt", "sft"):
        recipe[name].update(max_steps=40, micro_batch_size=4, save_every=10, keep_last=2, warmup_ratio=0.05)
    (root / "test.yaml").write_text(yaml.safe_dump(recipe))
    return {
        "tokenizer": root / "tokenizer",
        "cpt": write_cpt(root / "cpt", tok),
        "sft": write_sft(root / "sft", tok),
        "recipe": root / "test.yaml",
    }
