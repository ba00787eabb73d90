"""Decontamination: corpus documents sharing a 13-word n-gram with an evaluation example are dropped
(or flagged), counted per evaluation set."""

from __future__ import annotations

import json
import subprocess
import sys

from medllama.data import prepare
from medllama.data.decontam import Decontaminator, words
from medllama.evaluate.tasks import example_texts
from medllama.recipe import EvalTask
from medllama.storage import local_path

from .helpers import small_recipe, synthetic_docs, write_jsonl, write_jsonl_records

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


def _texts(name: str, data: str) -> list[str]:
    return example_texts(EvalTask(name=name, data=data))


def test_every_release_format_gives_one_text_per_example():
    """The task loaders' text view: one text per scored example, never one per file (DDI XML: a drug pair;
    CSV: a row; JSON: a PubMedQA test question; JSONL: a line; HoC's tree: an abstract of the split)."""
    medqa = _texts("medqa", "samples://eval/medqa/US/4_options/phrases_no_exclude_test.jsonl")  # JSONL
    assert len(medqa) == 40 and "Hashimoto thyroiditis" in medqa[0] and "TSH is elevated" in medqa[0]
    pubmedqa = _texts("pubmedqa", "samples://eval/pubmedqa/ori_pqal.json")  # JSON keyed by PMID, test split
    assert len(pubmedqa) == 20 and "walking program" in pubmedqa[0]
    ddi = _texts("ddi2013", "samples://eval/ddi2013/Test/test_for_ddi_extraction_task")  # XML: 3 files, 13 pairs
    assert len(ddi) == 13 and ddi[0].startswith("Zentrafen and ketoconazole\n")
    assert len(_texts("mtsample", "samples://eval/mtsample/mtsamples.csv")) == 11  # CSV rows with a transcription
    assert len(_texts("bionli", "samples://eval/bionli/test.csv")) == 8
    assert len(_texts("hoc", "samples://eval/hoc")) == 11  # the abstracts named in test_pmid.tsv
    assert len(_texts("pubmedsum", "samples://eval/pubmedsum/test.txt")) == 15


def test_the_text_view_needs_no_torch():
    code = ("import sys, medllama.data.decontam, medllama.evaluate.tasks as t; from medllama.recipe import EvalTask; "
            "t.example_texts(EvalTask(name='medqa', data='samples://eval/medqa')); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_instruction_examples_are_decontaminated_too(tmp_path):
    """An instruction whose input is a test question is dropped from the SFT rows, counted per set with its share."""
    medqa = [json.loads(line) for line in MEDQA.read_text().splitlines()]
    records = [{"instruction": "Answer the question.", "input": medqa[3]["question"], "output": medqa[3]["answer"]},
               *({"instruction": f"Say something about item {i}.", "output": f"Item {i} is fine."} for i in range(9))]
    inst = write_jsonl_records(tmp_path / "inst.jsonl", records)
    docs = write_jsonl(tmp_path / "b.jsonl", synthetic_docs("biomedical", 200))
    stats = prepare(small_recipe([{"path": str(docs), "domain": "biomedical"}], [str(inst)]), tmp_path / "out",
                    progress=False).stats
    assert stats["sft"]["drops"] == {"contaminated": 1} and stats["sft"]["rows"] == 9
    dec = stats["sft"]["decontamination"]
    assert dec["examples_matched"] == 1 and dec["share"] == 0.1
    assert dec["sets"]["medqa"] == {"instructions_matched": 1, "test_examples_found": 1, "test_share": 0.025}
    assert dec["sets"]["pubmedqa"]["instructions_matched"] == 0


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
    assert sets["medqa"]["examples"] == 40 and sets["pubmedqa"]["examples"] == 20
    assert sets["medqa"]["share"] == 1 / 40 and sets["pubmedqa"]["share"] == 1 / 20
    flagged = [json.loads(line) for line in (res.output_dir / "contamination.jsonl").read_text().splitlines()]
    assert sorted(f["sets"][0] for f in flagged) == ["medqa", "medqa", "pubmedqa"]


def test_flag_mode_keeps_and_off_mode_skips(tmp_path):
    recipe = _planted(tmp_path)
    flagged = prepare(recipe, tmp_path / "flag", decontaminate="flag", progress=False).stats
    assert flagged["domains"]["biomedical"]["drops"] == {} and flagged["domains"]["biomedical"]["docs_kept"] == 204
    assert flagged["decontamination"]["sets"]["medqa"]["docs_matched"] == 2
    off = prepare(recipe, tmp_path / "off", decontaminate="off", progress=False).stats
    assert off["decontamination"]["sets"] == {} and off["domains"]["biomedical"]["docs_kept"] == 204
