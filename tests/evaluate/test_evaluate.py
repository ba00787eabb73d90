"""evaluate() end to end on the bundled samples with a tiny random model; re-scoring without a model."""

from __future__ import annotations

import json

import pytest

from medllama.evaluate import (CredentialedDataError, EvalReport, TaskError, evaluate, evaluate_cli, get_task,
                               score_cli, score_predictions)
from medllama.evaluate.report import Sample
from medllama.recipe import EvalTask, load_recipe
from medllama.storage import sha256_file, sha256_tree

from medllama.storage import SAMPLES_DIR

EVAL_SAMPLES = SAMPLES_DIR / "eval"


@pytest.fixture(scope="module")
def report(tiny_model, tmp_path_factory) -> tuple[EvalReport, object]:
    out = tmp_path_factory.mktemp("eval")
    tasks = load_recipe("tiny").eval.tasks + [EvalTask(name="medmcqa", data="samples://eval/medmcqa/dev.json",
                                                       limit=12)]
    return evaluate(str(tiny_model), tasks, batch_size=4, output=str(out / "candidate.json")), out


def test_metrics_are_flat_task_keys(report):
    rep, _ = report
    assert set(rep.metrics) == {f"{t}/{m}" for t in ("pubmedqa", "medqa", "medmcqa") for m in ("accuracy", "macro_f1")}
    assert all(0.0 <= v <= 1.0 for v in rep.metrics.values())


def test_prediction_is_the_option_with_highest_loglikelihood(report):
    rep, _ = report
    for task in rep.tasks:
        for s in task.samples:
            assert s.prediction == max(s.scores, key=s.scores.get)
            assert s.correct == (s.prediction == s.reference)
        acc = sum(s.correct for s in task.samples) / len(task.samples)
        assert task.metrics["accuracy"] == pytest.approx(acc)


def test_results_json_records_what_reproduces_the_run(report, tiny_model):
    rep, out = report
    raw = json.loads((out / "candidate.json").read_text())
    assert raw["model_sha256"] == sha256_tree(tiny_model)
    assert raw["seed"] == 1234 and {"torch", "transformers", "medllama"} <= set(raw["versions"])
    pubmedqa = raw["tasks"][0]
    assert pubmedqa["data_sha256"] == {"ori_pqal.json": sha256_file(EVAL_SAMPLES / "pubmedqa" / "ori_pqal.json")}
    assert "{instruction}" in pubmedqa["template"] and pubmedqa["mode"] == "loglikelihood"
    assert pubmedqa["decoding"]["share_prompt"] is True
    assert len(pubmedqa["samples"]) == 39 and len(raw["tasks"][2]["samples"]) == 12
    row = pubmedqa["samples"][0]
    assert {"id", "prompt", "scores", "prediction", "reference", "correct"} <= set(row)
    assert row["prompt"].startswith("### Instruction:") and set(row["scores"]) == {"yes", "no", "maybe"}
    assert raw["metrics"] == rep.metrics
    assert EvalReport.from_json(out / "candidate.json").metrics == rep.metrics
    assert "| accuracy |" in (out / "candidate.md").read_text() and "### medqa" in rep.table()


def test_saved_predictions_rescore_to_the_same_metrics(report):
    rep, out = report
    for task in rep.tasks:
        rescored = score_predictions(task.name, out / "candidate.predictions" / f"{task.name}.jsonl")
        assert rescored == {f"{task.name}/{k}": v for k, v in task.metrics.items()}


def test_generate_mode_runs_and_parses(tiny_model):
    rep = evaluate(str(tiny_model), [EvalTask(name="pubmedqa", data="samples://eval/pubmedqa/ori_pqal.json",
                                              limit=5, mode="generate")], batch_size=2)
    task = rep.tasks[0]
    assert task.decoding["strategy"] == "greedy" and len(task.samples) == 5
    for s in task.samples:
        assert isinstance(s.output, str) and s.scores is None
        assert s.prediction == get_task("pubmedqa").parse(s.output)
        assert s.correct == (s.prediction == s.reference)


def test_score_predictions_parses_raw_generations(tmp_path):
    rows = [{"prediction": "The answer is (B).", "reference": "B"}, {"prediction": "A", "reference": "A"},
            {"prediction": "I am not sure", "reference": "C"}, {"prediction": None, "reference": "D"}]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(map(json.dumps, rows)) + "\n")
    m = score_cli("medqa", str(path))
    assert m["medqa/accuracy"] == 0.5
    assert m["medqa/macro_f1"] == pytest.approx(0.5)  # A and B: F1 1; C and D: never predicted


def test_cli_defaults_to_the_bundled_samples(tiny_model, tmp_path):
    metrics = evaluate_cli(str(tiny_model), "pubmedqa,medqa", limit=3, output=str(tmp_path / "out"))
    assert set(metrics) == {"pubmedqa/accuracy", "pubmedqa/macro_f1", "medqa/accuracy", "medqa/macro_f1"}
    assert (tmp_path / "out" / "results.json").is_file()
    assert (tmp_path / "out" / "results.predictions" / "medqa.jsonl").is_file()


def test_credentialed_task_without_data_says_where_to_get_it(tiny_model, tmp_path):
    with pytest.raises(CredentialedDataError, match="PhysioNet.*eval.tasks"):
        evaluate(str(tiny_model), [EvalTask(name="mednli", data=str(tmp_path / "missing.jsonl"))])


def test_a_task_appears_once(tiny_model):
    task = EvalTask(name="medqa", data="samples://eval/medqa/US/4_options/phrases_no_exclude_test.jsonl")
    with pytest.raises(TaskError, match="once"):
        evaluate(str(tiny_model), [task, task.model_copy(update={"mode": "generate"})])


def test_directory_data_finds_the_release_file(tiny_model):
    rep = evaluate(str(tiny_model), [EvalTask(name="medqa", data="samples://eval/medqa", limit=2)])
    assert len(rep.tasks[0].samples) == 2


def test_sample_roundtrip():
    s = Sample("1", "p", "A", None, False, output="x")
    assert Sample(**s.__dict__) == s


def test_evaluate_step_reports_test_set_overlap_beside_the_scores(tiny_model, tmp_path):
    """Given the prepare stats, each task's score is reported with how much of its test set the training
    corpus contained, in summary.json and in the KFP Markdown report."""
    from medllama.steps import evaluate_step

    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"decontamination": {"mode": "drop", "ngram_words": 13, "sets": {
        "pubmedqa": {"examples": 39, "examples_too_short": 0, "docs_matched": 5, "examples_matched": 3},
        "medqa": {"examples": 40, "examples_too_short": 0, "docs_matched": 0, "examples_matched": 0}}}}))
    recipe = load_recipe("tiny", {"eval.tasks": [{"name": "pubmedqa", "data": "samples://eval/pubmedqa/ori_pqal.json", "limit": 4},
                                                 {"name": "medqa", "data": "samples://eval/medqa/US/4_options/phrases_no_exclude_test.jsonl", "limit": 4}]})
    out = evaluate_step(recipe, str(tiny_model), str(tiny_model), tmp_path / "results", data_stats=stats)
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["contamination"]["pubmedqa"] == {"examples": 39, "examples_in_corpus": 3, "share": 3 / 39,
                                                    "documents": 5, "documents_were": "dropped"}
    assert summary["contamination"]["medqa"]["share"] == 0.0
    assert out.contamination == summary["contamination"]
    assert "| pubmedqa | 39 | 3 | 7.7% | 5 (dropped) |" in out.markdown
    assert out.promote  # the same model on both sides is never worse than itself
