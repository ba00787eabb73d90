"""Choose which documents (and how many copies) enter continued pre-training, to hit the domain ratio.

Sizes are measured in tokens, each document counting its tokens plus the EOS that follows it, so the
ratio is the ratio of what the model trains on. Every choice is drawn from a generator seeded by the
recipe seed and the domain name: the same recipe and corpus give the same mix.

- token_budget null: the *limiting* domain (least tokens per unit of ratio) is used whole, the others
  are down-sampled to ratio × that, with no document repeated.
- token_budget set: each domain gets budget × its share, down-sampled, or repeated in whole shuffled
  passes plus a partial one when it has too few tokens.
Domains in the ratio that have no data after cleaning are left out, and the ratio is renormalised
over the rest (reported in the stats as `domains_without_data`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from medllama.data.sources import DataError


@dataclass
class MixPlan:
    target_ratio: dict[str, float]  # normalised over the domains that have data
    target_tokens: dict[str, int]
    selected: dict[str, np.ndarray]  # domain → document indices (may repeat), in draw order
    selected_tokens: dict[str, int]
    domains_without_data: list[str] = field(default_factory=list)

    @property
    def achieved_ratio(self) -> dict[str, float]:
        total = sum(self.selected_tokens.values()) or 1
        return {d: n / total for d, n in self.selected_tokens.items()}

    def order(self, seed: int) -> list[tuple[str, int]]:
        """Every selected document as (domain, index), domains interleaved in a seeded random order."""
        return list(self.iter_order(seed))

    def iter_order(self, seed: int) -> Iterator[tuple[str, int]]:
        """`order(seed)` as a stream: 12 bytes per document in numpy arrays, not a Python list of pairs."""
        names = sorted(self.selected)
        dom = np.concatenate([np.full(len(self.selected[d]), k, dtype=np.int32) for k, d in enumerate(names)] or [np.zeros(0, np.int32)])
        idx = np.concatenate([np.asarray(self.selected[d], dtype=np.int64) for d in names] or [np.zeros(0, np.int64)])
        perm = np.random.default_rng(seed).permutation(len(idx))
        for chunk in range(0, len(perm), 1 << 16):
            p = perm[chunk:chunk + (1 << 16)]
            yield from zip((names[k] for k in dom[p].tolist()), idx[p].tolist())

    @property
    def documents(self) -> int:
        return sum(len(v) for v in self.selected.values())


def domain_rng(seed: int, domain: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(domain.encode())])


def plan_mix(lengths: dict[str, np.ndarray], ratio: dict[str, float], token_budget: int | None, seed: int) -> MixPlan:
    """Pick documents per domain; `lengths[d]` holds each document's size in tokens (EOS included)."""
    available = {d: int(lengths[d].sum()) if d in lengths else 0 for d in ratio}
    live = {d: w for d, w in ratio.items() if w > 0 and available[d] > 0}
    missing = sorted(d for d, w in ratio.items() if w > 0 and available[d] == 0)
    if not live:
        raise DataError("no domain of data.ratio has any document left after cleaning; check the sources and min_chars")
    total_w = sum(live.values())
    share = {d: w / total_w for d, w in live.items()}
    if token_budget is None:
        unit = min(available[d] / share[d] for d in live)  # total tokens the limiting domain allows
        targets = {d: available[d] if available[d] <= unit * share[d] else int(round(unit * share[d])) for d in live}
    else:
        targets = {d: int(round(token_budget * share[d])) for d in live}
    selected, got = {}, {}
    for d in sorted(lengths):
        if d not in live:
            selected[d], got[d] = np.zeros(0, dtype=np.int64), 0
            continue
        selected[d] = _draw(lengths[d], targets[d], domain_rng(seed, d))
        got[d] = int(lengths[d][selected[d]].sum())
    return MixPlan(share, targets, selected, got, missing)


def _draw(lengths: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffled passes over the documents until `target` tokens; the last document is taken only if it
    brings the total closer to the target."""
    total = int(lengths.sum())
    full, rest = divmod(target, total) if total else (0, 0)
    picks = [rng.permutation(len(lengths)) for _ in range(full)]
    if rest:
        perm = rng.permutation(len(lengths))
        csum = np.cumsum(lengths[perm])
        k = int(np.searchsorted(csum, rest, side="right"))  # docs that fit entirely
        if k < len(perm):
            under = rest - (csum[k - 1] if k else 0)
            over = csum[k] - rest
            if over < under:
                k += 1
        picks.append(perm[:k])
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
