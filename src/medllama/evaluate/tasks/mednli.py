"""MedNLI: natural language inference over MIMIC-III clinical notes, from `mli_test_v1.jsonl`.

Credentialed data: never bundled. Each line holds sentence1 (premise), sentence2 (hypothesis),
gold_label (entailment / contradiction / neutral) and pairID.
"""

from __future__ import annotations

from pathlib import Path

from medllama.evaluate.tasks.base import Example, Task, parse_nli, read_jsonl, render_nli

LABELS = ("entailment", "contradiction", "neutral")
ACCESS = ("MedNLI is credentialed data from PhysioNet (https://physionet.org/content/mednli/): it needs a "
          "credentialed PhysioNet account, human-subjects training and the signed data use agreement. Put "
          "mli_test_v1.jsonl on your storage and point the recipe's eval.tasks[].data (name: mednli) "
          "or `medllama evaluate --data` at it")


def load(path: Path, limit: int | None = None) -> list[Example]:
    return read_jsonl(path, "mednli", "JSONL lines with sentence1, sentence2, gold_label (mli_*_v1.jsonl)",
                      _example, LABELS, limit)


def _example(r: dict, line: int) -> Example:
    return Example(id=str(r.get("pairID", line)), question=r["sentence2"], context=r["sentence1"],
                   reference=r["gold_label"].strip().lower())


def parse(text: str) -> str | None:
    return parse_nli(text, LABELS)


TASK = Task(
    name="mednli",
    release_file="mli_test_v1.jsonl",
    labels=LABELS,
    load=load,
    instruction=("Decide whether the hypothesis follows from the clinical premise. "
                 "Answer with entailment, contradiction, or neutral."),
    render_input=render_nli,
    parse=parse,
    access=ACCESS,
    split="test: mli_test_v1.jsonl (1,422 pairs)",
)
