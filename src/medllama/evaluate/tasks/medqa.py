"""MedQA (USMLE, 4 options): from the release file `US/4_options/phrases_no_exclude_test.jsonl`.

Each line holds question, answer (the text), options {"A".."D"}, meta_info (step1 / step2&3),
answer_idx (the letter) and metamap_phrases (not used: the model sees the question as written).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from medllama.evaluate.tasks.base import Example, Task, parse_letter, read_jsonl, render_multiple_choice

LABELS = ("A", "B", "C", "D")


def load(path: Path, limit: int | None = None) -> list[Example]:
    return read_jsonl(path, "medqa", "JSONL lines with question, options A-D and answer_idx (US/4_options release)",
                      _example, LABELS, limit)


def load_train(path: Path, limit: int | None = None) -> list[Example]:
    """The training split, `US/4_options/phrases_no_exclude_train.jsonl` (same fields as the test file)."""
    return read_jsonl(path, "medqa", "JSONL lines with question, options A-D and answer_idx (US/4_options release)",
                      partial(_example, split="train"), LABELS, limit)


def _example(r: dict, line: int, split: str = "test") -> Example:
    # the release has no ids: the line number is one, stable for a given file
    return Example(id=f"{split}-{line}", question=r["question"],
                   reference=r["answer_idx"].strip().upper(), options={k: r["options"][k] for k in LABELS})


TASK = Task(
    name="medqa",
    release_file="US/4_options/phrases_no_exclude_test.jsonl",
    labels=LABELS,
    load=load,
    instruction="Answer the medical exam question. Answer with the letter of the correct option (A, B, C or D).",
    render_input=render_multiple_choice,
    parse=parse_letter,
    source="github.com/jind11/MedQA (data_clean.zip): questions/US/4_options/phrases_no_exclude_test.jsonl",
    split="test: the US 4-option test file (1,273 questions)",
)
