"""Drop repeated documents: exact copies by content hash, and optionally near copies by MinHash LSH."""

from __future__ import annotations

import hashlib
import importlib.util
import zlib

import numpy as np

from medllama.data.clean import split_words

_SHINGLE_MULT = np.uint64(0x100000001B3)  # FNV prime: combines a shingle's word hashes
_MIX = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64 constant: spreads the combined hash


DIGEST_SIZE = 16


def digest(text: str) -> bytes:
    """The content hash exact dedup compares (computed where the text is read, compared where it merges)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=DIGEST_SIZE).digest()


class ExactDedup:
    """Remembers a 16-byte digest per document seen (~50 bytes each in a set: 20M docs ≈ 1 GB)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def is_new(self, text: str) -> bool:
        return self.is_new_digest(digest(text))

    def is_new_digest(self, digest: bytes) -> bool:
        if digest in self._seen:
            return False
        self._seen.add(digest)
        return True


class NearDedup:
    """MinHash LSH over word 5-gram shingles: a document whose estimated Jaccard similarity to one
    already kept is >= `threshold` is a near duplicate.

    The signature is computed here with numpy (crc32 per word, a polynomial hash per shingle,
    an affine map mod 2**32 per permutation, min over shingles: one vectorised pass per
    document, several times faster than hashing every shingle in Python); datasketch's MinHashLSH
    does the banding, queries and inserts. datasketch is imported on the first query only: a
    prepare shard that only computes signatures never pays its import (~0.5 s of CPU, scipy included).

    `colliding` finds, with one vectorised pass per band, the documents that share a band with any
    other: only those can be (or have) a near duplicate, so only those go through the index's
    per-document query and insert (most of a corpus does not).
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle: int = 5, seed: int = 1):
        if importlib.util.find_spec("datasketch") is None:  # fail where the run starts, without importing it
            raise ImportError("near-duplicate removal needs datasketch: pip install datasketch")
        self.threshold, self.num_perm, self.shingle, self.seed = threshold, num_perm, shingle, seed
        self._lsh = None  # datasketch MinHashLSH, built on the first query
        self._count = 0
        rng = np.random.default_rng([seed, 0x4D48])
        self._a = (rng.integers(0, 2**31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1))  # odd: a bijection
        self._b = rng.integers(0, 2**32, num_perm, dtype=np.uint32)
        self._placeholder = (np.zeros(num_perm, np.uint64), np.zeros(num_perm, np.uint64))  # never used to hash

    def signature(self, text: str, words: list[bytes] | None = None) -> np.ndarray:
        """The MinHash of `text` (uint64[num_perm], values < 2**32): computed where the text is read;
        `words`: `split_words(text)` when the caller already has it."""
        words = (split_words(text) if words is None else words) or [b""]
        wh = np.fromiter(map(zlib.crc32, words), dtype=np.uint64, count=len(words))
        k = min(self.shingle, len(words))
        m = len(words) - k + 1
        h = np.zeros(m, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(k):
                h = h * _SHINGLE_MULT + wh[j:j + m]
            h ^= h >> np.uint64(29)
            h *= _MIX
            h ^= h >> np.uint64(32)
            # affine permutations of the 32-bit mixed shingle hash (datasketch's "affine32" idea), in uint32
            phv = h.astype(np.uint32)[:, None] * self._a + self._b
        return phv.min(axis=0).astype(np.uint64)

    def index(self):
        """datasketch's MinHashLSH for this threshold (its banding: `b` bands of `r` values)."""
        if self._lsh is None:
            from datasketch import MinHashLSH

            self._lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        return self._lsh

    def colliding(self, signatures: list[np.ndarray], chunk: int = 1 << 20) -> list[np.ndarray]:
        """For each (n, num_perm) array of signatures, one bool per row: does it share at least one LSH
        band (the index's own `hashranges`) with another row of any of the arrays? A row that shares
        none is never returned by a query and its own query finds nothing, so it is kept without
        touching the index. Equal band values give equal keys; a key collision only adds a row that
        the index then decides exactly."""
        sizes = [len(s) for s in signatures]
        hit = np.zeros(sum(sizes), dtype=bool)
        for lo, hi in self.index().hashranges:
            keys = np.empty(len(hit), dtype=np.uint64)
            at = 0
            for sig in signatures:
                for i in range(0, len(sig), chunk):  # memory-mapped signatures, read a chunk at a time
                    band = np.asarray(sig[i:i + chunk, lo:hi], dtype=np.uint64)
                    h = np.zeros(len(band), dtype=np.uint64)
                    with np.errstate(over="ignore"):
                        for j in range(hi - lo):
                            h = h * _SHINGLE_MULT + band[:, j]
                    keys[at:at + len(h)] = h
                    at += len(h)
            _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            hit |= counts[inverse] > 1
        return np.split(hit, np.cumsum(sizes)[:-1])

    def is_new_signature(self, hashvalues: np.ndarray) -> bool:
        """Query, then insert when no kept document is similar: the order-dependent, cheap part."""
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=self.seed, hashvalues=np.asarray(hashvalues, np.uint64),
                    permutations=self._placeholder, scheme="legacy")
        if self.index().query(m):
            return False
        self.index().insert(str(self._count), m)
        self._count += 1
        return True
