"""The on-disk format between prepare and train: fixed-length token sequences in memory-mapped shards.

A packed directory holds `manifest.json` and shards of `seq_len` tokens per row:
  tokens-NNNNN.bin   the input ids (uint16 when the vocabulary fits, else uint32)
  labels-NNNNN.bin   int32 labels, only for instruction data (-100 = not trained on: prompt or padding)
  docs-NNNNN.bin     int32 document-boundary index (optional: older directories have none):
                     rows+1 pointers, then the in-row offsets where a document starts after offset 0;
                     row r's starts are offsets[ptr[r]:ptr[r+1]] (O(1) per row, a few bytes per document)
For continued pre-training the labels are the inputs themselves (the model shifts them), so no labels
file is written. Documents (CPT) or instruction examples (SFT) follow each other inside a row; `PackedDataset` turns the boundary index
into `position_ids` that restart at 0 where each document starts (how HF LLaMA and flash-attention's
variable-length kernels keep attention within a document).
The manifest is written last and atomically: a directory without one is an unfinished run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medllama.storage import write_json_atomic

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
    docs: str | None = None  # document-boundary index (CPT); absent in manifests written before it


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
    """Appends fixed-length rows to shards of at most `rows_per_shard`; `close()` writes the manifest.

    Rows stream straight into the shard's temporary file (memory stays flat whatever the shard size);
    the file is renamed into place when the shard is full, so a killed run never leaves one that looks
    complete.
    """

    def __init__(self, directory: str | Path, manifest: Manifest, rows_per_shard: int = 1 << 16):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest = manifest
        self.rows_per_shard = rows_per_shard
        self._open: dict[str, tuple] = {}  # kind → (temporary path, file); "tokens" also has a hash
        self._hash = hashlib.sha256()
        self._rows = 0
        self._docs: list[np.ndarray] | None = None

    def add(self, tokens: np.ndarray, labels: np.ndarray | None = None, doc_starts: np.ndarray | None = None) -> None:
        """One row; `doc_starts`: offsets (> 0) in the row where a document begins, for the boundary index."""
        if len(tokens) != self.manifest.seq_len:
            raise ValueError(f"row of {len(tokens)} tokens; this file packs rows of {self.manifest.seq_len}")
        raw = np.ascontiguousarray(tokens, dtype=self.manifest.dtype).tobytes()
        self._file("tokens").write(raw)
        self._hash.update(raw)
        if labels is not None:
            self._file("labels").write(np.ascontiguousarray(labels, dtype=np.int32).tobytes())
        if doc_starts is not None:
            self._docs = self._docs if self._docs is not None else []
            self._docs.append(np.asarray(doc_starts, dtype=np.int32))
        self._rows += 1
        if self._rows >= self.rows_per_shard:
            self._flush()

    def _file(self, kind: str):
        if kind not in self._open:
            tmp = self.dir / f".{kind}-{len(self.manifest.shards):05d}.bin.tmp"
            self._open[kind] = (tmp, open(tmp, "wb"))
        return self._open[kind][1]

    def _finish(self, kind: str) -> str | None:
        if kind not in self._open:
            return None
        tmp, f = self._open.pop(kind)
        f.close()
        name = tmp.name[1:-len(".tmp")]
        os.replace(tmp, self.dir / name)
        return name

    def _flush(self) -> None:
        if not self._rows:
            return
        idx = len(self.manifest.shards)
        docs_name = None
        if self._docs is not None:
            docs_name = f"docs-{idx:05d}.bin"
            ptr = np.concatenate([[0], np.cumsum([len(d) for d in self._docs])])
            _write_atomic(self.dir / docs_name, np.concatenate([ptr, *self._docs]).astype(np.int32))
        labels_name = self._finish("labels")
        tokens_name = self._finish("tokens")
        self.manifest.shards.append(Shard(tokens_name, self._rows, self._hash.hexdigest(), labels_name, docs_name))
        self._hash, self._rows, self._docs = hashlib.sha256(), 0, None

    def close(self) -> Manifest:
        self._flush()
        write_json_atomic(self.dir / MANIFEST, asdict(self.manifest))
        return self.manifest


def _write_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    array.tofile(tmp)
    os.replace(tmp, path)


class PackedDataset:
    """Random access to packed rows: `ds[i]` → {"input_ids", "labels", "position_ids"}, each int64[S].

    position_ids restart at 0 at every document start the boundary index records (0..S-1 without one).
    """

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
        self._docs = [np.memmap(self.dir / s.docs, dtype=np.int32, mode="r") if s.docs else None
                      for s in self.manifest.shards]

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        shard, row = self._locate(i)
        ids = self._tokens[shard][row].astype(np.int64)
        labels = self._labels[shard]
        return {"input_ids": ids, "labels": ids.copy() if labels is None else labels[row].astype(np.int64),
                "position_ids": self._positions(shard, row)}

    def doc_starts(self, i: int) -> np.ndarray:
        """Offsets in row `i` where a document starts after offset 0 (empty without a boundary index)."""
        return self._starts(*self._locate(i))

    def _locate(self, i: int) -> tuple[int, int]:
        """(shard, row within it) of global row `i`."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        shard = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return shard, int(i - self._offsets[shard])

    def _starts(self, shard: int, row: int) -> np.ndarray:
        docs = self._docs[shard]
        if docs is None:
            return np.zeros(0, dtype=np.int64)
        n = self.manifest.shards[shard].rows + 1
        return docs[n + docs[row]:n + docs[row + 1]].astype(np.int64)

    def _positions(self, shard: int, row: int) -> np.ndarray:
        S = self.manifest.seq_len
        seg = np.zeros(S, dtype=np.int64)
        starts = self._starts(shard, row)
        seg[starts] = starts
        return np.arange(S, dtype=np.int64) - np.maximum.accumulate(seg)
