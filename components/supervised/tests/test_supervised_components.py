"""The supervised components called directly with stand-in artifacts (the first tier; the pipeline test runs them
through kfp.local): the task list comes from the recipe, the report puts every task's two settings side by side."""

# no `from __future__ import annotations`: KFP reads the components' annotations as real types

import dataclasses
import json
from types import SimpleNamespace

from components.supervised.component import supervised_report, supervised_tasks
from medllama.supervised import SupervisedResult


def test_tasks_come_from_the_recipe():
    base = "models:/me-llama-tiny/3"
    assert supervised_tasks.python_func(recipe="tiny", overrides={}, base_version=base) == [
        {"dataset": "pubmedqa", "base_version": base}, {"dataset": "medqa", "base_version": base}]
    assert supervised_tasks.python_func(recipe="tiny", overrides={"supervised.tasks": []}, base_version=base) == []


def test_report_puts_every_task_side_by_side(tmp_path):
    results = []
    for task, zero, tuned in (("medqa", 0.25, 0.3), ("pubmedqa", 0.5, 0.4)):
        r = SupervisedResult(task, "base", None, "m", {f"{task}/accuracy": zero}, {f"{task}/accuracy": tuned},
                             {"train_examples": 60, "test_examples": 40, "ngram": 13, "dropped_same_input": 1,
                              "dropped_shared_ngram": 2, "test_examples_found": 3, "dropped": 3, "kept": 57},
                             {"steps": 8, "first_loss": 6.0, "final_loss": 5.0}, {})
        path = tmp_path / f"{task}.json"
        path.write_text(json.dumps(dataclasses.asdict(r)))
        results.append(SimpleNamespace(path=str(path), metadata={}))
    report = SimpleNamespace(path=str(tmp_path / "report.md"), metadata={})
    supervised_report.python_func(results=results[::-1], report=report)
    text = open(report.path).read()
    assert "| medqa | accuracy | 0.2500 | 0.3000 | +0.0500 |" in text
    assert "| pubmedqa | accuracy | 0.5000 | 0.4000 | -0.1000 |" in text
    assert text.index("| medqa | accuracy") < text.index("| pubmedqa | accuracy")
    assert "| pubmedqa | 60 | 1 | 2 | 3 of 40 | 8 | 6.000 → 5.000 |" in text
