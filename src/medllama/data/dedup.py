"""Drop repeated documents: exact copies by content hash, and optionally near copies by MinHash LSH."""

from __future__ import annotations

import hashlib
import re

_WORDS = re.compile(r"\w+")


class ExactDedup:
    """Remembers a 16-byte digest per document seen (~50 bytes each in a set: 20M docs ≈ 1 GB)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def is_new(self, text: str) -> bool:
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        if digest in self._seen:
            return False
        self._seen.add(digest)
        return True


class NearDedup:
    """MinHash LSH over word 5-gram shingles (datasketch): a document whose estimated Jaccard
    similarity to one already kept is >= `threshold` is a near duplicate."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle: int = 5, seed: int = 1):
        try:
            from datasketch import MinHash, MinHashLSH
        except ImportError:
            raise ImportError("near-duplicate removal needs datasketch: pip install datasketch") from None
        self._minhash = MinHash
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.num_perm, self.shingle, self.seed = num_perm, shingle, seed
        self._count = 0

    def is_new(self, text: str) -> bool:
        words = _WORDS.findall(text.lower())
        k = min(self.shingle, max(len(words), 1))
        grams = {" ".join(words[i:i + k]).encode() for i in range(max(len(words) - k + 1, 1))}
        m = self._minhash(num_perm=self.num_perm, seed=self.seed)
        m.update_batch(list(grams))
        if self._lsh.query(m):
            return False
        self._lsh.insert(str(self._count), m)
        self._count += 1
        return True
