"""Decontamination: corpus documents sharing a 13-word n-gram with an evaluation example are dropped
(or flagged), counted per evaluation set."""

from __future__ import annotations

import json

from medllama.data import prepare
from medllama.data.decontam import Decontaminator, release_texts, words
from medllama.storage import local_path

from .helpers import small_recipe, synthetic_docs, write_jsonl

MEDQA = local_path("samples://eval/medqa/US/4_options/phrases_no_exclude_test.jsonl")
PUBMEDQA = local_path("samples://eval/pubmedqa/ori_pqal.json")


def test_matches_across_case_punctuation_and_spacing():
    dec = Decontaminator(n=5)
    dec.add_set("exam", ["The ECG shows ST elevation in leads II, III and aVF.", "too short here"])
    assert dec.matches("notes: the ecg  SHOWS st-elevation in leads ii") == {0}
    assert dec.matches("the ecg shows st depression in leads ii") == set()  # 4 shared words in a row only
    rep = dec.report()["exam"]
    assert rep["examples"] == 2 and rep["examples_too_short"] == 1 and rep["docs_matched"] == 1
    assert rep["matched_ids"] == [0]


def test_release_texts_reads_every_layout():
    medqa = release_texts(MEDQA)
    assert len(medqa) == 40 and "Hashimoto thyroiditis" in medqa[0] and "TSH is elevated" in medqa[0]
    pubmedqa = release_texts(PUBMEDQA)  # one JSON object keyed by PMID
    assert len(pubmedqa) == 39 and "walking program" in pubmedqa[0]
    assert len(release_texts(local_path("samples://eval/hoc"))) >= 12  # a release tree, file by file


def _planted(tmp_path):
    medqa = [json.loads(line) for line in MEDQA.read_text().splitlines()]
    pqal = json.loads(PUBMEDQA.read_text())
    first_pmid = next(iter(pqal))
    docs = synthetic_docs("biomedical", 200)
    planted = [
        "Case review. " + medqa[1]["question"] + " We discuss the anatomy.",  # whole question inside a document
        "Exam prep: " + medqa[1]["question"].upper(),  # the same example again, other case
        "Notes " + " ".join(pqal[first_pmid]["CONTEXTS"][0].split()[:14]) + " and more.",  # a 14-word span of a context
        "Short overlap " + b" ".join(words(medqa[2]["question"])[:12]).decode() + " only twelve words.",  # below 13: kept
    ]
    path = write_jsonl(tmp_path / "b.jsonl", docs[:100] + planted + docs[100:])
    return small_recipe([{"path": str(path), "domain": "biomedical"}])


def test_planted_examples_are_dropped_and_counted_per_set(tmp_path):
    res = prepare(_planted(tmp_path), tmp_path / "out", progress=False)
    s = res.stats
    assert s["domains"]["biomedical"]["drops"] == {"contaminated": 3}
    assert s["domains"]["biomedical"]["docs_kept"] == 201
    sets = s["decontamination"]["sets"]
    assert s["decontamination"]["mode"] == "drop" and s["decontamination"]["ngram_words"] == 13
    assert sets["medqa"]["docs_matched"] == 2 and sets["medqa"]["examples_matched"] == 1
    assert sets["pubmedqa"]["docs_matched"] == 1 and sets["pubmedqa"]["examples_matched"] == 1
    assert sets["medqa"]["examples"] == 40 and sets["pubmedqa"]["examples"] == 39
    flagged = [json.loads(line) for line in (res.output_dir / "contamination.jsonl").read_text().splitlines()]
    assert sorted(f["sets"][0] for f in flagged) == ["medqa", "medqa", "pubmedqa"]


def test_flag_mode_keeps_and_off_mode_skips(tmp_path):
    recipe = _planted(tmp_path)
    flagged = prepare(recipe, tmp_path / "flag", decontaminate="flag", progress=False).stats
    assert flagged["domains"]["biomedical"]["drops"] == {} and flagged["domains"]["biomedical"]["docs_kept"] == 204
    assert flagged["decontamination"]["sets"]["medqa"]["docs_matched"] == 2
    off = prepare(recipe, tmp_path / "off", decontaminate="off", progress=False).stats
    assert off["decontamination"]["sets"] == {} and off["domains"]["biomedical"]["docs_kept"] == 204
