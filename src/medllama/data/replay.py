"""The merge's replay of prepare shards in global file order (file g of the sources comes before file
g + 1 whatever shard read it), so every decision that depends on order — which copy of a duplicate is
kept, the order documents enter the tokenizer and the mix — is the single run's.

`runs`: (global file number, shard number, domain, documents the shard spooled from that file), sorted.
`kept[(shard, domain)]`: one bool per spooled document, set by `dedup`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medllama.data.dedup import DIGEST_SIZE, ExactDedup, NearDedup
from medllama.data.shard import ShardOptions
from medllama.data.stats import DomainStats


def dedup(runs, shard_dirs, infos, options: ShardOptions, domains: dict[str, DomainStats]) -> dict:
    """Exact then near dedup in global file order (first occurrence wins); kept[(shard, domain)]: bool per doc."""
    exact = ExactDedup()
    near = NearDedup(threshold=options.near_dup_threshold) if options.near_dup_threshold else None
    kept, pos, digests, sigs = {}, Counter(), {}, {}
    for k, info in enumerate(infos):
        for d in info["domains"]:
            path = shard_dirs[k] / f"{d}.digest"
            raw = (np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)).reshape(-1, DIGEST_SIZE)
            digests[k, d] = raw
            kept[k, d] = np.zeros(len(raw), dtype=bool)
            if near is not None:
                sigs[k, d] = np.memmap(shard_dirs[k] / f"{d}.minhash", dtype=np.uint64, mode="r").reshape(-1, near.num_perm) \
                    if len(raw) else None
    if near is not None:  # only documents sharing an LSH band with another need the index
        live = [key for key, s in sigs.items() if s is not None]
        collide = dict(zip(live, near.colliding([sigs[key] for key in live])))
    for _, k, d, n in runs:
        st, keep, dig = domains[d], kept[k, d], digests[k, d]
        for j in range(pos[k, d], pos[k, d] + n):
            if not exact.is_new_digest(dig[j].tobytes()):
                st.drops["duplicate"] += 1
            elif near is not None and collide[k, d][j] and not near.is_new_signature(np.array(sigs[k, d][j])):
                st.drops["near_duplicate"] += 1
            else:
                keep[j] = True
                st.docs_kept += 1
        pos[k, d] += n
    return kept


def kept_texts(runs, shard_dirs, kept, domain: str) -> Iterator[str]:
    """The kept cleaned texts of `domain`, in global file order."""
    handles = {}
    try:
        for _, k, d, n in runs:
            if d != domain:
                continue
            if k not in handles:
                handles[k] = (open(shard_dirs[k] / f"{d}.jsonl", encoding="utf-8"), [0])
            f, pos = handles[k]
            keep = kept[k, d]
            for _ in range(n):
                line = f.readline()
                if keep[pos[0]]:
                    yield json.loads(line)
                pos[0] += 1
    finally:
        for f, _ in handles.values():
            f.close()


def gather_tokens(runs, shard_dirs, kept, domain: str, dest: Path, dtype) -> np.ndarray:
    """Concatenate the kept documents' ids (tokenized by the shards) in global file order; their sizes."""
    sizes_out, cursor = [], Counter()
    with open(dest, "wb") as f:
        for _, k, d, n in runs:
            if d != domain or n == 0:
                continue
            sd = shard_dirs[k]
            sizes = np.fromfile(sd / f"{d}.sizes", dtype=np.int64)
            tokens = np.memmap(sd / f"{d}.tok", dtype=dtype, mode="r")
            starts = np.concatenate([[0], np.cumsum(sizes - 1)])
            a, b = cursor[k], cursor[k] + n
            keep = kept[k, d][a:b]
            span = tokens[starts[a]:starts[b]]
            (span if keep.all() else span[np.repeat(keep, sizes[a:b] - 1)]).tofile(f)
            sizes_out.append(sizes[a:b][keep])
            cursor[k] = b
    return np.concatenate(sizes_out) if sizes_out else np.zeros(0, dtype=np.int64)


def kept_sources(runs, kept, domain: str, file_source: list[int]) -> np.ndarray:
    """The source number of each kept document of `domain`, in the order `gather_tokens` and
    `kept_texts` give them; `file_source[g]`: the source of global file g."""
    out, cursor = [], Counter()
    for g, k, d, n in runs:
        if d != domain:
            continue
        out.append(np.full(int(kept[k, d][cursor[k]:cursor[k] + n].sum()), file_source[g], dtype=np.int32))
        cursor[k] += n
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)
