"""Training splits of the benchmark datasets, what the model is taught to answer, and the check that keeps
every test example out of training.

A training split is read in its dataset's release format by the same task module that reads the test
split, so a training example is prompted exactly as evaluation prompts it. The overlap check drops a
training example whose input equals a test example's (after normalisation) or that shares a word
n-gram with one (the corpus decontamination's index and n), and counts both.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medllama.data.clean import clean_text
from medllama.data.decontam import Decontaminator
from medllama.evaluate.tasks import Example, Task, TaskError, bionli, ddi2013, hoc, i2b2, medmcqa, mednli, medqa, \
    mtsample, pubmedqa, task_data


@dataclass(frozen=True)
class TrainSplit:
    release_file: str  # the training split inside the dataset's release (file or tree)
    load: Callable[[Path, int | None], list[Example]]


# The paper tuned on 8 datasets' training splits without naming them (facts sheet: "not found"): every
# benchmark dataset whose release has a training split is supported.
TRAIN_SPLITS: dict[str, TrainSplit] = {
    # PQA-L's split script writes pqal_fold<k>/train_set.json in ori_pqal.json's format (PQA-A's ori_pqaa.json too)
    "pubmedqa": TrainSplit("pqal_fold0/train_set.json", pubmedqa.load_train),
    "medqa": TrainSplit("US/4_options/phrases_no_exclude_train.jsonl", medqa.load_train),
    "medmcqa": TrainSplit("train.json", medmcqa.load),
    "hoc": TrainSplit(".", hoc.load_train),  # the release tree itself, with BLURB's train_pmid.tsv
    "ddi2013": TrainSplit("Train", ddi2013.load),
    "i2b2": TrainSplit("2012-07-15.original-annotation.release", i2b2.load),
    "mtsample": TrainSplit("train.csv", mtsample.load),  # no official split: a CSV in mtsamples.csv's columns
    "bionli": TrainSplit("train.csv", bionli.load),
    "mednli": TrainSplit("mli_train_v1.jsonl", mednli.load),
}


def train_split(task: Task) -> TrainSplit:
    if task.name not in TRAIN_SPLITS:
        raise TaskError(f"{task.name}: no training-split loader; task-specific tuning supports {sorted(TRAIN_SPLITS)}")
    return TRAIN_SPLITS[task.name]


def load_train(task: Task, uri: str, limit: int | None = None) -> tuple[list[Example], Path]:
    """The training examples at `uri` (the split's file, a release tree, or the directory holding it)."""
    split = train_split(task)
    path = task_data(dataclasses.replace(task, release_file=split.release_file), uri)
    return split.load(path, limit), path


def answer_text(task: Task, ex: Example) -> str:
    """What the model is taught to write: what the task's parser reads back (and log-likelihood mode scores)."""
    if task.answer_form == "tags":  # NER: one "entity, type" line per tagged span, as the instruction asks
        return "\n".join(f"{mention}, {kind.lower()}" for mention, kind in tagged_spans(ex)) or "none"
    if task.multi_label:
        return ex.reference or "none"
    if task.labels:
        return task.continuation(ex, ex.reference)
    raise TaskError(f"{task.name}: free-text answers are not supported by task-specific tuning here")


def tagged_spans(ex: Example) -> list[tuple[str, str]]:
    """(mention, TYPE) of each BIO span of a NER example's words."""
    spans: list[tuple[list[str], str]] = []
    for word, tag in zip(ex.context.split(), ex.reference.split(), strict=True):
        if tag.startswith("B-") or (tag.startswith("I-") and (not spans or spans[-1][1] != tag[2:])):
            spans.append(([word], tag[2:]))
        elif tag.startswith("I-"):
            spans[-1][0].append(word)
    return [(" ".join(words), kind) for words, kind in spans]


def _input_key(ex: Example) -> str:
    text = " ".join([ex.context, ex.question, *ex.options.values()])
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _shown_text(ex: Example) -> str:
    return clean_text("\n".join([ex.context, ex.question, *ex.options.values()]))


@dataclass
class Overlap:
    """How much of the test split the training split contained, and what was dropped for it."""

    train_examples: int
    test_examples: int
    ngram: int
    dropped_same_input: int = 0  # training examples whose input equals a test example's
    dropped_shared_ngram: int = 0  # training examples sharing an n-gram of words with a test example
    test_examples_found: int = 0  # distinct test examples found in the training split

    @property
    def dropped(self) -> int:
        return self.dropped_same_input + self.dropped_shared_ngram

    def as_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "dropped": self.dropped, "kept": self.train_examples - self.dropped}


def remove_test_overlap(train: list[Example], test: list[Example], n: int) -> tuple[list[Example], Overlap]:
    """The training examples that share nothing with the test split, and the counts of what was dropped."""
    overlap = Overlap(len(train), len(test), n)
    by_input: dict[str, int] = {}
    for i, ex in enumerate(test):
        by_input.setdefault(_input_key(ex), i)
    index = Decontaminator(n=n)
    index.add_set("test", [_shown_text(ex) for ex in test])
    found, kept = set(), []
    for ex in train:
        same = by_input.get(_input_key(ex))
        if same is not None:
            overlap.dropped_same_input += 1
            found.add(same)
        elif index.matches(_shown_text(ex)):
            overlap.dropped_shared_ngram += 1
        else:
            kept.append(ex)
    overlap.test_examples_found = len(found | set(index.report()["test"]["matched_ids"]))
    return kept, overlap
