"""PubMedQA (PQA-L): yes/no/maybe questions over an abstract, from the release file `ori_pqal.json`.

The release is one JSON object keyed by PMID; each value holds QUESTION, CONTEXTS (the abstract
without its conclusion), LABELS, MESHES, YEAR, final_decision and LONG_ANSWER (the conclusion, which
would give the answer away and is never shown to the model).
"""

from __future__ import annotations

import json
from pathlib import Path

from medllama.evaluate.tasks.base import Example, Task, TaskError, parse_word, take

LABELS = ("yes", "no", "maybe")


def load(path: Path, limit: int | None = None) -> list[Example]:
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TaskError(f"pubmedqa {path}: not JSON ({e}); expected the release file ori_pqal.json") from None
    if not isinstance(records, dict):
        raise TaskError(f"pubmedqa {path}: expected a JSON object keyed by PMID (ori_pqal.json)")
    examples = []
    for pmid, r in records.items():
        try:
            decision = r["final_decision"].strip().lower()
            examples.append(Example(id=str(pmid), question=r["QUESTION"], reference=decision,
                                    context="\n".join(r["CONTEXTS"])))
        except (KeyError, TypeError, AttributeError) as e:
            raise TaskError(f"pubmedqa {path}: record {pmid} lacks {e}; "
                            f"expected QUESTION, CONTEXTS, final_decision") from None
        if decision not in LABELS:
            raise TaskError(f"pubmedqa {path}: record {pmid} has final_decision {decision!r}; "
                            f"expected yes, no or maybe")
    return take(examples, limit)


def render_input(ex: Example) -> str:
    return f"Context: {ex.context}\nQuestion: {ex.question}"


def parse(text: str) -> str | None:
    return parse_word(text, LABELS)


TASK = Task(
    name="pubmedqa",
    release_file="ori_pqal.json",
    labels=LABELS,
    load=load,
    instruction="Answer the biomedical research question using the abstract. Answer with yes, no, or maybe.",
    render_input=render_input,
    parse=parse,
)
