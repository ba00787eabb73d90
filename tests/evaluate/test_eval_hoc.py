"""HoC: the release tree's sentence labels become an abstract's hallmark set, scored by multi-label macro-F1."""

from __future__ import annotations

import pytest
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

from medllama.evaluate import TaskError, evaluate, get_task, score_predictions
from medllama.evaluate.metrics import multilabel_metrics
from medllama.evaluate.tasks.hoc import LABELS, sentence_labels
from medllama.recipe import EvalTask
from medllama.storage import SAMPLES_DIR

HOC = SAMPLES_DIR / "eval" / "hoc"


def test_sentence_label_fields_as_released():
    field = "Sustaining proliferative signaling--Receptors ANDSustaining proliferative signaling--Growth factors "
    assert sentence_labels(field) == {"sustaining proliferative signaling"}
    assert sentence_labels("NULL ") == set() and sentence_labels(" ") == set()


def test_loader_unions_sentences_and_follows_the_split_file():
    examples = get_task("hoc").load(HOC, None)
    split = (HOC / "test_pmid.tsv").read_text().strip().split(",")
    assert [e.id + ".txt" for e in examples] == split and len(examples) == len(list((HOC / "text").iterdir())) - 1
    by_id = {e.id: e.reference for e in examples}
    assert by_id["99100079"] == "genomic instability and mutation; tumor promoting inflammation"
    assert by_id["99100131"] == ""  # an abstract with no hallmark


def test_unknown_hallmark_is_refused(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "text" / "1.txt").write_text("One sentence.\n")
    (tmp_path / "labels" / "1.txt").write_text("<Making things up--Sub ")
    with pytest.raises(TaskError, match="unknown hallmark"):
        get_task("hoc").load(tmp_path, None)


def test_multilabel_macro_f1_equals_sklearn():
    refs = ["inducing angiogenesis; resisting cell death", "", "cellular energetics", "resisting cell death"]
    preds = ["inducing angiogenesis", "resisting cell death", None, "resisting cell death"]
    mlb = MultiLabelBinarizer(classes=list(LABELS))
    split = [[x for x in (s or "").split("; ") if x] for s in (refs + preds)]
    y = mlb.fit_transform(split[:4])
    p = mlb.transform(split[4:])
    m = multilabel_metrics(refs, preds, LABELS)
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert m["accuracy"] == pytest.approx(1 / 4)


def test_parse_names_and_keywords():
    parse = get_task("hoc").parse
    both = "evading growth suppressors; inducing angiogenesis"
    assert parse("Inducing angiogenesis; evading growth suppressors.") == both
    assert parse("It is about metastasis.") == "activating invasion and metastasis"
    assert parse("none") == ""


def test_generate_only_and_rescoring(tiny_model, tmp_path):
    task = EvalTask(name="hoc", data="samples://eval/hoc", limit=3, mode="generate")
    rep = evaluate(str(tiny_model), [task], batch_size=3, output=str(tmp_path / "hoc.json"))
    assert set(rep.metrics) == {"hoc/accuracy", "hoc/macro_f1"}
    assert rep.tasks[0].data_sha256.keys() == {"hoc"}
    assert score_predictions("hoc", tmp_path / "hoc.predictions" / "hoc.jsonl") == rep.metrics
    with pytest.raises(TaskError, match="mode: generate"):
        evaluate(str(tiny_model), [task.model_copy(update={"mode": "loglikelihood"})])
