"""MTSample: the medical specialty of a transcribed report, from the release file `mtsamples.csv`.

The release (mtsamples.com, as scraped into mtsamples.csv) has an unnamed index column, description,
medical_specialty (with a leading space), sample_name, transcription and keywords; rows without a
transcription are skipped. Scored by macro-F1 over the specialties that occur in the data (the paper
reports macro-F1 only).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from medllama.evaluate.metrics import macro_f1_dataset_labels
from medllama.evaluate.tasks.base import Example, Task, TaskError

# the 40 specialties of the release; the prompt offers them and the parser looks for them
LABELS = (
    "Allergy / Immunology", "Autopsy", "Bariatrics", "Cardiovascular / Pulmonary", "Chiropractic",
    "Consult - History and Phy.", "Cosmetic / Plastic Surgery", "Dentistry", "Dermatology", "Diets and Nutritions",
    "Discharge Summary", "ENT - Otolaryngology", "Emergency Room Reports", "Endocrinology", "Gastroenterology",
    "General Medicine", "Hematology - Oncology", "Hospice - Palliative Care", "IME-QME-Work Comp etc.",
    "Lab Medicine - Pathology", "Letters", "Nephrology", "Neurology", "Neurosurgery", "Obstetrics / Gynecology",
    "Office Notes", "Ophthalmology", "Orthopedic", "Pain Management", "Pediatrics - Neonatal",
    "Physical Medicine - Rehab", "Podiatry", "Psychiatry / Psychology", "Radiology", "Rheumatology",
    "SOAP / Chart / Progress Notes", "Sleep Medicine", "Speech - Language", "Surgery", "Urology",
)


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


_BY_KEY = {_key(label): label for label in LABELS}


def load(path: Path, limit: int | None = None) -> list[Example]:
    csv.field_size_limit(1 << 24)
    examples = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"medical_specialty", "transcription"} <= set(reader.fieldnames or ()):
            raise TaskError(f"mtsample {path}: columns {reader.fieldnames}; expected the mtsamples.csv release "
                            f"(description, medical_specialty, sample_name, transcription, keywords)")
        for n, row in enumerate(reader, 2):
            if limit and len(examples) >= limit:
                break
            text, specialty = (row["transcription"] or "").strip(), " ".join(row["medical_specialty"].split())
            if not text:
                continue
            examples.append(Example(id=row.get("") or str(n), question="", context=text,
                                    reference=_BY_KEY.get(_key(specialty), specialty)))
    return examples


def render_input(ex: Example) -> str:
    return f"Report: {ex.context}"


def parse(text: str) -> str | None:
    """The specialty named first in the generation (punctuation and case ignored; longer names win ties)."""
    key = f" {_key(text)} "
    found = [(key.find(f" {k} "), -len(k), label) for k, label in _BY_KEY.items() if f" {k} " in key]
    return min(found)[2] if found else None


TASK = Task(
    name="mtsample",
    release_file="mtsamples.csv",
    labels=LABELS,
    load=load,
    instruction=("Which medical specialty does the report belong to? Choose from: " + "; ".join(LABELS)
                 + ". Answer with the specialty."),
    render_input=render_input,
    parse=parse,
    metrics=macro_f1_dataset_labels,
    max_new_tokens=16,
    source="mtsamples.csv as scraped from mtsamples.com (e.g. the Kaggle dataset \"Medical Transcriptions\")",
    split="all rows with a transcription (the release has no test split)",
)
