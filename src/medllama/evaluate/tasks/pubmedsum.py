"""PubMed article summarization (Cohan et al. 2018): from the release file `test.txt`.

Each line is one paper as JSON: article_id, article_text (sentences), abstract_text (sentences wrapped
in "<S> ... </S>"), labels, section_names, sections. The model writes the abstract from the article;
scored by ROUGE-L and BERTScore (with a local scoring model; see metrics.bertscore).
"""

from __future__ import annotations

import re
from pathlib import Path

from medllama.evaluate.metrics import summary_metrics
from medllama.evaluate.tasks.base import Example, Task, read_jsonl

_SENT_TAGS = re.compile(r"</?S>")


def load(path: Path, limit: int | None = None) -> list[Example]:
    return read_jsonl(path, "pubmedsum", "JSON lines with article_id, article_text and abstract_text (the "
                      "pubmed-dataset release's test.txt)", _example, limit=limit)


def _example(r: dict, line: int) -> Example:
    abstract = " ".join(_SENT_TAGS.sub("", s).strip() for s in r["abstract_text"])
    return Example(id=str(r.get("article_id", line)), question="", context=" ".join(r["article_text"]),
                   reference=abstract)


def render_input(ex: Example) -> str:
    return f"Article: {ex.context}"


TASK = Task(
    name="pubmedsum",
    release_file="test.txt",
    labels=(),
    load=load,
    instruction="Summarize the biomedical article in a short abstract.",
    render_input=render_input,
    parse=str.strip,
    metrics=summary_metrics,
    answer_form="text",
    max_new_tokens=256,
    source="github.com/armancohan/long-summarization (pubmed-dataset.zip): test.txt",
    split="test: the release's test.txt (6,658 articles)",
)
