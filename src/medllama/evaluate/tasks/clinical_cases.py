"""Complex clinical case diagnosis: a ranked differential for a case description, scored top-1 and top-k.

Our own JSONL format (there is no public release of the paper's cases): one case a line with id, case (the
description), diagnosis (the final diagnosis) and optional synonyms (other accepted names). The model
lists its most likely diagnoses, one a line; a listed diagnosis counts as a match by the configured
matcher: `exact` (normalized text equal to the diagnosis), `synonym` (equal to the diagnosis or a
synonym, the default) or `fuzzy` (difflib similarity ratio >= threshold against any accepted name).
Scored top-1, top-5 and top-10. `make_task(matcher=..., ks=..., threshold=...)` builds a variant; the env settings
MEDLLAMA_DIAGNOSIS_MATCHER, MEDLLAMA_DIAGNOSIS_TOP_K (e.g. "1,5,10") and MEDLLAMA_DIAGNOSIS_THRESHOLD set the
registered task's defaults. A judge model instead of a matcher: `medllama.clinical.judge`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import partial
from pathlib import Path

from medllama.evaluate.metrics import answer_lines
from medllama.evaluate.tasks.base import Example, Task, TaskError, read_jsonl

MATCHERS = ("exact", "synonym", "fuzzy")
KS = (1, 5, 10)  # top-k accuracies reported (the paper reports top-k diagnosis accuracy; its k values: not found)


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


def first_match(ranked: Sequence[str], accepted: Sequence[str], matcher: Callable[[str, Sequence[str]], bool],
                limit: int) -> int | None:
    """The 1-based rank of the first of the top `limit` diagnoses that names the accepted one, None if none."""
    return next((i for i, cand in enumerate(ranked[:limit], 1) if matcher(cand, accepted)), None)


def topk_from_ranks(ranks: Sequence[int | None], ks: Sequence[int] = KS) -> dict[str, float]:
    """top<k>_accuracy for each k: the share of cases whose first match is at rank k or better."""
    return {f"top{k}_accuracy": sum(r is not None and r <= k for r in ranks) / len(ranks) if ranks else 0.0
            for k in ks}


def topk_metrics(references: Sequence[str], predictions: Sequence[str | None], labels: Sequence[str] = (),
                 matcher: Matcher | None = None, ks: Sequence[int] = KS) -> dict[str, float]:
    """Share of cases whose first k listed diagnoses name the gold one, for each k in `ks`."""
    matcher = matcher or Matcher()
    ranks = [first_match(answer_lines(pred), answer_lines(ref), matcher, max(ks))
             for ref, pred in zip(references, predictions, strict=True)]
    return topk_from_ranks(ranks, ks)


def make_task(matcher: str = "synonym", ks: Sequence[int] = KS, threshold: float = 0.85) -> Task:
    ks = tuple(sorted(set(ks)))
    if not ks or ks[0] < 1:
        raise TaskError(f"clinical-cases top-k {list(ks)}: expected values k >= 1")
    return Task(
        name="clinical-cases",
        release_file="cases.jsonl",
        labels=(),
        load=load,
        instruction=(f"Read the clinical case and give the {ks[-1]} most likely diagnoses, most likely first, "
                     f"one per line."),
        render_input=render_input,
        parse=parse,
        metrics=partial(topk_metrics, matcher=Matcher(matcher, threshold), ks=ks),
        max_new_tokens=24 * ks[-1],
        answer_form="texts",
        source="no public release of the paper's cases: write cases.jsonl (id, case, diagnosis, synonyms)",
        split="every case of cases.jsonl",
    )


def _ks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(","))
    except ValueError:
        raise TaskError(f"MEDLLAMA_DIAGNOSIS_TOP_K={text!r}: expected comma-separated integers, e.g. 1,5,10") from None


TASK = make_task(os.environ.get("MEDLLAMA_DIAGNOSIS_MATCHER", "synonym"),
                 _ks(os.environ.get("MEDLLAMA_DIAGNOSIS_TOP_K", "1,5,10")),
                 float(os.environ.get("MEDLLAMA_DIAGNOSIS_THRESHOLD", "0.85")))
