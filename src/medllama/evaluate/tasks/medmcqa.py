"""MedMCQA: from the release file `dev.json` (the test split's answers are not public).

Each line holds id, question, opa..opd, cop (the correct option, 1-based in the release: 1 = opa;
the HF `datasets` copy re-numbers it 0-3, so a 0 is refused rather than guessed), choice_type,
exp, subject_name and topic_name.
"""

from __future__ import annotations

from pathlib import Path

from medllama.evaluate.tasks.base import Example, Task, TaskError, parse_letter, read_jsonl, render_multiple_choice

LABELS = ("A", "B", "C", "D")
FIELDS = ("opa", "opb", "opc", "opd")


def load(path: Path, limit: int | None = None) -> list[Example]:
    return read_jsonl(path, "medmcqa", "JSONL lines with id, question, opa-opd and cop (release dev.json)",
                      _example, LABELS, limit)


def _example(r: dict, line: int) -> Example:
    cop = int(r["cop"])
    if not 1 <= cop <= 4:
        raise TaskError(f"cop {cop} is not 1-4; the release numbers options from 1 (a 0-3 cop comes from the "
                        f"HF datasets copy: add 1)")
    return Example(id=str(r.get("id", line)), question=r["question"], reference=LABELS[cop - 1],
                   options={label: r[k] for label, k in zip(LABELS, FIELDS)})


TASK = Task(
    name="medmcqa",
    release_file="dev.json",
    labels=LABELS,
    load=load,
    instruction=("Answer the medical entrance exam question. "
                 "Answer with the letter of the correct option (A, B, C or D)."),
    render_input=render_multiple_choice,
    parse=parse_letter,
    source="github.com/medmcqa/medmcqa (data.zip from its README): dev.json",
    split="dev: the release's dev.json (4,183 questions; the test answers are not public)",
)
