"""Complex clinical case diagnosis: a ranked differential for a case description, scored top-1 and top-k.

Our own JSONL format (there is no public release of the paper's cases): one case a line with id, case (the
description), diagnosis (the final diagnosis) and optional synonyms (other accepted names). The model
lists its most likely diagnoses, one a line; a listed diagnosis counts as a match by the configured
matcher: `exact` (normalized text equal to the diagnosis), `synonym` (equal to the diagnosis or a
synonym, the default) or `fuzzy` (difflib similarity ratio >= threshold against any accepted name).
`make_task(matcher=..., k=..., threshold=...)` builds a variant; the env settings MEDLLAMA_DIAGNOSIS_MATCHER,
MEDLLAMA_DIAGNOSIS_TOP_K and MEDLLAMA_DIAGNOSIS_THRESHOLD set the registered task's defaults.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import partial
from pathlib import Path

from medllama.evaluate.metrics import answer_lines
from medllama.evaluate.tasks.base import Example, Task, TaskError, read_jsonl

MATCHERS = ("exact", "synonym", "fuzzy")


@dataclass(frozen=True)
class Matcher:
    kind: str = "synonym"
    threshold: float = 0.85  # fuzzy only

    def __post_init__(self):
        if self.kind not in MATCHERS:
            raise TaskError(f"diagnosis matcher {self.kind!r}: expected one of {list(MATCHERS)}")
        if not 0.0 < self.threshold <= 1.0:
            raise TaskError(f"diagnosis matcher threshold {self.threshold}: expected a ratio in (0, 1]")

    def __call__(self, candidate: str, accepted: Sequence[str]) -> bool:
        """Whether `candidate` names the diagnosis; `accepted[0]` is the diagnosis, the rest its synonyms."""
        cand = normalize(candidate)
        names = [normalize(a) for a in (accepted[:1] if self.kind == "exact" else accepted)]
        if self.kind == "fuzzy":
            return any(SequenceMatcher(None, cand, n).ratio() >= self.threshold for n in names)
        return cand in names


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def load(path: Path, limit: int | None = None) -> list[Example]:
    return read_jsonl(path, "clinical-cases", "JSONL lines with id, case, diagnosis and optional synonyms",
                      _example, limit=limit)


def _example(r: dict, line: int) -> Example:
    accepted = [r["diagnosis"], *r.get("synonyms", [])]
    return Example(id=str(r.get("id", line)), question="", context=r["case"], reference="\n".join(accepted))


def render_input(ex: Example) -> str:
    return f"Case: {ex.context}"


def parse(text: str) -> str:
    """'1. Sarcoidosis\\n2) Tuberculosis' → the diagnoses in rank order, one a line, numbering removed."""
    items = [re.sub(r"^\s*(?:[-*•]|\d+[.)]|#\d+)\s*", "", line).strip() for line in text.split("\n")]
    return "\n".join(i.rstrip(".") for i in items if i)


def topk_metrics(references: Sequence[str], predictions: Sequence[str | None], labels: Sequence[str] = (),
                 matcher: Matcher | None = None, k: int = 5) -> dict[str, float]:
    """Share of cases whose first listed diagnosis matches (top1_accuracy), and whose first k do."""
    matcher = matcher or Matcher()
    if not references:
        return {"top1_accuracy": 0.0, f"top{k}_accuracy": 0.0}
    hits = [0, 0]
    for ref, pred in zip(references, predictions, strict=True):
        accepted, ranked = answer_lines(ref), answer_lines(pred)
        ranks = [i for i, cand in enumerate(ranked[:k]) if matcher(cand, accepted)]
        hits[0] += bool(ranks) and ranks[0] == 0
        hits[1] += bool(ranks)
    return {"top1_accuracy": hits[0] / len(references), f"top{k}_accuracy": hits[1] / len(references)}


def make_task(matcher: str = "synonym", k: int = 5, threshold: float = 0.85) -> Task:
    if k < 1:
        raise TaskError(f"clinical-cases top-k {k}: expected k >= 1")
    return Task(
        name="clinical-cases",
        release_file="cases.jsonl",
        labels=(),
        load=load,
        instruction=(f"Read the clinical case and give the {k} most likely diagnoses, most likely first, "
                     f"one per line."),
        render_input=render_input,
        parse=parse,
        metrics=partial(topk_metrics, matcher=Matcher(matcher, threshold), k=k),
        max_new_tokens=24 * k,
        answer_form="texts",
        source="no public release of the paper's cases: write cases.jsonl (id, case, diagnosis, synonyms)",
        split="every case of cases.jsonl",
    )


TASK = make_task(os.environ.get("MEDLLAMA_DIAGNOSIS_MATCHER", "synonym"),
                 int(os.environ.get("MEDLLAMA_DIAGNOSIS_TOP_K", "5")),
                 float(os.environ.get("MEDLLAMA_DIAGNOSIS_THRESHOLD", "0.85")))
