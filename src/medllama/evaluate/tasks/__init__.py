"""Benchmark tasks by name: one module per dataset, each reading the dataset's own release format."""

from __future__ import annotations

from medllama.evaluate.tasks import hoc, medmcqa, mednli, medqa, mimiccxr, pubmedqa, pubmedsum
from medllama.evaluate.tasks.base import CredentialedDataError, Example, Task, TaskError

TASKS: dict[str, Task] = {t.name: t for t in (pubmedqa.TASK, medqa.TASK, medmcqa.TASK, mednli.TASK,
                                              pubmedsum.TASK, mimiccxr.TASK, hoc.TASK)}

# Benchmark datasets of the paper (MIBE) without a task module yet: what the error says about each.
NOT_YET = {
    "i2b2": "2012 i2b2 is credentialed data from the n2c2 collection on the DBMI Data Portal "
            "(https://portal.dbmi.hms.harvard.edu/, data use agreement required); its NER task is not implemented yet",
    "emrqa": "emrQA is built from n2c2 notes (DBMI Data Portal, data use agreement required); not implemented yet",
    "ddi2013": "DDI 2013 relation extraction is not implemented yet",
    "mtsample": "MTSample specialty classification is not implemented yet",
    "bionli": "BioNLI is not implemented yet",
}


def get_task(name: str) -> Task:
    key = name.lower()
    if key in TASKS:
        return TASKS[key]
    if key in NOT_YET:
        raise TaskError(f"task {name!r}: {NOT_YET[key]}; implemented tasks: {sorted(TASKS)}")
    raise TaskError(f"unknown evaluation task {name!r}; known tasks: {sorted(TASKS)}")


__all__ = ["TASKS", "CredentialedDataError", "Example", "Task", "TaskError", "get_task"]
