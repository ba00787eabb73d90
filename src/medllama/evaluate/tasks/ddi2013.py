"""DDI 2013 (DDIExtraction task 9.2): the interaction between two drugs named in a sentence.

Reads the release's XML (DDICorpus/Test/test_for_ddi_extraction_task/{DrugBank,MedLine}/*.xml, or any
directory or file of such XML): <document><sentence text=...><entity id charOffset type text/>...
<pair id e1 e2 ddi="true|false" type="mechanism|effect|advise|int"/></sentence></document>. One example
per pair; a pair with ddi="false" is "none". Scored by macro-F1 over the four interaction types with the
negative class excluded, as the shared task scored DDI classification (Segura-Bedmar et al. 2013,
SemEval-2013 Task 9: per-type precision/recall/F1 over mechanism, effect, advise and int, macro-averaged;
non-interacting pairs are not a class): a "none" pair predicted as a type is a false positive of that type,
a typed pair predicted "none" a false negative. The paper reports macro-F1 only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from medllama.evaluate.metrics import macro_f1
from medllama.evaluate.tasks.base import Example, Task, TaskError, parse_word, take

LABELS = ("mechanism", "effect", "advise", "int", "none")
TYPES = LABELS[:4]
TESTSPLIT = "test: every drug pair of the task 9.2 test XML (DrugBank + MedLine)"  # the classes macro-F1 averages over: "none" (no interaction) is not one


def load(path: Path, limit: int | None = None) -> list[Example]:
    path = Path(path)
    files = sorted(path.rglob("*.xml")) if path.is_dir() else [path]
    if not files:
        raise TaskError(f"ddi2013 {path}: no .xml files; expected the DDI corpus release "
                        f"(Test/test_for_ddi_extraction_task/DrugBank and MedLine)")
    examples: list[Example] = []
    for file in files:
        try:
            root = ET.parse(file).getroot()
        except ET.ParseError as e:
            raise TaskError(f"ddi2013 {file}: not XML ({e}); expected a DDI corpus <document> file") from None
        for sentence in root.iter("sentence"):
            names = {e.get("id"): e.get("text") for e in sentence.iter("entity")}
            for pair in sentence.iter("pair"):
                label = (pair.get("type") or "").lower() if pair.get("ddi") == "true" else "none"
                if label not in LABELS:
                    raise TaskError(f"ddi2013 {file}: pair {pair.get('id')} has type {label!r}; "
                                    f"expected one of {list(LABELS[:4])}")
                try:
                    drugs = f"{names[pair.get('e1')]} and {names[pair.get('e2')]}"
                except KeyError as e:
                    raise TaskError(f"ddi2013 {file}: pair {pair.get('id')} names entity {e} not in its sentence") \
                        from None
                examples.append(Example(id=pair.get("id"), question=drugs, context=sentence.get("text", ""),
                                        reference=label))
                if limit and len(examples) >= limit:
                    return examples
    return take(examples, limit)


def render_input(ex: Example) -> str:
    return f"Sentence: {ex.context}\nDrugs: {ex.question}"


def type_macro_f1(references: list[str], predictions: list[str | None], labels=LABELS) -> dict[str, float]:
    """Macro-F1 over the four interaction types (negative pairs still count as their false positives)."""
    return {"macro_f1": macro_f1(references, predictions, TYPES)}


def parse(text: str) -> str | None:
    word = parse_word(text, (*LABELS, "interaction", "advice", "no interaction"))
    return {"interaction": "int", "advice": "advise", "no interaction": "none"}.get(word, word)


TASK = Task(
    name="ddi2013",
    release_file="Test/test_for_ddi_extraction_task",
    labels=LABELS,
    load=load,
    instruction=("Classify the interaction between the two drugs described in the sentence. Answer with "
                 "mechanism, effect, advise, int, or none."),
    render_input=render_input,
    parse=parse,
    metrics=type_macro_f1,
    source="the DDI corpus release (github.com/isegura/DDICorpus, DDICorpus-2013.zip): Test/test_for_ddi_extraction_task",
    split=TESTSPLIT,
)
