"""EmrQA, i2b2, DDI 2013, MTSample, BioNLI and clinical cases: release formats, parsers, and metrics equal to
the reference libraries (scikit-learn, seqeval) or to hand-computed values on cases with known answers."""

from __future__ import annotations

import json

import pytest
import seqeval.metrics as seqeval_metrics
from sklearn.metrics import f1_score

from medllama.evaluate import TaskError, evaluate, get_task, sample_data, score_cli
from medllama.evaluate.metrics import extractive_qa_metrics, ner_metrics, token_f1
from medllama.evaluate.tasks.clinical_cases import Matcher, make_task, topk_metrics
from medllama.recipe import EvalTask
from medllama.storage import local_path

# A note written for this test (fictional), in the 2012 i2b2 layout; the second EVENT's offsets are one too high,
# as in parts of the release, and its text carries an unescaped quote-free "&" the way the release does.
I2B2_NOTE = """<?xml version="1.0" encoding="UTF-8" ?>
<ClinicalNarrativeTemporalAnnotation>
<TEXT><![CDATA[Admission Date :
Patient had chest pain & fever .
A chest x-ray was normal .
]]></TEXT>
<TAGS>
<EVENT id="E0" start="0" end="9" text="Admission" modality="FACTUAL" polarity="POS" type="OCCURRENCE" />
<EVENT id="E1" start="29" end="39" text="chest pain" modality="FACTUAL" polarity="POS" type="PROBLEM" />
<EVENT id="E2" start="42" end="47" text="fever" modality="FACTUAL" polarity="POS" type="PROBLEM" />
<EVENT id="E3" start="51" end="62" text="A chest x-ray" modality="FACTUAL" polarity="POS" type="TEST" />
<TIMEX3 id="T0" start="0" end="5" text="today" type="DATE" val="2012" mod="NA" />
</TAGS>
</ClinicalNarrativeTemporalAnnotation>
"""


@pytest.fixture
def i2b2_dir(tmp_path):
    (tmp_path / "ground_truth").mkdir()
    (tmp_path / "ground_truth" / "901.xml").write_text(I2B2_NOTE)
    return tmp_path


def test_i2b2_note_to_word_bio(i2b2_dir):
    examples = get_task("i2b2").load(i2b2_dir / "ground_truth", None)
    assert [e.context for e in examples] == ["Admission Date :", "Patient had chest pain & fever .",
                                            "A chest x-ray was normal ."]
    assert [e.reference for e in examples] == ["B-OCCURRENCE O O", "O O B-PROBLEM I-PROBLEM O B-PROBLEM O",
                                              "B-TEST I-TEST I-TEST O O O"]


def test_i2b2_entity_lines_become_tags_of_the_sentence(i2b2_dir):
    ex = get_task("i2b2").load(i2b2_dir, None)[1]
    out = "chest pain, problem\nFever, Problem\nsomething, not-a-type\nnone"
    assert get_task("i2b2").read(out, ex) == "O O B-PROBLEM I-PROBLEM O B-PROBLEM O"
    assert get_task("i2b2").read("none", ex) == "O O O O O O O"


def test_ner_macro_f1_equals_seqeval():
    refs = ["B-PROBLEM I-PROBLEM O B-TEST", "B-TREATMENT O O O", "O B-PROBLEM O O"]
    preds = ["B-PROBLEM I-PROBLEM O O", "B-TREATMENT O B-TEST O", "O B-PROBLEM I-PROBLEM O"]
    want = seqeval_metrics.f1_score([r.split() for r in refs], [p.split() for p in preds], average="macro")
    # by hand: PROBLEM 1 of 2 right (P 1/2, R 1/2, F1 0.5), TEST 0, TREATMENT 1 -> (0.5 + 0 + 1) / 3
    assert ner_metrics(refs, preds)["macro_f1"] == pytest.approx(want) == pytest.approx(0.5)
    assert ner_metrics(refs, [None, None, None])["macro_f1"] == 0.0  # unparsed: no entities found


def test_i2b2_is_credentialed_and_parse_needs_the_input(tmp_path):
    with pytest.raises(TaskError, match="DBMI Data Portal"):
        sample_data("i2b2")
    with pytest.raises(TaskError, match="no .xml"):
        get_task("i2b2").load(tmp_path, None)
    with pytest.raises(TaskError, match="sentence"):
        get_task("i2b2").parse("pain, problem")


def test_i2b2_generate_mode_end_to_end(tiny_model, i2b2_dir):
    rep = evaluate(str(tiny_model), [EvalTask(name="i2b2", data=str(i2b2_dir), mode="generate")], batch_size=3)
    assert set(rep.metrics) == {"i2b2/macro_f1"}
    for s in rep.tasks[0].samples:
        assert len(s.prediction.split()) == len(s.reference.split())


def squad_release(tmp_path, raw: bool):
    """A tiny emrQA file: the generator's raw layout (lists) or its SQuAD export (strings)."""
    lines = ["Patient is a 60 year old man .", "He was started on aspirin 81 mg daily ."]
    par = {"note_id": "n1", "context": lines if raw else " ".join(lines), "qas": [
        {"id": [["q1", "f1"]] if raw else "q1", "question": ["Is he on aspirin ?", "aspirin ?"] if raw else
         "Is he on aspirin ?", "answers": [{"answer_start": [1, 4], "text": "aspirin 81 mg", "evidence": lines[1]},
                                           {"answer_start": [1, 4], "text": "aspirin"}]},
        {"id": "q2", "question": "Unanswerable ?", "answers": []}]}
    (tmp_path / "data.json").write_text(json.dumps({"data": [{"title": "medication", "paragraphs": [par]}]}))
    return tmp_path / "data.json"


@pytest.mark.parametrize("raw", [True, False])
def test_emrqa_reads_both_release_layouts(tmp_path, raw):
    (ex,) = get_task("emrqa").load(squad_release(tmp_path, raw), None)
    assert ex.question == "Is he on aspirin ?" and ex.reference == "aspirin 81 mg\naspirin"
    assert "started on aspirin" in ex.context


def test_emrqa_exact_match_and_token_f1_by_hand():
    refs = ["aspirin 81 mg\naspirin", "metoprolol", "the chest x-ray"]
    preds = ["Aspirin.", "metoprolol 25 mg", None]
    m = extractive_qa_metrics(refs, preds)
    # 1: exact with the 2nd gold (case, punctuation); 2: P 1/3, R 1 -> F1 0.5; 3: nothing
    assert m == {"accuracy": pytest.approx(1 / 3), "f1": pytest.approx((1 + 0.5 + 0) / 3)}
    # articles and punctuation go: gold [chest, xray, film], prediction [chest, xray] -> P 1, R 2/3, F1 0.8
    assert token_f1("The chest x-ray film", "chest xray") == pytest.approx(0.8)


def test_ddi_reads_release_xml_and_macro_f1_equals_sklearn():
    task = get_task("ddi2013")
    examples = task.load(local_path(sample_data("ddi2013")), None)
    assert len(examples) == 13 and {e.reference for e in examples} == set(task.labels)
    first = examples[0]
    assert first.id == "DDI-DrugBank.d901.s0.p0" and first.question == "Zentrafen and ketoconazole"
    refs = [e.reference for e in examples]
    preds = ["mechanism"] * 5 + [None] + ["effect"] * 7
    # the shared task's convention: macro over the four interaction types, "none" is not a class
    types = ["mechanism", "effect", "advise", "int"]
    want = f1_score(refs, [p or "<unparsed>" for p in preds], labels=types, average="macro", zero_division=0)
    assert task.metrics(refs, preds, task.labels) == {"macro_f1": pytest.approx(want)}
    assert want != pytest.approx(f1_score(refs, [p or "<unparsed>" for p in preds], labels=list(task.labels),
                                          average="macro", zero_division=0))
    # every "none" pair right, no type found: 0, not the 0.2 a five-class average would give
    assert task.metrics(["none", "effect"], ["none", "none"], task.labels) == {"macro_f1": 0.0}
    assert task.parse("There is an interaction.") == "int" and task.parse("Advise: avoid") == "advise"


def test_mtsample_reads_csv_skips_empty_and_scores_dataset_labels():
    task = get_task("mtsample")
    examples = task.load(local_path(sample_data("mtsample")), None)
    assert len(examples) == 11 and examples[0].reference == "Cardiovascular / Pulmonary"
    assert all(e.reference in task.labels for e in examples)
    refs = [e.reference for e in examples]
    preds = [task.parse(f"This is a {r.lower()} note") for r in refs[:6]] + ["Surgery"] * 5
    assert preds[:6] == refs[:6]
    want = f1_score(refs, preds, labels=sorted(set(refs)), average="macro", zero_division=0)
    assert task.metrics(refs, preds, task.labels) == {"macro_f1": pytest.approx(want)}
    assert task.parse("Specialty: ENT - Otolaryngology.") == "ENT - Otolaryngology"
    assert task.parse("no idea") is None


def test_bionli_reads_release_csv(tmp_path):
    task = get_task("bionli")
    examples = task.load(local_path(sample_data("bionli")), None)
    assert [e.reference for e in examples[:2]] == ["entailment", "contradiction"] and len(examples) == 8
    (tmp_path / "hf.csv").write_text("premise,hypothesis,label\nP,H,1\nP,H2,0\n")
    assert [e.reference for e in task.load(tmp_path / "hf.csv", None)] == ["entailment", "contradiction"]
    (tmp_path / "bad.csv").write_text("supp_set,conclusion,label_cat\nP,H,maybe\n")
    with pytest.raises(TaskError, match="pos/neg"):
        task.load(tmp_path / "bad.csv", None)
    assert task.parse("The premise contradicts it") == "contradiction"


def test_clinical_case_matchers_and_topk():
    accepted = ["Parkinson disease", "Idiopathic parkinsonism"]
    assert Matcher("exact")("parkinson  disease.", accepted)
    assert not Matcher("exact")("idiopathic parkinsonism", accepted)
    assert Matcher("synonym")("Idiopathic Parkinsonism", accepted)
    assert Matcher("fuzzy", 0.85)("Parkinsons disease", accepted) and not Matcher("synonym")("Parkinsons disease",
                                                                                              accepted)
    with pytest.raises(TaskError, match="matcher"):
        Matcher("regex")
    refs = ["Hypothyroidism\nUnderactive thyroid", "DKA\nDiabetic ketoacidosis", "Lupus"]
    preds = ["Hypothyroidism\nAnemia", "Sepsis\nDiabetic ketoacidosis", "Gout\nPseudogout\nRA\nOA\nPsoriasis\nLupus"]
    assert topk_metrics(refs, preds, ks=(1, 5)) == {"top1_accuracy": pytest.approx(1 / 3),
                                                     "top5_accuracy": pytest.approx(2 / 3)}
    assert topk_metrics(refs, preds, ks=(6,))["top6_accuracy"] == 1.0


def test_clinical_cases_sample_and_parser():
    task = get_task("clinical-cases")
    examples = task.load(local_path(sample_data("clinical-cases")), None)
    assert len(examples) == 8 and examples[0].reference.split("\n")[0] == "Hypothyroidism"
    assert task.parse("1. Sarcoidosis.\n2) Tuberculosis\n- Lymphoma") == "Sarcoidosis\nTuberculosis\nLymphoma"
    assert make_task("fuzzy", ks=(1, 3)).metrics(["Gout"], ["1. gouty"], ()) == {"top1_accuracy": 0.0,
                                                                                  "top3_accuracy": 0.0}


def write_predictions(path, rows):
    path.write_text("\n".join(json.dumps({"prediction": p, "reference": r}) for p, r in rows) + "\n")
    return str(path)


def test_score_cli_reads_every_answer_form(tmp_path):
    label = write_predictions(tmp_path / "ddi.jsonl", [("effect", "effect"), ("The answer is advise.", "advise")])
    assert score_cli("ddi2013", label) == {"ddi2013/macro_f1": pytest.approx(f1_score(
        ["effect", "advise"], ["effect", "advise"], labels=["mechanism", "effect", "advise", "int"],
        average="macro", zero_division=0))}
    labels = write_predictions(tmp_path / "hoc.jsonl", [(["inducing angiogenesis"], ["inducing angiogenesis"])])
    assert score_cli("hoc", labels)["hoc/accuracy"] == 1.0
    tags = write_predictions(tmp_path / "i2b2.jsonl", [(["B-TEST", "O"], "B-TEST O"), ("O O", ["B-TEST", "O"])])
    assert score_cli("i2b2", tags)["i2b2/macro_f1"] == pytest.approx(
        seqeval_metrics.f1_score([["B-TEST", "O"]] * 2, [["B-TEST", "O"], ["O", "O"]], average="macro"))
    bad = write_predictions(tmp_path / "bad.jsonl", [("chest pain, problem", "B-PROBLEM I-PROBLEM")])
    with pytest.raises(TaskError, match="bad.jsonl:1: .*BIO tags"):
        score_cli("i2b2", bad)
    texts = write_predictions(tmp_path / "emrqa.jsonl", [("aspirin", ["aspirin 81 mg", "aspirin"])])
    assert score_cli("emrqa", texts) == {"emrqa/accuracy": 1.0, "emrqa/f1": 1.0}
    ranked = write_predictions(tmp_path / "cases.jsonl", [(["Gout", "Lupus"], ["SLE", "Lupus"])])
    assert score_cli("clinical-cases", ranked) == {"clinical-cases/top1_accuracy": 0.0,
                                                   "clinical-cases/top5_accuracy": 1.0,
                                                   "clinical-cases/top10_accuracy": 1.0}
