"""2012 i2b2 (temporal relations challenge) clinical NER: the events of a discharge summary, by type.

Credentialed data: never bundled. Reads the release's note XML (`<id>.xml`, or a directory of them):
<TEXT><![CDATA[note, one sentence per line, tokens separated by spaces]]></TEXT> and <TAGS> holding
<EVENT id start end text type .../> (type PROBLEM, TEST, TREATMENT, CLINICAL_DEPT, EVIDENTIAL or
OCCURRENCE). The files are parsed by pattern: their attribute values are not always valid XML. One
example per sentence; its reference is a BIO tag per word. The model answers one "entity, type" per
line (the paper's harness), which is mapped back onto the sentence's words and scored by seqeval's
entity-level macro-F1.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from medllama.evaluate.metrics import ner_metrics
from medllama.evaluate.tasks.base import Example, Task, TaskError

TYPES = ("PROBLEM", "TEST", "TREATMENT", "CLINICAL_DEPT", "EVIDENTIAL", "OCCURRENCE")
ACCESS = ("2012 i2b2 is credentialed data from the n2c2 collection on the DBMI Data Portal "
          "(https://portal.dbmi.hms.harvard.edu/, data use agreement required). Unpack the 2012 temporal "
          "relations test data (the ground-truth note XML) on your storage and point the recipe's "
          "eval.tasks[].data (name: i2b2) or `medllama evaluate --data` at the directory of .xml files")
_TEXT = re.compile(r"<TEXT>\s*<!\[CDATA\[(.*?)\]\]>\s*</TEXT>", re.DOTALL)
_EVENT = re.compile(r"<EVENT\b([^>]*?)/?>")
_ATTR = re.compile(r'(\w+)="(.*?)"(?=\s+\w+="|\s*/?$)', re.DOTALL)


def events(xml: str) -> list[tuple[int, int, str, str]]:
    """(start, end, text, type) of each EVENT, offsets as written in the file."""
    out = []
    for m in _EVENT.finditer(xml):
        attrs = dict(_ATTR.findall(m.group(1).strip()))
        if attrs.get("type", "").upper() in TYPES:
            out.append((int(attrs["start"]), int(attrs["end"]), html.unescape(attrs.get("text", "")),
                        attrs["type"].upper()))
    return out


def _locate(text: str, start: int, mention: str) -> int:
    """Where `mention` really starts: the release's offsets can be off by one, so look near `start`."""
    if not mention:
        return start
    hits = [i for i in range(max(0, start - 3), start + 4) if text.startswith(mention, i)]
    return min(hits, key=lambda i: abs(i - start)) if hits else start


def note_examples(note_id: str, xml: str) -> list[Example]:
    m = _TEXT.search(xml)
    if not m:
        raise TaskError(f"i2b2 {note_id}: no <TEXT><![CDATA[...]]></TEXT>; expected a 2012 i2b2 note XML")
    text = m.group(1)
    spans = []
    for start, end, mention, kind in events(xml):
        s = _locate(text, start, mention)
        spans.append((s, s + (len(mention) or end - start), kind))
    examples, offset = [], 0
    for n, line in enumerate(text.split("\n")):
        words = [(w.start() + offset, w.end() + offset) for w in re.finditer(r"\S+", line)]
        offset += len(line) + 1
        if not words:
            continue
        tags = ["O"] * len(words)
        for s, e, kind in sorted(spans):
            inside = [k for k, (ws, we) in enumerate(words) if ws < e and we > s]
            if inside and all(tags[k] == "O" for k in inside):
                tags[inside[0]] = f"B-{kind}"
                for k in inside[1:]:
                    tags[k] = f"I-{kind}"
        examples.append(Example(id=f"{note_id}:{n}", question="", context=" ".join(line.split()),
                                reference=" ".join(tags)))
    return examples


def load(path: Path, limit: int | None = None) -> list[Example]:
    path = Path(path)
    files = sorted(path.rglob("*.xml")) if path.is_dir() else [path]
    if not files:
        raise TaskError(f"i2b2 {path}: no .xml notes; {ACCESS}")
    examples: list[Example] = []
    for file in files:
        examples += note_examples(file.stem, file.read_text(encoding="utf-8", errors="replace"))
        if limit and len(examples) >= limit:
            break
    return examples[:limit] if limit else examples


def render_input(ex: Example) -> str:
    return f"Sentence: {ex.context}"


def entity_lines(text: str) -> list[tuple[str, str]]:
    """'chest pain, problem' lines → (mention, TYPE); other lines and unknown types are ignored."""
    out = []
    for line in text.split("\n"):
        mention, sep, kind = line.strip().lstrip("-*• ").rpartition(",")
        kind = kind.strip().upper().replace(" ", "_")
        if sep and mention.strip() and kind in TYPES:
            out.append((mention.strip(), kind))
    return out


def _norm(word: str) -> str:
    return re.sub(r"^\W+|\W+$", "", word.lower())


def to_tags(words: list[str], entities: list[tuple[str, str]]) -> list[str]:
    """BIO tags of `words`: each entity marks its first free occurrence (case and edge punctuation ignored)."""
    keys = [_norm(w) for w in words]
    tags = ["O"] * len(words)
    for mention, kind in entities:
        target = [_norm(w) for w in mention.split()]
        for i in range(len(words) - len(target) + 1):
            span = range(i, i + len(target))
            if keys[i:i + len(target)] == target and all(tags[k] == "O" for k in span):
                tags[i] = f"B-{kind}"
                for k in span[1:]:
                    tags[k] = f"I-{kind}"
                break
    return tags


def parse(text: str) -> str:
    raise TaskError("i2b2: entity lines become tags only against their sentence; score generations with the "
                    "example (Task.read), or save BIO tags as predictions")


def parse_with_input(text: str, ex: Example) -> str:
    return " ".join(to_tags(ex.context.split(), entity_lines(text)))


TASK = Task(
    name="i2b2",
    release_file="ground_truth",
    labels=(),
    load=load,
    instruction=("List the clinical entities in the sentence, one per line as \"entity, type\", where type is "
                 "problem, test, treatment, clinical_dept, evidential or occurrence. Answer none if there are none."),
    render_input=render_input,
    parse=parse,
    metrics=ner_metrics,
    max_new_tokens=96,
    access=ACCESS,
    answer_form="tags",
    parse_with_input=parse_with_input,
    split="test: the 2012 temporal relations ground-truth notes, one example per sentence",
)
