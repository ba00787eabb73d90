"""The on-disk format between prepare and train: fixed-length token sequences in memory-mapped shards.

A packed directory holds `manifest.json` and shards of `seq_len` tokens per row:
  tokens-NNNNN.bin   the input ids (uint16 when the vocabulary fits, else uint32)
  labels-NNNNN.bin   int32 labels, only for instruction data (-100 = not trained on: prompt or padding)
For continued pre-training the labels are the inputs themselves (the model shifts them), so no labels
file is written. Documents are separated by EOS inside a row, so the trainer can find their boundaries.
The manifest is written last and atomically: a directory without one is an unfinished run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medllama.storage import sha256_file

IGNORE_INDEX = -100
MANIFEST = "manifest.json"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


@dataclass
class Shard:
    tokens: str
    rows: int
    sha256: str
    labels: str | None = None


@dataclass
class Manifest:
    kind: str  # "cpt" | "sft"
    seq_len: int
    dtype: str
    vocab_size: int
    eos_id: int
    pad_id: int
    shards: list[Shard] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @classmethod
    def load(cls, directory: str | Path) -> "Manifest":
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: no {MANIFEST}; run `medllama prepare` (or it did not finish)")
        raw = json.loads(path.read_text())
        raw["shards"] = [Shard(**s) for s in raw["shards"]]
        return cls(**raw)


class PackedWriter:
    """Appends fixed-length rows to shards of at most `rows_per_shard`; `close()` writes the manifest."""

    def __init__(self, directory: str | Path, manifest: Manifest, rows_per_shard: int = 1 << 16):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest = manifest
        self.rows_per_shard = rows_per_shard
        self._tokens: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def add(self, tokens: np.ndarray, labels: np.ndarray | None = None) -> None:
        if len(tokens) != self.manifest.seq_len:
            raise ValueError(f"row of {len(tokens)} tokens; this file packs rows of {self.manifest.seq_len}")
        self._tokens.append(np.asarray(tokens, dtype=self.manifest.dtype))
        if labels is not None:
            self._labels.append(np.asarray(labels, dtype=np.int32))
        if len(self._tokens) >= self.rows_per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._tokens:
            return
        idx = len(self.manifest.shards)
        tokens_name = f"tokens-{idx:05d}.bin"
        _write_atomic(self.dir / tokens_name, np.stack(self._tokens))
        labels_name = None
        if self._labels:
            labels_name = f"labels-{idx:05d}.bin"
            _write_atomic(self.dir / labels_name, np.stack(self._labels))
        self.manifest.shards.append(Shard(tokens_name, len(self._tokens), sha256_file(self.dir / tokens_name), labels_name))
        self._tokens, self._labels = [], []

    def close(self) -> Manifest:
        self._flush()
        tmp = self.dir / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(asdict(self.manifest), indent=2))
        os.replace(tmp, self.dir / MANIFEST)
        return self.manifest


def _write_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    array.tofile(tmp)
    os.replace(tmp, path)


class PackedDataset:
    """Random access to packed rows: `ds[i]` → {"input_ids": int64[S], "labels": int64[S]}."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.manifest = Manifest.load(self.dir)
        S = self.manifest.seq_len
        self._tokens = [np.memmap(self.dir / s.tokens, dtype=self.manifest.dtype, mode="r").reshape(-1, S) for s in self.manifest.shards]
        self._labels = [
            np.memmap(self.dir / s.labels, dtype=np.int32, mode="r").reshape(-1, S) if s.labels else None
            for s in self.manifest.shards
        ]
        self._offsets = np.cumsum([0] + [s.rows for s in self.manifest.shards])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        shard = int(np.searchsorted(self._offsets, i, side="right") - 1)
        row = i - self._offsets[shard]
        ids = self._tokens[shard][row].astype(np.int64)
        labels = self._labels[shard]
        return {"input_ids": ids, "labels": ids.copy() if labels is None else labels[row].astype(np.int64)}
