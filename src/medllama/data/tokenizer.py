"""The tokenizer of a run: a byte-level BPE trained on the cleaned corpus and the instruction
examples (whose prompts it must encode too), or the recipe's own.

A trained tokenizer has ids <unk>=0, <s>=1, </s>=2, <pad>=3 and adds no special tokens when encoding:
the prepare stage places EOS itself (between documents, after a response), so encoding is the same
for every caller. Its byte-level alphabet means no text is ever unknown.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from medllama.storage import expand, fetch, is_s3

log = logging.getLogger(__name__)

_GENERIC_FAST = ("PreTrainedTokenizerFast", "TokenizersBackend")  # one class (transformers 5 renamed it)
SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def train_bpe(texts: Iterable[str], vocab_size: int, out_dir: str | Path, length: int | None = None):
    """Train a byte-level BPE on `texts` and save it as an HF fast tokenizer in `out_dir`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[SPECIAL_TOKENS[k] for k in ("unk_token", "bos_token", "eos_token", "pad_token")],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_batched(texts), trainer=trainer, length=length)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=1 << 30, **SPECIAL_TOKENS)
    fast.save_pretrained(str(out_dir))
    log.info("trained a byte-level BPE of %d tokens", len(fast))
    return fast


def load_tokenizer(uri: str, out_dir: str | Path):
    """Load the recipe's tokenizer (local dir, HF id in the cache, or s3://), fill in missing special
    tokens and save a copy in `out_dir` so training and serving use exactly these files."""
    local = fetch(uri) if _is_uri(uri) or Path(uri).exists() else uri  # else a Hugging Face id in the local cache
    tok = _from_pretrained(local)
    if tok.eos_token is None:
        raise ValueError(f"tokenizer {uri}: it has no EOS token; documents could not be separated")
    if tok.pad_token is None:
        # LLaMA-2 ships no pad token; padding is masked (-100) so reusing UNK (or EOS) is harmless
        tok.pad_token = tok.unk_token or tok.eos_token
    tok.save_pretrained(str(out_dir))
    return tok


def _from_pretrained(local):
    """AutoTokenizer, except for a directory whose config names PreTrainedTokenizerFast itself (a trained
    tokenizer's): the same class, loaded without AutoTokenizer's model imports (torch, seconds per process)."""
    config = Path(local) / "tokenizer_config.json"
    if config.is_file() and json.loads(config.read_text()).get("tokenizer_class") in _GENERIC_FAST:
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(str(local))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(local))


class Encoder:
    """The Rust tokenizer alone (tokenizer.json), for a prepare shard that only encodes: no transformers
    import (about a second of CPU per process). Its BOS and size are checked against the HF tokenizer
    at the merge, so a difference fails loudly instead of writing other ids."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self.backend_tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        config = path / "tokenizer_config.json"
        bos = json.loads(config.read_text()).get("bos_token") if config.is_file() else None
        bos = bos.get("content") if isinstance(bos, dict) else bos
        self.bos_token_id = self.backend_tokenizer.token_to_id(bos) if isinstance(bos, str) else None

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def bos_prefix(self) -> list[int]:
        ids = self.backend_tokenizer.encode("", add_special_tokens=True).ids
        return [self.bos_token_id] if self.bos_token_id is not None and self.bos_token_id in ids[:1] else []


def encoding_tokenizer(uri: str):
    """The recipe's tokenizer for encoding only (a prepare shard): an `Encoder` when it has a
    tokenizer.json, else the HF tokenizer; nothing is saved."""
    local = fetch(uri) if _is_uri(uri) or Path(uri).exists() else None
    if local is not None and (Path(local) / "tokenizer.json").is_file():
        return Encoder(Path(local))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(local or uri))


def check_tokenizer(uri: str) -> None:
    """Fail early (StorageError) when the recipe's tokenizer is a URI or path that names nothing."""
    if _is_uri(uri) or uri.startswith(("/", ".", "~")):
        expand(uri)


def _is_uri(uri: str) -> bool:
    return is_s3(uri) or uri.startswith(("samples://", "file://"))


def encode_batch(tok, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens."""
    if not texts:
        return []
    return tok(texts, add_special_tokens=False)["input_ids"]


def encode_ids(tok, texts: list[str], bos: list[int], dtype) -> tuple[np.ndarray, np.ndarray]:
    """Every text's ids (after `bos`) concatenated into one array, and each text's id count.

    The Rust tokenizer's own encode_batch (parallel over the batch, GIL released) without the Python
    wrapper's per-token BatchEncoding; ids go straight into numpy. `encode_batch_fast` (tokenizers
    >= 0.21) gives the same ids without computing character offsets, which nothing here reads: about a
    quarter less tokenizer CPU.
    """
    backend = tok.backend_tokenizer
    encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
    encodings = encode(texts, add_special_tokens=False)
    prefix = [np.asarray(bos, dtype=dtype)] if bos else []
    # one small array per text, then one concatenate: a third faster than chaining Python ints
    arrays = [a for e in encodings for a in (*prefix, np.array(e.ids, dtype=dtype))]
    sizes = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
    if bos:
        sizes = sizes[0::2] + sizes[1::2]
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype)
    return flat, sizes


def bos_prefix(tok) -> list[int]:
    """[bos_id] when the tokenizer itself starts every encoding with BOS (LLaMA's do), else [].

    Documents and prompts then start with BOS too, as in the model's own pre-training and as the
    evaluation encodes its prompts; a trained tokenizer adds none, so its rows carry none.
    """
    if isinstance(tok, Encoder):
        return tok.bos_prefix()
    ids = tok("", add_special_tokens=True)["input_ids"]
    return [tok.bos_token_id] if tok.bos_token_id is not None and tok.bos_token_id in ids[:1] else []


def _batched(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for t in texts:
        batch.append(t)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
