"""Synthetic clinical notes with every identifier annotated, and per-type recall/precision of a PHI scanner.

The notes are written here from invented parts (no real person, no text from a dataset): a mix of note
styles around the identifiers HIPAA's Safe Harbor lists (names, dates, phone numbers, e-mail addresses,
MRNs, SSNs, street addresses, ages over 89), in the formats notes use, plus clinical numbers that are not
identifiers (doses, vitals, labs, ages under 90) and MIMIC placeholders, so precision means something.
A found identifier matches a gold one of the same type when their spans overlap.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from medllama.data.phi import PHI_TYPES, PhiScanner

FIRST = ("John", "Maria", "Wei", "Fatima", "Olu", "Anna", "Rafael", "Keiko", "Samir", "Grace", "Tomas", "Ingrid",
         "Kwame", "Lucia", "Dmitri", "Aisha", "Henrik", "Priya", "Mateo", "Noor")
LAST = ("Smith", "Okafor", "Nakamura", "Haddad", "Kowalski", "Fernandez", "Lindqvist", "Mensah", "Ivanova",
        "Rahman", "O'Brien", "Castillo", "Novak", "Achebe", "Tanaka", "Schultz", "Moreau", "Banerjee")
STREETS = ("Oak", "Maple", "Harbor View", "Elm", "Cedar Hill", "Washington", "Lake", "Mill Pond")
SUFFIXES = ("Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Court", "Way")
CITIES = (("Boston", "MA"), ("Springfield", "IL"), ("Portland", "OR"), ("Austin", "TX"), ("Albany", "NY"))
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
CLINICAL = ("BP 128/76, HR 88, RR 16, SpO2 97% on room air.", "Metoprolol 25 mg twice daily was continued.",
            "Sodium 138, potassium 4.1, creatinine 1.2.", "Chest X-ray showed no acute process.",
            "She was given 2 units of packed red cells.", "WBC 11.2, hemoglobin 9.8, platelets 210.",
            "Follow up in 2 weeks with repeat labs.", "Lisinopril 10 mg daily; aspirin 81 mg daily.",
            "The patient is a 67 year old with COPD.", "Ejection fraction 35% on echo.",
            "Admitted to [**Hospital1 18**] on [**2150-3-4**] for dyspnea.", "Seen by [**Doctor Last Name 1234**].")


@dataclass(frozen=True)
class Note:
    text: str
    spans: tuple[tuple[str, int, int], ...]  # (type, start, end)


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[tuple[str, int, int]] = []
        self.at = 0

    def text(self, s: str) -> None:
        self.parts.append(s)
        self.at += len(s)

    def phi(self, kind: str, s: str) -> None:
        self.spans.append((kind, self.at, self.at + len(s)))
        self.text(s)

    def note(self) -> Note:
        return Note("".join(self.parts), tuple(self.spans))


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(1990, 2024), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice((f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{MONTHS[m - 1]} {d}, {y}",
                       f"{d} {MONTHS[m - 1][:3]} {y}"))


AREA_CODES = (212, 213, 303, 312, 404, 415, 503, 512, 518, 602, 617, 713, 808, 919)  # assigned US area codes


def _phone(rng: random.Random) -> str:
    a, b, c = rng.choice(AREA_CODES), rng.randint(201, 989), rng.randint(0, 9999)
    return rng.choice((f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}"))


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _address(rng: random.Random) -> str:
    city, state = rng.choice(CITIES)
    return f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}, {city}, {state} {rng.randint(10000, 99999)}"


def note(rng: random.Random) -> Note:
    """One note: a header with identifiers, clinical sentences, a few identifiers in running text."""
    w = _Writer()
    cue = rng.choice(("Patient: ", "Name: ", "Pt: "))
    w.text(cue)
    w.phi("NAME", _name(rng))
    w.text(rng.choice(("    MRN: ", "  Medical record number ", "  MR# ")))
    w.phi("MRN", str(rng.randint(10 ** 6, 10 ** 8)))
    w.text("\nDate of admission: ")
    w.phi("DATE", _date(rng))
    w.text("\n")
    if rng.random() < 0.5:
        w.text("SSN: ")
        w.phi("SSN", _ssn(rng))
        w.text("\n")
    w.text("Address: ")
    w.phi("ADDRESS", _address(rng))
    w.text("\nPhone: ")
    w.phi("PHONE", _phone(rng))
    if rng.random() < 0.6:
        w.text("  Email: ")
        w.phi("EMAIL", f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower().replace(chr(39), '')}"
                       f"{rng.randint(1, 99)}@{rng.choice(('example.com', 'mail.example.org', 'clinic.example.net'))}")
    w.text("\n\nHPI: ")
    if rng.random() < 0.5:
        age = rng.randint(90, 104)
        w.text("The patient is a ")
        w.phi("AGE_OVER_89", rng.choice((f"{age}-year-old", f"{age} year old", f"{age} yo")))
        w.text(" woman with a history of heart failure. ")
    else:
        w.text(f"The patient is a {rng.randint(20, 85)}-year-old man with diabetes. ")
    for sentence in rng.sample(CLINICAL, 3):
        w.text(sentence + " ")
    w.text("She was seen by ")
    w.phi("NAME", f"Dr. {rng.choice(LAST)}")
    w.text(" on ")
    w.phi("DATE", _date(rng))
    w.text(". ")
    if rng.random() < 0.5:  # a name with no title or label: only NER would know it is one
        w.phi("NAME", _name(rng))
        w.text(" (daughter) will drive her home. ")
    w.text("Call ")
    w.phi("PHONE", _phone(rng))
    w.text(" with questions.\n")
    return w.note()


def synthetic_notes(n: int, seed: int = 0) -> list[Note]:
    rng = random.Random(seed)
    return [note(rng) for _ in range(n)]


def measure(notes: list[Note], scanner: PhiScanner | None = None) -> dict[str, dict[str, float]]:
    """Per type: gold identifiers, found ones, recall and precision (overlap of same-type spans)."""
    scanner = scanner or PhiScanner()
    gold, found, hit_gold, hit_found = Counter(), Counter(), Counter(), Counter()
    for nt in notes:
        findings, _ = scanner.find(nt.text)
        for kind, s, e in nt.spans:
            gold[kind] += 1
            hit_gold[kind] += any(f.kind == kind and f.start < e and s < f.end for f in findings)
        for f in findings:
            found[f.kind] += 1
            hit_found[f.kind] += any(k == f.kind and f.start < e and s < f.end for k, s, e in nt.spans)
    return {t: {"gold": gold[t], "found": found[t], "recall": round(hit_gold[t] / gold[t], 4) if gold[t] else None,
                "precision": round(hit_found[t] / found[t], 4) if found[t] else None} for t in PHI_TYPES}
