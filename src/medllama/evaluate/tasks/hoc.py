"""HoC (Hallmarks of Cancer): which of the 10 hallmarks an abstract discusses, a multi-label task.

Reads the release tree (github.com/sb895/Hallmarks-of-Cancer): `text/<PMID>.txt` holds one sentence per
line and `labels/<PMID>.txt` the sentences' labels, each introduced by "<", several joined by "AND",
sub-classes after "--" and NULL for none. An abstract's labels are the top-level hallmarks of its
sentences. A `test_pmid.tsv` beside them (BLURB's split: comma-separated file names) limits it to
those documents. Scored by macro-F1 over the ten hallmarks (each hallmark's document-level F1, averaged
unweighted), as the paper's public harness scores HoC (BIDS-Xu-Lab/medical-evaluation); generate mode only.
"""

from __future__ import annotations

import re
from pathlib import Path

from medllama.evaluate.metrics import join_labels, multilabel_metrics
from medllama.evaluate.tasks.base import Example, Task, TaskError, take

LABELS = (
    "activating invasion and metastasis", "avoiding immune destruction", "cellular energetics",
    "enabling replicative immortality", "evading growth suppressors", "genomic instability and mutation",
    "inducing angiogenesis", "resisting cell death", "sustaining proliferative signaling",
    "tumor promoting inflammation",
)
# words a generation may use for a hallmark besides its full name
KEYWORDS = {
    "activating invasion and metastasis": ("invasion", "metasta"),
    "avoiding immune destruction": ("immune destruction", "immune evasion"),
    "cellular energetics": ("energetics",),
    "enabling replicative immortality": ("immortality",),
    "evading growth suppressors": ("growth suppressor",),
    "genomic instability and mutation": ("genomic instability", "mutation"),
    "inducing angiogenesis": ("angiogenesis",),
    "resisting cell death": ("cell death",),
    "sustaining proliferative signaling": ("proliferative signal",),
    "tumor promoting inflammation": ("inflammation",),
}
SPLIT_FILE = "test_pmid.tsv"
TRAIN_SPLIT_FILE = "train_pmid.tsv"


def sentence_labels(field: str) -> set[str]:
    """'Sustaining proliferative signaling--Receptors AND Inducing angiogenesis' → the top-level hallmarks."""
    tops = {part.split("--")[0].strip().lower() for part in field.split("AND")}
    return {t for t in tops if t and t != "null"}


def load(path: Path, limit: int | None = None, split_file: str = SPLIT_FILE) -> list[Example]:
    root = Path(path)
    text_dir, label_dir = root / "text", root / "labels"
    if not (text_dir.is_dir() and label_dir.is_dir()):
        raise TaskError(f"hoc {root}: expected the release tree with text/ and labels/ (one <PMID>.txt each)")
    names = sorted(p.name for p in text_dir.glob("*.txt"))
    if (root / split_file).is_file():
        names = [n.strip() for n in (root / split_file).read_text().strip().split(",") if n.strip()]
    examples = []
    for name in take(names, limit):
        sentences = (text_dir / name).read_text(encoding="utf-8").strip("\n").split("\n")
        fields = (label_dir / name).read_text(encoding="utf-8").strip("\n").split("<")[1:]
        labels = set().union(*(sentence_labels(f) for f in fields)) if fields else set()
        unknown = labels - set(LABELS)
        if unknown:
            raise TaskError(f"hoc {label_dir / name}: unknown hallmark(s) {sorted(unknown)}; known: {list(LABELS)}")
        examples.append(Example(id=Path(name).stem, question="", context=" ".join(sentences),
                                reference=join_labels(labels)))
    return examples


def load_train(path: Path, limit: int | None = None) -> list[Example]:
    """The training documents: those named in `train_pmid.tsv` (BLURB's split) of the release tree."""
    if not (Path(path) / TRAIN_SPLIT_FILE).is_file():
        raise TaskError(f"hoc {path}: no {TRAIN_SPLIT_FILE}; the training split is the documents BLURB's "
                        f"{TRAIN_SPLIT_FILE} names (comma-separated file names) beside text/ and labels/")
    return load(path, limit, TRAIN_SPLIT_FILE)


def render_input(ex: Example) -> str:
    return f"Abstract: {ex.context}"


def parse(text: str) -> str:
    """Every hallmark the generation names (full name or keyword); "" (none) when it names none."""
    low = text.lower()
    found = {label for label, words in KEYWORDS.items()
             if re.search(re.escape(label), low) or any(w in low for w in words)}
    return join_labels(found)


TASK = Task(
    name="hoc",
    release_file="Hallmarks-of-Cancer-master",
    labels=LABELS,
    load=load,
    instruction=("Which hallmarks of cancer does the abstract discuss? Choose from: " + "; ".join(LABELS)
                 + ". Answer with the hallmarks that apply, separated by semicolons, or none."),
    render_input=render_input,
    parse=parse,
    metrics=multilabel_metrics,
    max_new_tokens=64,
    multi_label=True,
    answer_form="labels",
    source="github.com/sb895/Hallmarks-of-Cancer (text/, labels/) with a test_pmid.tsv split file (BLURB's)",
    split="test: the documents named in test_pmid.tsv (every document when there is none)",
)
