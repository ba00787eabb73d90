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

Source weights (`data.sources[].weight`, default 1) up- or down-sample a source within its domain: a
source of weight w counts as w times its tokens, both in what its domain has to offer and in the share
of the domain's tokens it contributes (weight 2: its documents are drawn twice as often as those of a
weight-1 source of the same domain; 0.5: half as often). A domain whose sources all have one weight
is drawn as one pool; otherwise each source is drawn on its own, with its own seeded generator.
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


def plan_mix(lengths: dict[str, np.ndarray], ratio: dict[str, float], token_budget: int | None, seed: int,
             origin: dict[str, np.ndarray] | None = None, weights: list[float] | None = None) -> MixPlan:
    """Pick documents per domain; `lengths[d]` holds each document's size in tokens (EOS included),
    `origin[d]` each document's source number and `weights[s]` that source's weight (both optional:
    without them every source weighs 1)."""
    groups = {d: _weight_groups(lengths[d], (origin or {}).get(d), weights) for d in lengths}
    available = {d: sum(w * int(lengths[d][i].sum()) for w, _, i in groups[d]) if d in lengths else 0 for d in ratio}
    live = {d: w for d, w in ratio.items() if w > 0 and available[d] > 0}
    missing = sorted(d for d, w in ratio.items() if w > 0 and available[d] == 0)
    if not live:
        raise DataError("no domain of data.ratio has any document left after cleaning; check the sources and min_chars")
    total_w = sum(live.values())
    share = {d: w / total_w for d, w in live.items()}
    if token_budget is None:
        unit = min(available[d] / share[d] for d in live)  # total tokens the limiting domain allows
        targets = {d: round(available[d]) if available[d] <= unit * share[d] else round(unit * share[d]) for d in live}
    else:
        targets = {d: round(token_budget * share[d]) for d in live}
    selected, got = {}, {}
    for d in sorted(lengths):
        if d not in live:
            selected[d], got[d] = np.zeros(0, dtype=np.int64), 0
            continue
        if len(groups[d]) == 1:  # one weight for the whole domain: one pool
            selected[d] = _draw(lengths[d], targets[d], domain_rng(seed, d))
        else:
            picks = []
            for w, s, idx in groups[d]:  # each source its share of the domain's (weighted) tokens
                want = round(targets[d] * w * int(lengths[d][idx].sum()) / available[d])
                picks.append(idx[_draw(lengths[d][idx], want, domain_rng(seed, f"{d}/{s}"))])
            selected[d] = np.concatenate(picks)
        got[d] = int(lengths[d][selected[d]].sum())
    return MixPlan(share, targets, selected, got, missing)


def _weight_groups(lengths: np.ndarray, origin: np.ndarray | None, weights: list[float] | None) -> list[tuple[float, int, np.ndarray]]:
    """(weight, source, document indices) per source of a domain, or one group of all documents when
    every source of the domain has the same weight (the weights then cancel out)."""
    every = np.arange(len(lengths))
    if origin is None or weights is None or len(origin) == 0:
        return [(1.0, -1, every)]
    sources = np.unique(origin).tolist()
    if len({weights[s] for s in sources}) == 1:
        return [(float(weights[sources[0]]), -1, every)]
    return [(float(weights[s]), s, np.flatnonzero(origin == s)) for s in sources]


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
