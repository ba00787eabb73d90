"""Loaders read the bundled samples in the real release formats; parsers read messy generations."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from medllama.evaluate import TaskError, get_task, sample_data
from medllama.evaluate.tasks import TASKS
from medllama.evaluate.tasks.base import parse_letter
from medllama.storage import local_path

from medllama.storage import SAMPLES_DIR

EVAL_SAMPLES = SAMPLES_DIR / "eval"


def test_pubmedqa_scores_the_test_split_of_ori_pqal(tmp_path):
    """Only the PMIDs of test_ground_truth.json (the official 500 of 1,000), in its order; the split script's
    test_set.json is read whole; without either the task refuses rather than scoring every labelled question."""
    path = EVAL_SAMPLES / "pubmedqa" / "ori_pqal.json"
    raw = json.loads(path.read_text())
    truth = json.loads((path.parent / "test_ground_truth.json").read_text())
    examples = get_task("pubmedqa").load(path, None)
    assert len(examples) == len(truth) == 20 < len(raw)
    assert [e.id for e in examples] == list(truth)
    first = raw[examples[0].id]
    assert examples[0].question == first["QUESTION"] and examples[0].context == "\n".join(first["CONTEXTS"])
    assert [e.reference for e in examples] == list(truth.values())
    assert set(Counter(e.reference for e in examples)) == {"yes", "no", "maybe"}
    (tmp_path / "test_set.json").write_text(json.dumps({k: raw[k] for k in list(raw)[:3]}))
    assert [e.id for e in get_task("pubmedqa").load(tmp_path / "test_set.json", None)] == list(raw)[:3]
    (tmp_path / "ori_pqal.json").write_text(path.read_text())
    with pytest.raises(TaskError, match="test_ground_truth.json"):
        get_task("pubmedqa").load(tmp_path / "ori_pqal.json", None)
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"1": "yes"}))
    with pytest.raises(TaskError, match="not in it"):
        get_task("pubmedqa").load(tmp_path / "ori_pqal.json", None)
    assert all(first["LONG_ANSWER"] not in get_task("pubmedqa").render_input(e) for e in examples[:1])


def test_medqa_reads_us_4_options_jsonl():
    path = EVAL_SAMPLES / "medqa" / "US" / "4_options" / "phrases_no_exclude_test.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    examples = get_task("medqa").load(path, None)
    assert len(examples) == len(lines) >= 35
    assert [e.reference for e in examples] == [r["answer_idx"] for r in lines]
    assert all(e.options[e.reference] == r["answer"] for e, r in zip(examples, lines))
    assert set(Counter(e.reference for e in examples)) == {"A", "B", "C", "D"}
    assert get_task("medqa").load(path, 5) == examples[:5]


def test_medmcqa_cop_is_one_based():
    path = EVAL_SAMPLES / "medmcqa" / "dev.json"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    examples = get_task("medmcqa").load(path, None)
    assert len(examples) == len(lines)
    for e, r in zip(examples, lines):
        assert e.options[e.reference] == r[("opa", "opb", "opc", "opd")[r["cop"] - 1]]


def test_medmcqa_refuses_zero_based_cop(tmp_path):
    row = {"id": "x", "question": "q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}
    (tmp_path / "dev.json").write_text(json.dumps(row) + "\n")
    with pytest.raises(TaskError, match="1-4"):
        get_task("medmcqa").load(tmp_path / "dev.json", None)


def test_wrong_format_names_the_expected_file(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps([{"question": "q"}]))
    with pytest.raises(TaskError, match="ori_pqal.json"):
        get_task("pubmedqa").load(tmp_path / "x.json", None)


def test_mednli_reads_release_lines(tmp_path):
    rows = [{"sentence1": "The patient is afebrile.", "sentence2": "The patient has a fever.",
             "gold_label": "contradiction", "pairID": "p1"},
            {"sentence1": "Creatinine rose to 2.1.", "sentence2": "Kidney function worsened.",
             "gold_label": "entailment", "pairID": "p2"}]
    (tmp_path / "mli_test_v1.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    examples = get_task("mednli").load(tmp_path / "mli_test_v1.jsonl", None)
    assert [(e.id, e.reference) for e in examples] == [("p1", "contradiction"), ("p2", "entailment")]


def test_credentialed_data_is_never_bundled_and_says_where_to_get_it():
    with pytest.raises(TaskError, match="physionet.org"):
        sample_data("mednli")


def test_every_bundled_task_has_its_sample():
    for name, task in TASKS.items():
        if not task.access:
            assert local_path(sample_data(name)).exists()


def test_unknown_task_lists_known_ones():
    with pytest.raises(TaskError, match="pubmedqa"):
        get_task("nope")


@pytest.mark.parametrize("text,label", [
    ("The answer is (B).", "B"), ("B", "B"), ("c", "C"), ("(D)", "D"), ("Answer: a", "A"),
    ("C. Lisinopril", "C"), ("I would pick option D because", "D"), ("B: Graves disease", "B"),
    ("A 45-year-old man with", None), ("no idea", None), ("", None),
])
def test_parse_letter(text, label):
    assert parse_letter(text) == label


@pytest.mark.parametrize("text,label", [
    ("yes.", "yes"), ("Maybe", "maybe"), (" No, the study found no effect", "no"),
    ("The answer is yes because", "yes"), ("unclear", None), ("nobody knows", None),
])
def test_parse_pubmedqa(text, label):
    assert get_task("pubmedqa").parse(text) == label


def test_parse_mednli_verbs():
    assert get_task("mednli").parse("The premise contradicts it.") == "contradiction"
    assert get_task("mednli").parse("Neutral") == "neutral"
