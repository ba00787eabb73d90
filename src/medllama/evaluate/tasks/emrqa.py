"""EmrQA: extractive question answering over clinical notes, from the release file `data.json`.

Credentialed data: never bundled (emrQA is generated from n2c2/i2b2 notes). The release is SQuAD-like:
{"data": [{"title", "paragraphs": [{"note_id", "context", "qas": [{"question", "answers": [{"text", ...}],
"id"}]}]}]}. The generation script writes `context` as a list of note lines and `question` as a list of
paraphrases (the first is asked); its SQuAD-format export writes plain strings; both are read. Scored by
exact match (the paper's accuracy) and token F1, each the best over the question's accepted answers.
"""

from __future__ import annotations

import json
from pathlib import Path

from medllama.evaluate.metrics import answer_lines, extractive_qa_metrics
from medllama.evaluate.tasks.base import Example, Task, TaskError, take

ACCESS = ("emrQA is generated from n2c2 (formerly i2b2) clinical notes, credentialed data from the DBMI Data "
          "Portal (https://portal.dbmi.hms.harvard.edu/, data use agreement required) with the generation "
          "scripts of github.com/panushri25/emrQA. Put its data.json on your storage and point the recipe's "
          "eval.tasks[].data (name: emrqa) or `medllama evaluate --data` at it")


def _text(value) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def _first(value) -> str:
    return str(value[0]) if isinstance(value, list) else str(value)


def load(path: Path, limit: int | None = None) -> list[Example]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise TaskError(f"emrqa {path}: {e!r}; expected the emrQA release data.json ({{\"data\": [...]}})") from None
    examples: list[Example] = []
    for doc in data:
        for p_idx, par in enumerate(doc.get("paragraphs", [])):
            context = _text(par["context"])
            for q_idx, qa in enumerate(par.get("qas", [])):
                golds = list(dict.fromkeys(g for a in qa.get("answers", []) for g in answer_lines(_text(a["text"]))))
                if not golds:
                    continue  # no extractive answer to score against
                qid = qa.get("id") or f"{doc.get('title', 'doc')}-{p_idx}-{q_idx}"
                examples.append(Example(id=json.dumps(qid) if not isinstance(qid, str) else qid,
                                        question=_first(qa["question"]), context=context,
                                        reference="\n".join(golds)))
                if limit and len(examples) >= limit:
                    return examples
    return take(examples, limit)


def render_input(ex: Example) -> str:
    return f"Clinical note: {ex.context}\nQuestion: {ex.question}"


def parse(text: str) -> str:
    """The answer is the generation's first non-empty line, without an "Answer:" prefix."""
    lines = answer_lines(text)
    first = lines[0] if lines else ""
    return first.split(":", 1)[1].strip() if first.lower().startswith("answer:") else first


TASK = Task(
    name="emrqa",
    release_file="data.json",
    labels=(),
    load=load,
    instruction="Answer the question using the clinical note. Answer with the exact words of the note.",
    render_input=render_input,
    parse=parse,
    metrics=extractive_qa_metrics,
    max_new_tokens=32,
    access=ACCESS,
    answer_form="texts",
    split="every question of the given data.json with an extractive answer",
)
