"""MIMIC-CXR report summarization: write the IMPRESSION from the FINDINGS of a radiology report.

Credentialed data: never bundled. Reads the release's report tree (`files/pNN/pNNNNNNNN/sNNNNNNNN.txt`,
from mimic-cxr-reports.zip) or any directory of such .txt reports; reports without both a FINDINGS and
an IMPRESSION section are skipped, as in the summarization benchmarks built on it.
"""

from __future__ import annotations

import re
from pathlib import Path

from medllama.evaluate.metrics import summary_metrics
from medllama.evaluate.tasks.base import Example, Task, TaskError, take

ACCESS = ("MIMIC-CXR is credentialed data from PhysioNet (https://physionet.org/content/mimic-cxr/): it needs a "
          "credentialed PhysioNet account, human-subjects training and the signed data use agreement. Unpack "
          "mimic-cxr-reports.zip on your storage and point the recipe's eval.tasks[].data (name: mimic-cxr) "
          "or `medllama evaluate --data` at the directory holding files/")
# "FINDINGS:" up to the next upper-case section header ("IMPRESSION:", "RECOMMENDATION(S):", ...)
_SECTION = r"{name}\s*:\s*(.*?)(?=\n\s*[A-Z][A-Z /()]+:|\Z)"


def section(report: str, name: str) -> str:
    m = re.search(_SECTION.format(name=name), report, flags=re.DOTALL)
    return " ".join(m.group(1).split()) if m else ""


def load(path: Path, limit: int | None = None) -> list[Example]:
    path = Path(path)
    reports = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not reports:
        raise TaskError(f"mimic-cxr {path}: no .txt reports; expected the release's files/pNN/.../sNNNNNNNN.txt tree")
    examples = []
    for report in reports:
        text = report.read_text(encoding="utf-8", errors="replace")
        findings, impression = section(text, "FINDINGS"), section(text, "IMPRESSION")
        if findings and impression:
            examples.append(Example(id=report.stem, question="", context=findings, reference=impression))
            if limit and len(examples) >= limit:
                break
    return take(examples, limit)


def render_input(ex: Example) -> str:
    return f"Findings: {ex.context}"


TASK = Task(
    name="mimic-cxr",
    release_file="files",
    labels=(),
    load=load,
    instruction="Summarize the radiology findings into the impression section of the report.",
    render_input=render_input,
    parse=str.strip,
    metrics=summary_metrics,
    answer_form="text",
    max_new_tokens=128,
    access=ACCESS,
    split="every report of the given tree with FINDINGS and IMPRESSION (point at the official test studies)",
)
