"""Summarization tasks: release formats, ROUGE-L, generate-only scoring, credentialed MIMIC-CXR."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from medllama.evaluate import CredentialedDataError, TaskError, evaluate, get_task
from medllama.evaluate.tasks.mimiccxr import section
from medllama.recipe import EvalTask

REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  Cough for two weeks.

 FINDINGS:
 The lungs are clear without focal consolidation.  No pleural effusion or
 pneumothorax is seen.  Heart size is normal.

 IMPRESSION:
 No acute cardiopulmonary process.
"""


def test_rouge_l_equals_rouge_score():
    from medllama.evaluate.metrics import rouge_l

    refs, preds = ["the lungs are clear", "no acute process"], ["lungs clear", None]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    want = (scorer.score(refs[0], preds[0])["rougeL"].fmeasure + 0.0) / 2
    assert rouge_l(refs, preds)["rouge_l"] == pytest.approx(want)


def test_pubmedsum_reads_release_lines_and_strips_sentence_tags():
    from medllama.storage import SAMPLES_DIR

    examples = get_task("pubmedsum").load(SAMPLES_DIR / "eval" / "pubmedsum" / "test.txt", None)
    assert len(examples) == 15
    assert "<S>" not in examples[0].reference and examples[0].reference
    assert examples[0].context.startswith("This study asked")


def test_pubmedsum_runs_in_generate_mode_only(tiny_model):
    task = EvalTask(name="pubmedsum", data="samples://eval/pubmedsum/test.txt", limit=2, mode="generate")
    rep = evaluate(str(tiny_model), [task], batch_size=2)
    assert set(rep.metrics) == {"pubmedsum/rouge_l"} and 0.0 <= rep.metrics["pubmedsum/rouge_l"] <= 1.0
    assert all(s.correct is None and isinstance(s.output, str) for s in rep.tasks[0].samples)
    assert rep.tasks[0].decoding["max_new_tokens"] == 128  # capped at half the tiny model's 256 positions
    with pytest.raises(TaskError, match="mode: generate"):
        evaluate(str(tiny_model), [task.model_copy(update={"mode": "loglikelihood"})])


def test_mimic_cxr_sections_from_the_report_tree(tmp_path):
    study = tmp_path / "files" / "p10" / "p10000032" / "s50414267.txt"
    study.parent.mkdir(parents=True)
    study.write_text(REPORT)
    (study.parent / "s50000001.txt").write_text("FINDINGS: Stable.\n")  # no impression: skipped
    findings = section(REPORT, "FINDINGS")
    assert findings.startswith("The lungs are clear") and findings.endswith("Heart size is normal.")
    examples = get_task("mimic-cxr").load(tmp_path / "files", None)
    assert [(e.id, e.reference) for e in examples] == [("s50414267", "No acute cardiopulmonary process.")]


def test_mimic_cxr_missing_data_says_where_to_get_it(tiny_model, tmp_path):
    task = EvalTask(name="mimic-cxr", data=str(tmp_path / "nowhere"), mode="generate")
    with pytest.raises(CredentialedDataError, match="physionet.org/content/mimic-cxr"):
        evaluate(str(tiny_model), [task])


def test_credentialed_paper_datasets_say_where_to_get_them():
    from medllama.evaluate import sample_data

    for name in ("i2b2", "emrqa"):
        with pytest.raises(TaskError, match="DBMI Data Portal"):
            sample_data(name)
