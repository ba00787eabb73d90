"""Keep the evaluation sets out of training: drop (or flag) documents that share a long n-gram with any
evaluation example, counted per evaluation set.

Tokens here are *words*, not tokenizer ids: the text is cleaned like a corpus document (`clean_text`),
split at whitespace and ASCII punctuation with ASCII letters lower-cased (`clean.split_words`: one
C-speed encode + translate + split), so the check does not depend on the tokenizer and matches across
punctuation, case and spacing differences. The default n of 13 words follows GPT-3's decontamination.
An example's text is every string field of its record in the release file (question, context,
options, answers): all of it is test data, read by the evaluation task's own loader
(`medllama.evaluate.tasks.example_texts`, torch-free), so an example is what the benchmark scores: a DDI
drug pair of an XML sentence, a CSV row, a PubMedQA test question of the JSON object, a JSONL line, a HoC
abstract of the release tree. Examples with fewer than n words cannot match and are counted as
`examples_too_short`. The same index checks the instruction-tuning examples (prepare's SFT rows).

Matching is vectorised: every word gets an id (words never seen in an evaluation set cannot be in a
matching n-gram and get -1), each n-gram window a 64-bit polynomial hash computed with numpy, and
a hash hit is confirmed on the words themselves, so a hash collision never drops a document.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import repeat
from typing import Literal

import numpy as np

from medllama.data.clean import clean_text, split_words

log = logging.getLogger(__name__)

DEFAULT_NGRAM = 13  # words; GPT-3 (Brown et al. 2020, appendix C) used 13-grams
Mode = Literal["drop", "flag", "off"]
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant: the hash base


def words(text: str) -> list[bytes]:
    """The words of an evaluation text, as `matches` sees a corpus document's."""
    return split_words(clean_text(text))


@dataclass
class EvalSetStats:
    examples: int = 0
    examples_too_short: int = 0  # fewer than n words: cannot be matched
    docs_matched: int = 0  # training documents sharing an n-gram with this set
    examples_matched: int = 0  # distinct examples of this set found in the corpus (set by merge_reports)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Decontaminator:
    """An index of the n-grams of named evaluation sets; `matches(text)` says which sets a text hits."""

    n: int = DEFAULT_NGRAM
    names: list[str] = field(default_factory=list)
    _vocab: dict[bytes, int] = field(default_factory=dict)
    _hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # sorted, unique
    _owners: dict[tuple[int, ...], list[tuple[int, int]]] = field(default_factory=dict)  # n-gram → (set, example)
    stats: dict[str, EvalSetStats] = field(default_factory=dict)
    _hit_examples: set[tuple[int, int]] = field(default_factory=set)

    def add_set(self, name: str, texts: list[str]) -> None:
        """Index the examples of one evaluation set (each text: one example, all its shown fields)."""
        k = len(self.names)
        self.names.append(name)
        st = self.stats[name] = EvalSetStats(examples=len(texts))
        new = []
        for e, text in enumerate(texts):
            ws = words(text)
            if len(ws) < self.n:
                st.examples_too_short += 1
                continue
            ids = [self._vocab.setdefault(w, len(self._vocab)) for w in ws]
            for i in range(len(ids) - self.n + 1):
                self._owners.setdefault(tuple(ids[i:i + self.n]), []).append((k, e))
            new.append(self._window_hashes(np.asarray(ids, dtype=np.int64)))
        if new:
            self._hashes = np.unique(np.concatenate([self._hashes, *new]))

    def __bool__(self) -> bool:
        return bool(self.names)

    def _window_hashes(self, ids: np.ndarray) -> np.ndarray:
        """Polynomial hash of every window of n ids (wrapping uint64 arithmetic)."""
        x = (ids + 1).astype(np.uint64)  # +1: -1 (unknown word) becomes 0, never a real word's id
        m = len(x) - self.n + 1
        h = np.zeros(max(m, 0), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(self.n):
                h = h * _MULT + x[j:j + m]
        return h

    def matches(self, text: str, words: list[bytes] | None = None) -> set[int]:
        """Indices of the evaluation sets that share an n-gram with `text` (empty: clean); `words`:
        `split_words(text)` when the caller already has it (the shard shares it with the MinHash)."""
        ws = split_words(text) if words is None else words  # the corpus text is already cleaned
        if len(ws) < self.n:
            return set()
        ids = np.fromiter(map(self._vocab.get, ws, repeat(-1)), dtype=np.int64, count=len(ws))
        unknown = np.cumsum(ids < 0)
        if unknown[-1] > len(ids) - self.n:
            return set()
        # a window can match only when all its words occur in some evaluation set: most windows don't
        clean_window = (unknown[self.n - 1:] - np.concatenate([[0], unknown[:-self.n]])) == 0
        if not clean_window.any():
            return set()
        h = self._window_hashes(ids)
        pos = np.searchsorted(self._hashes, h)
        pos[pos == len(self._hashes)] = 0
        hits = np.flatnonzero((self._hashes[pos] == h) & clean_window) if len(self._hashes) else ()
        found: set[int] = set()
        for i in hits:
            for k, e in self._owners.get(tuple(int(v) for v in ids[i:i + self.n]), ()):  # confirm: no false hit
                found.add(k)
                self._hit_examples.add((k, e))
        for k in found:
            self.stats[self.names[k]].docs_matched += 1
        return found

    def report(self) -> dict:
        """Per-set counts plus the matched example indices (`merge_reports` turns them into a count)."""
        rep = {name: st.to_dict() for name, st in self.stats.items()}
        for k, name in enumerate(self.names):
            rep[name]["matched_ids"] = sorted(e for kk, e in self._hit_examples if kk == k)
        return rep


def from_eval_tasks(tasks, n: int = DEFAULT_NGRAM) -> Decontaminator:
    """The index of the recipe's evaluation tasks (`recipe.eval.tasks`): every example of each task's scored
    split (a task's `limit` is ignored: the whole test set stays out of training)."""
    from medllama.evaluate.tasks import example_texts  # torch-free: the loaders only

    dec = Decontaminator(n=n)
    for spec in tasks:
        texts = example_texts(spec)
        dec.add_set(spec.name, texts)
        log.info("decontamination: %s, %d examples", spec.name, len(texts))
    return dec


def merge_reports(reports: list[dict]) -> dict:
    """Per-set counts of several shards' `report()`s: documents summed, matched examples as a union."""
    out: dict[str, dict] = {}
    for rep in reports:
        for name, st in rep.items():
            cur = out.setdefault(name, {"examples": st["examples"], "examples_too_short": st["examples_too_short"],
                                        "docs_matched": 0, "matched_ids": set()})
            cur["docs_matched"] += st["docs_matched"]
            cur["matched_ids"] |= set(st.get("matched_ids", ()))
    for st in out.values():
        st["examples_matched"] = len(st.pop("matched_ids"))
        st["share"] = round(st["examples_matched"] / st["examples"], 4) if st["examples"] else 0.0
    return out
