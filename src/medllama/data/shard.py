"""The read side of prepare, one shard at a time: read → clean → min_chars → decontaminate → hash →
(MinHash) → (tokenize), the part whose cost grows with the corpus and parallelises.

Files are the unit of work: file number g of the recipe's sources (in source order, then file order)
belongs to shard g mod num_shards, so shards read disjoint files and together every file once. A
corpus at scale is many files (PubMed baseline, MIMIC exports, web dumps are), so shards stay even.
A shard writes into its own directory, per domain, one record per document that survived cleaning
and decontamination, in read order:
  {domain}.digest   16-byte content hash (exact dedup)
  {domain}.minhash  uint64[num_perm] MinHash signature, when near-duplicate removal is on
  {domain}.tok      token ids, concatenated, and {domain}.sizes int64 (ids + 1 for the EOS), when the
                    recipe names its tokenizer; else {domain}.jsonl, the cleaned texts (the tokenizer
                    is trained on the deduplicated corpus, which only the merge sees)
  flagged.jsonl     documents sharing an n-gram with an evaluation set (dropped or kept: see the mode)
  shard.json        which files (global number, domain, documents kept), counts, drops by reason, and the
                    PHI scan's counts over the kept documents of the scanned (clinical) domains
The order-dependent steps (dedup, tokenizer training, mixing, packing) are the merge's
(`prepare.merge_shards`), which replays the shards in global file order: any sharding gives the
single run's result.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from medllama.data.clean import clean_text, split_words
from medllama.data.decontam import Decontaminator, Mode
from medllama.data.dedup import NearDedup, digest
from medllama.data.phi import PhiCounts, shared_scanner
from medllama.data.sources import ResolvedSource, count_skipped, iter_file
from medllama.data.tokenizer import bos_prefix, encode_ids
from medllama.recipe import Recipe
from medllama.storage import write_json_atomic

SHARD_JSON = "shard.json"
BATCH = 4096  # documents per tokenizer call: large batches keep every core of the Rust tokenizer busy


@dataclass(frozen=True)
class ShardOptions:
    """What a shard needs besides the recipe; the merge checks every shard used the same."""

    near_dup_threshold: float | None = None
    decontaminate: Mode = "drop"
    ngram: int = 13

    def fingerprint(self, recipe: Recipe) -> str:
        what = {"data": recipe.data.model_dump(mode="json"), "tokenizer": recipe.model.tokenizer,
                "eval": [t.model_dump(mode="json") for t in recipe.eval.tasks], "options": self.__dict__}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def owned_files(resolved: list[ResolvedSource], shard_index: int, num_shards: int) -> list[tuple[int, int, str]]:
    """(global file number, source number, URI) of the files shard `shard_index` of `num_shards` reads."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} is not in [0, {num_shards})")
    every = [(s, uri) for s, rs in enumerate(resolved) for uri in rs.files]
    return [(g, s, uri) for g, (s, uri) in enumerate(every) if g % num_shards == shard_index]


class _DomainSpool:
    """The per-document records of one domain in one shard."""

    def __init__(self, dest: Path, domain: str, tok, near: bool, dtype) -> None:
        self.tok, self.dtype, self.bos = tok, dtype, (bos_prefix(tok) if tok is not None else [])
        self.digests = open(dest / f"{domain}.digest", "wb")
        self.minhash = open(dest / f"{domain}.minhash", "wb") if near else None
        if tok is not None:
            self.tokens, self.sizes_f = open(dest / f"{domain}.tok", "wb"), open(dest / f"{domain}.sizes", "wb")
        else:
            self.texts = open(dest / f"{domain}.jsonl", "w", encoding="utf-8")
        self.batch: list[str] = []

    def add(self, text: str, signature: np.ndarray | None) -> None:
        self.digests.write(digest(text))
        if self.minhash is not None:
            self.minhash.write(np.asarray(signature, dtype=np.uint64).tobytes())
        if self.tok is None:
            self.texts.write(json.dumps(text, ensure_ascii=False) + "\n")
            return
        self.batch.append(text)
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.tok is None or not self.batch:
            return
        flat, sizes = encode_ids(self.tok, self.batch, self.bos, self.dtype)
        flat.tofile(self.tokens)
        (sizes + 1).tofile(self.sizes_f)  # + the EOS each document will be followed by
        self.batch.clear()

    def close(self) -> None:
        self.flush()
        for f in (self.digests, self.minhash, getattr(self, "tokens", None), getattr(self, "sizes_f", None),
                  getattr(self, "texts", None)):
            if f is not None:
                f.close()


def read_shard(recipe: Recipe, resolved: list[ResolvedSource], shard_index: int, num_shards: int, dest: Path,
               options: ShardOptions, decon: Decontaminator | None, tok=None, dtype=None, quiet=None) -> dict:
    """Read shard `shard_index`'s files into `dest` (see the module doc); returns what shard.json holds."""
    dest.mkdir(parents=True, exist_ok=True)
    spec = recipe.data
    domains = sorted({rs.source.domain for rs in resolved})
    drops = {d: Counter() for d in domains}
    read = Counter()
    near = NearDedup(threshold=options.near_dup_threshold) if options.near_dup_threshold else None
    spools = {d: _DomainSpool(dest, d, tok, near is not None, dtype) for d in domains}
    files = []
    check = decon if decon and options.decontaminate != "off" else None
    phi, scanned = PhiCounts(), set(spec.phi.domains)
    with open(dest / "flagged.jsonl", "w", encoding="utf-8") as flagged:
        if shard_index == 0:
            for rs in resolved:
                count_skipped(rs, drops[rs.source.domain])
        for g, s, uri in tqdm(owned_files(resolved, shard_index, num_shards), desc=f"shard {shard_index}",
                              unit="file", disable=quiet):
            rs = resolved[s]
            d = rs.source.domain
            st, spool, kept = drops[d], spools[d], 0
            for raw in iter_file(rs, uri, st):
                read[d] += 1
                text = clean_text(raw)
                if len(text) < spec.min_chars:
                    st["too_short"] += 1
                    continue
                # split once when both the decontamination and the MinHash need the words (~15 us a document)
                words = split_words(text) if check is not None and near is not None else None
                if check is not None:
                    hit = check.matches(text, words)
                    if hit:
                        names = sorted(check.names[k] for k in hit)
                        flagged.write(json.dumps({"file": uri, "domain": d, "sets": names, "head": text[:200]}) + "\n")
                        if options.decontaminate == "drop":
                            st["contaminated"] += 1
                            continue
                spool.add(text, near.signature(text, words) if near is not None else None)
                kept += 1
                if d in scanned:
                    phi.add(shared_scanner().count([text]))
            files.append([g, d, kept])
    for sp in spools.values():
        sp.close()
    info = {
        "shard_index": shard_index,
        "num_shards": num_shards,
        "fingerprint": options.fingerprint(recipe),
        "tokenized": tok is not None,
        "bos": bos_prefix(tok) if tok is not None else [],
        "vocab_size": len(tok) if tok is not None else 0,
        "files": files,
        "domains": {d: {"docs_read": read[d], "drops": dict(sorted(drops[d].items()))} for d in domains},
        "decontamination": check.report() if check is not None else {},
        "phi": phi.to_dict(),
    }
    write_json_atomic(dest / SHARD_JSON, info, indent=1)  # last and atomic: a shard without it did not finish
    return info


def load_shard(directory: Path) -> dict:
    path = Path(directory) / SHARD_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no {SHARD_JSON}; the prepare shard did not finish, run it again")
    return json.loads(path.read_text())
