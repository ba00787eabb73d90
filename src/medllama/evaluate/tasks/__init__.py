"""Benchmark tasks by name: one module per dataset, each reading the dataset's own release format."""

from __future__ import annotations

from pathlib import Path

from medllama import storage
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


def task_data(task: Task, uri: str) -> Path:
    """The local data for a task's URI: the file (or report tree) itself, or the release file inside a directory."""
    try:
        path = storage.fetch(uri)
    except storage.StorageError as e:
        where = task.access or (f"Where to get it: {task.source}" if task.source else "")
        raise (CredentialedDataError if task.access else storage.StorageError)(f"{task.name}: {e}. {where}") from None
    if path.is_dir() and (path / task.release_file).exists():
        path = path / task.release_file
    elif path.is_dir() and Path(task.release_file).suffix:
        raise storage.StorageError(f"{uri}: no {task.release_file} inside; point to the {task.name} release file")
    return path


def example_texts(spec) -> list[str]:
    """One text per example of an evaluation set (`recipe.eval.tasks[i]`), read by the task's own loader
    whatever the release format (XML pairs, CSV rows, JSON records, JSONL lines, a tree of text files); the
    whole scored split, whatever the spec's `limit`."""
    task = get_task(spec.name)
    return [task.text_view(ex) for ex in task.load(task_data(task, spec.data), None)]


def locate_all(specs) -> dict[str, Path]:
    """Every task's local data (`recipe.eval.tasks`), checked before any model loads (present, and its first
    example readable); one error names every missing or unreadable dataset and where to obtain it."""
    found, missing, credentialed = {}, [], False
    for spec in specs:
        try:
            task = get_task(spec.name)
            found[spec.name] = task_data(task, spec.data)
            task.load(found[spec.name], 1)  # a release file of the wrong format, or a missing split file
        except (storage.StorageError, CredentialedDataError, TaskError) as e:
            missing.append(f"- {e}")
            credentialed |= isinstance(e, CredentialedDataError)
    if missing:
        text = f"{len(missing)} evaluation dataset(s) missing or unreadable:\n" + "\n".join(missing)
        raise (CredentialedDataError if credentialed else storage.StorageError)(text)
    return found


__all__ = ["TASKS", "CredentialedDataError", "Example", "Task", "TaskError", "example_texts", "get_task", "locate_all",
           "task_data"]
