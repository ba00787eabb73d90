"""The PHI scan of clinical sources: measured recall/precision per identifier type on the project's annotated
synthetic notes, MIMIC placeholders as already removed, and a prepare that refuses notes full of identifiers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medllama.data import prepare
from medllama.data.phi import STRUCTURED, PhiError, shared_scanner
from medllama.data.phi_eval import CLINICAL, measure, synthetic_notes

from .helpers import small_recipe, synthetic_docs, write_jsonl


def test_recall_and_precision_per_type_on_annotated_notes():
    """Structured identifiers (dates, phones, e-mails, MRNs, SSNs) at recall >= 0.95; every type's precision
    >= 0.95; names only where a title or field label introduces them (no NER model here), so their recall is
    measured, not promised."""
    scores = measure(synthetic_notes(60, seed=7), shared_scanner())
    for kind in STRUCTURED:
        assert scores[kind]["gold"] > 0 and scores[kind]["recall"] >= 0.95, (kind, scores[kind])
    for kind in ("ADDRESS", "AGE_OVER_89"):
        assert scores[kind]["recall"] >= 0.95, (kind, scores[kind])
    for kind, s in scores.items():
        assert s["precision"] is None or s["precision"] >= 0.95, (kind, s)
    assert 0.5 < scores["NAME"]["recall"] < 1.0  # the un-cued names in running text are missed


def test_mimic_placeholders_are_removed_identifiers_and_clinical_numbers_are_not_phi():
    scanner = shared_scanner()
    found, placeholders = scanner.find("Admitted to [**Hospital1 18**] on [**2150-3-4**]; seen by [**Doctor 12**].")
    assert found == [] and placeholders == 3
    for sentence in CLINICAL[:10]:  # doses, vitals, labs, a 67-year-old
        assert scanner.find(sentence)[0] == [], sentence
    kinds = [f.kind for f in scanner.find("Mr. Haddad, aged 97, MRN: 00123456, (617) 432-1234 on 4 Mar 2019.")[0]]
    assert sorted(kinds) == ["AGE_OVER_89", "DATE", "MRN", "NAME", "PHONE"]


def _recipe(tmp_path: Path, notes: list[str], **phi):
    clinical = write_jsonl(tmp_path / "src" / "clinical.jsonl", notes)
    general = write_jsonl(tmp_path / "src" / "general.jsonl", synthetic_docs("general", 200))
    return small_recipe([{"path": str(clinical), "domain": "clinical"}, {"path": str(general), "domain": "general"}],
                        ratio={"clinical": 1, "general": 4}, decontaminate="off",
                        **({"phi": phi} if phi else {}))


def test_prepare_refuses_identified_notes_unless_allowed(tmp_path):
    """Notes with identifiers in every line: over data.phi.max_per_1k_tokens the stage fails, naming the counts;
    with data.phi.allow it runs and stats.json carries the counts per type."""
    notes = [n.text for n in synthetic_notes(40, seed=3)]
    with pytest.raises(PhiError, match=r"likely identifiers .* per 1k tokens, limit 1.0.*data.phi.allow"):
        prepare(_recipe(tmp_path, notes), tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "cpt").exists()  # refused before any training row was written
    result = prepare(_recipe(tmp_path, notes, allow=True), tmp_path / "out", progress=False)
    phi = json.loads((tmp_path / "out" / "stats.json").read_text())["phi"]
    assert phi == result.stats["phi"] and phi["allowed"] is True and phi["documents"] == 40
    assert phi["by_type"]["MRN"] == 40 and phi["by_type"]["SSN"] > 0 and phi["per_1k_tokens"] > 1.0


def test_deidentified_notes_pass(tmp_path):
    """MIMIC-style notes whose identifiers are placeholders: counted as removed, nothing found, the stage runs."""
    notes = [f"{s} Admitted to [**Hospital1 {i}**] on [**2150-3-{i % 28 + 1}**]." for i, s in enumerate(CLINICAL[:10] * 8)]
    result = prepare(_recipe(tmp_path, notes), tmp_path / "out", progress=False)
    assert result.stats["phi"]["total"] == 0 and result.stats["phi"]["mimic_placeholders"] == 2 * len(notes)
