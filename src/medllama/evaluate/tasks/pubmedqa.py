"""PubMedQA (PQA-L): yes/no/maybe questions over an abstract, scored on the official 500-question test set.

The release's `ori_pqal.json` is one JSON object keyed by PMID holding all 1,000 labelled questions; each
value holds QUESTION, CONTEXTS (the abstract without its conclusion), LABELS, MESHES, YEAR, final_decision
and LONG_ANSWER (the conclusion, which would give the answer away and is never shown to the model). The
test split is the 500 PMIDs of the repository's `test_ground_truth.json` ({PMID: decision}), read beside
`ori_pqal.json`; the split script's `test_set.json` (the same records as ori_pqal.json, test PMIDs only)
is read as is. Scoring all 1,000 would mix in the questions the split reserves for training.
"""

from __future__ import annotations

import json
from pathlib import Path

from medllama.evaluate.tasks.base import Example, Task, TaskError, parse_word, take

LABELS = ("yes", "no", "maybe")
GROUND_TRUTH = "test_ground_truth.json"  # {PMID: decision} of the test split, beside ori_pqal.json


def _json(path: Path) -> dict:
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TaskError(f"pubmedqa {path}: not JSON ({e}); expected the release file ori_pqal.json") from None
    if not isinstance(records, dict):
        raise TaskError(f"pubmedqa {path}: expected a JSON object keyed by PMID (ori_pqal.json)")
    return records


def test_pmids(path: Path) -> list[str] | None:
    """The test split's PMIDs for a release file: those of test_ground_truth.json beside ori_pqal.json, None
    for the split script's test_set.json (already the split)."""
    path = Path(path)
    if path.name == "test_set.json":
        return None
    truth = path.with_name(GROUND_TRUTH)
    if not truth.is_file():
        raise TaskError(f"pubmedqa {path}: no {GROUND_TRUTH} beside it; the test split is its 500 PMIDs. Put the "
                        f"file from github.com/pubmedqa/pubmedqa (data/{GROUND_TRUTH}) next to ori_pqal.json, or "
                        f"point at the split script's test_set.json")
    return list(_json(truth))


def load(path: Path, limit: int | None = None) -> list[Example]:
    records = _json(path)
    pmids = test_pmids(path)
    missing = [p for p in pmids or () if p not in records]
    if missing:
        raise TaskError(f"pubmedqa {path}: {len(missing)} test PMIDs of {GROUND_TRUTH} are not in it "
                        f"(first: {missing[0]}); both files must come from the same release")
    return _examples(path, records, pmids if pmids is not None else list(records), limit)


def load_train(path: Path, limit: int | None = None) -> list[Example]:
    """The training split: every record of the split script's `pqal_fold<k>/train_set.json` (PQA-A's
    `ori_pqaa.json` has the same format)."""
    records = _json(path)
    return _examples(path, records, list(records), limit)


def _examples(path: Path, records: dict, pmids: list[str], limit: int | None) -> list[Example]:
    examples = []
    for pmid in pmids:
        r = records[pmid]
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
    source="github.com/pubmedqa/pubmedqa: data/ori_pqal.json with data/test_ground_truth.json beside it",
    split="test: the 500 PMIDs of test_ground_truth.json (of the 1,000 labelled PQA-L questions)",
)
