"""What every task is made of; the tasks themselves are one module per dataset (release formats).

A task turns release records into `Example`s, writes the zero-shot instruction and input for one
(Me-LLaMA style: instruction, then the question and options, "Answer with ..."), names the label
set scored by macro-F1 (empty for free-text tasks such as summaries), and parses a generation back
into a label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medllama.evaluate.metrics import LABEL_SEP, classification_metrics

# How a task writes its answers, and so what a saved prediction or reference may look like:
#   label   one label of the task's set            ("yes", "B", "effect")
#   labels  a label set, LABEL_SEP-joined           (HoC; a JSON list is accepted)
#   tags    word-level BIO tags, space-joined       (NER; a JSON list is accepted)
#   text    free text                               (summaries)
#   texts   accepted answers or a ranked list, one a line (EmrQA golds, diagnoses; a JSON list is accepted)
ANSWER_FORMS = ("label", "labels", "tags", "text", "texts")
_TAG = re.compile(r"^(O|[BI]-\S+)$")


class TaskError(ValueError):
    """An unknown task or a data file that does not match the task's release format."""


class CredentialedDataError(FileNotFoundError):
    """A credentialed dataset that is not bundled: the message says where to obtain it and how to point to it."""


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    reference: str
    options: dict[str, str] = field(default_factory=dict)  # label -> option text, in display order
    context: str = ""


@dataclass(frozen=True)
class Task:
    """How to load, prompt, score and parse one dataset."""

    name: str
    release_file: str  # the file of the public release this task reads
    labels: tuple[str, ...]  # label set: loglikelihood choices and macro-F1 classes
    load: Callable[[Path, int | None], list[Example]]
    instruction: str
    render_input: Callable[[Example], str]
    parse: Callable[[str], str | None]
    metrics: Callable[[list[str], list[str | None], tuple[str, ...]], dict[str, float]] = classification_metrics
    max_new_tokens: int = 8
    # generate mode: the answer ends before these (lm-eval's `until`); "###" begins the template's next
    # section, which a model that goes on past its answer writes next (a base model does)
    stop: tuple[str, ...] = ("###",)
    access: str = ""  # for credentialed data: where it is obtained (never bundled)
    source: str = ""  # for public data: where the release is downloaded
    split: str = ""  # which split is scored and how many examples the full split has
    multi_label: bool = False  # references and predictions are LABEL_SEP-joined label sets
    answer_form: str = "label"  # one of ANSWER_FORMS
    # generate mode, when reading an answer needs the input too (NER: entity mentions -> tags of its words)
    parse_with_input: Callable[[str, Example], str | None] | None = None
    option_text: bool = False  # loglikelihood mode scores each option's text, not its label (the letter)

    @property
    def scores_options(self) -> bool:
        """Whether loglikelihood mode applies: one answer out of a fixed label set."""
        return bool(self.labels) and not self.multi_label

    def choices(self, example: Example) -> list[str]:
        """Labels scored in loglikelihood mode, each written as the model would answer it."""
        return list(example.options) if example.options else list(self.labels)

    def continuation(self, example: Example, label: str) -> str:
        """What is scored after the prompt for `label`: the label itself, or its option text."""
        return example.options[label] if self.option_text and example.options else label

    def text_view(self, example: Example) -> str:
        """Everything of an example that is test data (question, context, options, answer), one text: what
        decontamination looks for in training data."""
        return "\n".join(x for x in (example.question, example.context, *example.options.values(),
                                     example.reference) if x)

    def read(self, output: str, example: Example) -> str | None:
        """The answer in a generation (with the example's input where the task needs it)."""
        return self.parse_with_input(output, example) if self.parse_with_input else self.parse(output)

    def as_answer(self, value) -> str | None:
        """A saved prediction or reference (JSON value) in this task's answer form; a list is joined."""
        if value is None:
            return None
        if isinstance(value, list | tuple):
            value = [str(v) for v in value]
            if self.answer_form == "labels":
                return LABEL_SEP.join(sorted(set(value)))
            return (" " if self.answer_form == "tags" else "\n").join(value)
        return str(value)

    def read_saved(self, value) -> str | None:
        """A saved prediction as scored: kept when it already is an answer, else parsed as a generation."""
        answer = self.as_answer(value)
        if answer is None or answer in self.labels or self.answer_form in ("text", "texts"):
            return answer if self.answer_form != "text" else self.parse(answer)
        if self.answer_form == "tags":
            if all(_TAG.match(t) for t in answer.split()):
                return answer
            raise TaskError(f"{self.name}: prediction {answer[:60]!r} is not BIO tags; save the tags "
                            f"(a list or space-joined), since mapping entity lines to tags needs the input text")
        return self.parse(answer)


def render_multiple_choice(ex: Example) -> str:
    options = "\n".join(f"{k}. {v}" for k, v in ex.options.items())
    return f"Question: {ex.question}\nOptions:\n{options}"


def parse_letter(text: str, letters: str = "ABCD") -> str | None:
    """'The answer is (B).', 'B: Aspirin', 'answer: c' → the letter; None when no letter stands alone."""
    text = text.strip()
    cls = f"[{letters}{letters.lower()}]"
    up = f"[{letters}]"
    # A bare capital "A" is also an article ("A 45-year-old ..."), so a letter only counts when it is
    # marked as an answer: "answer is", "option", brackets, or followed by ".", ")", ":" or the end.
    for pattern, flags in (
        (rf"^\W*({cls})\W*$", 0),  # the letter alone, any case: "c", "(B)."
        (rf"\b(?:answer|option)\s*(?:is|:)?\s*[\(\[]?({cls})\b", re.IGNORECASE),
        (rf"^\W*({up})\s*(?:[.):]|$)", 0),
        (rf"[\(\[]({cls})[\)\]]", 0),
        (rf"\b({up})(?:[.):]|\s*$)", 0),
    ):
        m = re.search(pattern, text, flags=flags)
        if m:
            return m.group(1).upper()
    return None


def parse_word(text: str, words: tuple[str, ...]) -> str | None:
    """The first of `words` that appears as a whole word ('Maybe.', 'yes, because ...')."""
    m = re.search(r"\b(" + "|".join(map(re.escape, words)) + r")\b", text, flags=re.IGNORECASE)
    return m.group(1).lower() if m else None


def render_nli(ex: Example) -> str:
    """The input of an inference task: the premise (context), then the hypothesis (question)."""
    return f"Premise: {ex.context}\nHypothesis: {ex.question}"


def parse_nli(text: str, labels: tuple[str, ...]) -> str | None:
    """An NLI label out of `labels` named in the generation; the verbs "entails" and "contradicts" count too."""
    verbs = {"entails": "entailment", "contradicts": "contradiction"}
    word = parse_word(text, (*labels, *(v for v, label in verbs.items() if label in labels)))
    return verbs.get(word, word)


def read_jsonl(path: Path, task: str, expected: str, build: Callable[[dict, int], Example],
               labels: tuple[str, ...] = (), limit: int | None = None) -> list[Example]:
    """Examples from a JSONL release file (`build(record, line number)`); a bad line fails with its number and
    the fields expected."""
    examples: list[Example] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if limit and len(examples) >= limit:
                break
            if not line.strip():
                continue
            try:
                ex = build(json.loads(line), n)
            except TaskError as e:
                raise TaskError(f"{task} {path}:{n}: {e}") from None
            except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
                raise TaskError(f"{task} {path}:{n}: {e!r}; expected {expected}") from None
            if labels and ex.reference not in labels:
                raise TaskError(f"{task} {path}:{n}: answer {ex.reference!r} is not one of {list(labels)}")
            examples.append(ex)
    return examples


def take(items: list[Example], limit: int | None) -> list[Example]:
    return items[:limit] if limit else items
