"""BioNLI: does a mechanistic premise from an abstract support its conclusion? From the release's `test.csv`.

Each row holds the premise (`supp_set`, the abstract's supporting sentences), the hypothesis
(`conclusion`: the original conclusion, or one perturbed to contradict it) and the label (`label_cat`:
pos/neg, or entailment/contradiction, or 1/0). Column names `premise`, `hypothesis`, `label` (the HF
copy) are read as well. Binary task scored by macro-F1 (the paper reports macro-F1 only).
"""

from __future__ import annotations

import csv
from pathlib import Path

from medllama.evaluate.metrics import macro_f1_only
from medllama.evaluate.tasks.base import Example, Task, TaskError, parse_nli, render_nli

LABELS = ("entailment", "contradiction")
_LABEL = {"pos": "entailment", "positive": "entailment", "1": "entailment", "entailment": "entailment",
          "neg": "contradiction", "negative": "contradiction", "0": "contradiction",
          "contradiction": "contradiction"}
_COLUMNS = {"premise": ("supp_set", "premise"), "hypothesis": ("conclusion", "hypothesis"),
            "label": ("label_cat", "label")}


def _column(row: dict, role: str, n: int, path: Path) -> str:
    for name in _COLUMNS[role]:
        if row.get(name) not in (None, ""):
            return row[name]
    raise TaskError(f"bionli {path}:{n}: no {' or '.join(_COLUMNS[role])} column; expected the BioNLI release CSV "
                    f"(supp_set, conclusion, label_cat)")


def load(path: Path, limit: int | None = None) -> list[Example]:
    csv.field_size_limit(1 << 24)  # premises are whole abstracts
    examples = []
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            if limit and len(examples) >= limit:
                break
            raw = _column(row, "label", n, path).strip().lower()
            if raw not in _LABEL:
                raise TaskError(f"bionli {path}:{n}: label {raw!r}; expected pos/neg or entailment/contradiction")
            examples.append(Example(id=row.get("id") or row.get("pmid") or str(n), context=_column(row, "premise", n, path),
                                    question=_column(row, "hypothesis", n, path), reference=_LABEL[raw]))
    return examples


def parse(text: str) -> str | None:
    return parse_nli(text, LABELS)


TASK = Task(
    name="bionli",
    release_file="test.csv",
    labels=LABELS,
    load=load,
    instruction=("Decide whether the biomedical premise supports the hypothesis or contradicts it. "
                 "Answer with entailment or contradiction."),
    render_input=render_nli,
    parse=parse,
    metrics=macro_f1_only,
    source="the BioNLI release (Bastan et al. 2022): its test.csv",
    split="test: the release's test.csv",
)
