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
    assert len(pubmedqa["samples"]) == pubmedqa["examples"] == 20 and raw["tasks"][2]["examples"] == 12
    assert pubmedqa["split"].startswith("test: the 500 PMIDs") and "### pubmedqa (20 examples" in rep.table()
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


def test_gate_compares_with_parent_and_base_and_can_say_no(tiny_model, other_tiny_model, tmp_path):
    """The candidate against its CPT parent and the recipe's original base (`model.base`), each score beside the
    paper's Table 3 value; a margin no model can reach refuses it, with the reasons in the KFP Markdown."""
    from medllama.steps import evaluate_step

    tasks = [{"name": "pubmedqa", "data": "samples://eval/pubmedqa/ori_pqal.json", "limit": 4},
             {"name": "medqa", "data": "samples://eval/medqa/US/4_options/phrases_no_exclude_test.jsonl", "limit": 4}]
    recipe = load_recipe("tiny", {"eval.tasks": tasks, "model.base": str(other_tiny_model), "eval.paper_size": "13b",
                                  "eval.tolerance": 0.0, "eval.margin": 0.5})
    out = evaluate_step(recipe, str(tiny_model), str(tiny_model), tmp_path / "results")
    assert not out.promote and set(out.references) == {"cpt_parent", "base_model"}
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["margin"] == 0.5 and summary["examples"] == {"pubmedqa": 4, "medqa": 4}
    assert summary["paper"]["candidate"]["pubmedqa/accuracy"] == 0.700  # Me-LLaMA-13B-chat
    assert summary["paper"]["base_model"]["pubmedqa/accuracy"] == 0.216  # LLaMA2-13B
    assert "**Decision: NOT promoted**" in out.markdown and "at least +0.5 better" in out.markdown
    assert "- vs cpt_parent: mean delta over 2 task(s) +0.0000, margin +0.5 -> block: below the margin" in out.markdown
    assert "vs base_model: mean delta" in out.markdown
    assert "| pubmedqa/accuracy | 4 |" in out.markdown and "| 0.700 |" in out.markdown
    candidate = json.loads((tmp_path / "results" / "candidate.json").read_text())
    assert candidate["paper"]["medqa/accuracy"] == 0.427 and candidate["tasks"][1]["paper"]["accuracy"] == 0.427


def test_paper_recipe_names_every_missing_dataset_before_loading_a_model(tmp_path, monkeypatch):
    """The 13B recipe configures all 13 datasets; with none present, one error names each and where to get it,
    before any model is read (the model paths do not exist either)."""
    from medllama.steps import evaluate_step

    monkeypatch.setenv("MEDLLAMA_EVAL_DATA", str(tmp_path / "eval"))
    recipe = load_recipe("me-llama-13b")
    assert {t.name for t in recipe.eval.tasks} == set(__import__("medllama.evaluate", fromlist=["TASKS"]).TASKS)
    assert {t.mode for t in recipe.eval.tasks} == {"generate"}
    with pytest.raises(CredentialedDataError) as err:
        evaluate_step(recipe, str(tmp_path / "no-model"), str(tmp_path / "no-model"), tmp_path / "results")
    text = str(err.value)
    assert text.startswith("13 evaluation dataset(s) missing")
    assert "github.com/pubmedqa/pubmedqa" in text and "physionet.org/content/mednli" in text
    # present but without the test split file: refused too, before any model
    (tmp_path / "eval" / "pubmedqa").mkdir(parents=True)
    (tmp_path / "eval" / "pubmedqa" / "ori_pqal.json").write_text((EVAL_SAMPLES / "pubmedqa" / "ori_pqal.json").read_text())
    with pytest.raises(CredentialedDataError, match="pubmedqa .*no test_ground_truth.json beside it"):
        evaluate_step(recipe, str(tmp_path / "no-model"), str(tmp_path / "no-model"), tmp_path / "results")
