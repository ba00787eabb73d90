"""PHI scan of clinical-domain text before training: counts of identifiers by type, and a refusal above a rate.

Detector: presidio-analyzer (Microsoft's PII framework). Its own recognizers find e-mail addresses,
phone numbers (Google's libphonenumber), US SSNs (with its invalid-number checks) and dates; the
types presidio has no pattern for here are presidio `PatternRecognizer`s written for clinical notes:
medical record numbers, street addresses, ages over 89 (HIPAA Safe Harbor identifiers), dates with
the month's name and names
introduced by a title or a field label ("Dr. Wong", "Patient: John Smith"). presidio finds names
in free text with a spaCy NER model, which cannot be downloaded here (spaCy models come from a model
hub, not PyPI), so it runs on a blank English pipeline: names without such a cue are missed and the
measured name recall says how many. philter-lite was the other candidate; it cannot run here at all
(every scan POS-tags with NLTK data that also comes from a hub). Measured recall/precision per type
on the project's annotated synthetic notes (`phi_eval`): bench/RESULTS.md.

MIMIC's de-identification placeholders (`[** ... **]`) are identifiers already removed: counted as
`placeholders`, masked, never reported as PHI.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from medllama import storage
from medllama.data.sources import DataError

PHI_TYPES = ("NAME", "DATE", "PHONE", "EMAIL", "MRN", "SSN", "ADDRESS", "AGE_OVER_89")
STRUCTURED = ("DATE", "PHONE", "EMAIL", "MRN", "SSN")  # pattern-shaped types: recall target 0.95
MIMIC_PLACEHOLDER = re.compile(r"\[\*\*.*?\*\*\]", re.DOTALL)
_PRESIDIO_TYPE = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "US_SSN": "SSN", "DATE_TIME": "DATE"}

_STREET = r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle)"
_NAME = r"(?:[A-Z]'[A-Z][a-z]+|[A-Z][a-z]+(?:-[A-Z][a-z]+)?)"  # Smith, O'Brien, Smith-Jones
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
# (type, presidio pattern name, regex, score): the clinical identifiers presidio has no recognizer for
_PATTERNS = (
    ("MRN", "mrn_label", r"(?i:\b(?:MRN|MR#|medical record(?: number| no\.?)?|unit no\.?|acct(?:ount)? no\.?)\s*[:#]?\s*)"
                         r"[A-Z]?\d{5,10}\b", 0.9),
    ("ADDRESS", "street", rf"\b\d{{1,5}}\s+(?:{_NAME}\s+){{1,3}}{_STREET}\b\.?(?:,?\s+{_NAME}(?:\s+{_NAME})?,?\s+"
                          r"[A-Z]{2}(?:\s+\d{5}(?:-\d{4})?)?)?", 0.85),
    ("ADDRESS", "zip_city", rf"\b{_NAME},\s+[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?\b", 0.6),
    # presidio's DateRecognizer reads numeric dates; notes also write the month's name
    ("DATE", "month_name", rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}})\b", 0.85),
    ("AGE_OVER_89", "age_years", r"(?i:\b(?:9\d|1[0-2]\d)(?:\s*|-)(?:years?|yrs?|y/?o)\b(?:[-\s]old)?)", 0.85),
    ("AGE_OVER_89", "age_label", r"(?i:\b(?:age|aged)\s*:?\s*)(?:9\d|1[0-2]\d)\b", 0.85),
    ("NAME", "titled", rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?\s+{_NAME}(?:\s+{_NAME})?", 0.85),
    ("NAME", "labelled", rf"(?i:\b(?:patient|name|pt|attending|resident|nurse|son|daughter|wife|husband|"
                         rf"contact|physician|signed by|dictated by)\s*:?\s+)(?-i:{_NAME}(?:\s+[A-Z]\.)?(?:\s+{_NAME})?)",
     0.7),
)


@dataclass
class PhiCounts:
    """Identifiers found in a set of texts, by type; MIMIC placeholders separately (already removed)."""

    by_type: Counter = field(default_factory=Counter)
    placeholders: int = 0
    documents: int = 0
    documents_with_phi: int = 0

    def add(self, other: "PhiCounts") -> None:
        self.by_type.update(other.by_type)
        self.placeholders += other.placeholders
        self.documents += other.documents
        self.documents_with_phi += other.documents_with_phi

    @property
    def total(self) -> int:
        return sum(self.by_type.values())

    def to_dict(self) -> dict:
        return {"total": self.total, "by_type": {t: self.by_type.get(t, 0) for t in PHI_TYPES},
                "mimic_placeholders": self.placeholders, "documents": self.documents,
                "documents_with_phi": self.documents_with_phi}

    @classmethod
    def from_dict(cls, d: dict) -> "PhiCounts":
        return cls(Counter({k: v for k, v in d["by_type"].items() if v}), d["mimic_placeholders"], d["documents"],
                   d["documents_with_phi"])


@dataclass(frozen=True)
class Finding:
    kind: str  # one of PHI_TYPES
    start: int
    end: int


class PhiScanner:
    """presidio's AnalyzerEngine with the recognizers above, built once (≈1 s) and reused for every text."""

    threshold = 0.3  # presidio scores: phone numbers without context score 0.4, so 0.5 would miss them

    @cached_property
    def engine(self):
        try:
            import tldextract
            from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        except ImportError as e:
            raise DataError(f"the PHI scan of clinical sources needs presidio-analyzer ({e}): install the `data` "
                            f"extra (pip install 'medllama-ops[data]'), or set data.phi.domains: [] to skip it") from None
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import (DateRecognizer, EmailRecognizer, PhoneRecognizer,
                                                              UsSsnRecognizer)

        # e-mail validation looks domains up in the public suffix list: the snapshot tldextract ships, offline
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
        registry = RecognizerRegistry(recognizers=[EmailRecognizer(), PhoneRecognizer(supported_regions=("US",)),
                                                   UsSsnRecognizer(), DateRecognizer()])
        for kind, name, regex, score in _PATTERNS:
            # case-sensitive (presidio's default is IGNORECASE): a name is capitalised; labels use (?i:...)
            registry.add_recognizer(PatternRecognizer(supported_entity=kind, name=f"medllama_{name}",
                                                      patterns=[Pattern(name, regex, score)],
                                                      global_regex_flags=re.DOTALL | re.MULTILINE))
        nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [
            {"lang_code": "en", "model_name": str(_blank_spacy())}]}).create_engine()
        return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])

    def find(self, text: str) -> tuple[list[Finding], int]:
        """(identifiers found, MIMIC placeholders) in one text; overlapping findings of one type count once."""
        placeholders = 0

        def mask(m: re.Match) -> str:
            nonlocal placeholders
            placeholders += 1
            return " " * len(m.group())  # same length: offsets stay those of the text

        masked = MIMIC_PLACEHOLDER.sub(mask, text)
        results = self.engine.analyze(masked, language="en", score_threshold=self.threshold)
        found = sorted({Finding(_PRESIDIO_TYPE.get(r.entity_type, r.entity_type), r.start, r.end) for r in results},
                       key=lambda f: (f.kind, f.start, -f.end))
        kept: list[Finding] = []
        for f in found:  # an identifier matched by two patterns of its type is one identifier
            if kept and kept[-1].kind == f.kind and f.start < kept[-1].end:
                continue
            kept.append(f)
        return kept, placeholders

    def count(self, texts) -> PhiCounts:
        counts = PhiCounts()
        for text in texts:
            found, placeholders = self.find(text)
            counts.by_type.update(f.kind for f in found)
            counts.placeholders += placeholders
            counts.documents += 1
            counts.documents_with_phi += bool(found)
        return counts


_SHARED: PhiScanner | None = None


def shared_scanner() -> PhiScanner:
    """One scanner per process: presidio's engine takes about a second to build."""
    global _SHARED
    if _SHARED is None:
        _SHARED = PhiScanner()
    return _SHARED


def _blank_spacy():
    """A blank English spaCy pipeline on disk (tokenizer only), which presidio loads by path."""
    import spacy

    path = storage.CACHE_DIR / f"spacy-blank-en-{spacy.__version__}"
    if not (path / "meta.json").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        spacy.blank("en").to_disk(path)
    return path


def check_rate(counts: PhiCounts, tokens: int, max_per_1k_tokens: float, allow: bool) -> dict:
    """The scan's summary for stats.json; raises PhiError when the rate is over the limit and not allowed."""
    rate = counts.total / max(tokens, 1) * 1000
    summary = {**counts.to_dict(), "tokens": tokens, "per_1k_tokens": round(rate, 4),
               "max_per_1k_tokens": max_per_1k_tokens, "allowed": allow}
    if rate > max_per_1k_tokens and not allow:
        raise PhiError(f"clinical sources hold {counts.total} likely identifiers ({rate:.2f} per 1k tokens, limit "
                       f"{max_per_1k_tokens}): {dict(counts.by_type)}. De-identify the notes first, or set "
                       f"data.phi.allow: true if they are cleared for training")
    return summary


class PhiError(DataError):
    """Clinical text with more identifiers than the recipe allows."""
