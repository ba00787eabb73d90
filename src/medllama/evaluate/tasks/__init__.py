"""Benchmark tasks by name: one module per dataset, each reading the dataset's own release format."""

from __future__ import annotations

from medllama.evaluate.tasks import (bionli, clinical_cases, ddi2013, emrqa, hoc, i2b2, medmcqa, mednli, medqa,
                                    mimiccxr, mtsample, pubmedqa, pubmedsum)
from medllama.evaluate.tasks.base import CredentialedDataError, Example, Task, TaskError

# the paper's 12 datasets (Table 3 order) and complex clinical case diagnosis
TASKS: dict[str, Task] = {t.name: t for t in (
    pubmedqa.TASK, medqa.TASK, medmcqa.TASK, emrqa.TASK, i2b2.TASK, ddi2013.TASK, hoc.TASK, mtsample.TASK,
    pubmedsum.TASK, mimiccxr.TASK, bionli.TASK, mednli.TASK, clinical_cases.TASK)}


def get_task(name: str) -> Task:
    key = name.lower()
    if key in TASKS:
        return TASKS[key]
    raise TaskError(f"unknown evaluation task {name!r}; known tasks: {sorted(TASKS)}")


__all__ = ["TASKS", "CredentialedDataError", "Example", "Task", "TaskError", "get_task"]
