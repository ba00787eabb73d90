"""Evaluate a saved model on benchmark tasks, or re-score saved predictions without a model."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from medllama import storage
from medllama.evaluate.metrics import Metrics
from medllama.evaluate.report import EvalReport, Sample, TaskResult, library_versions
from medllama.evaluate.scoring import (LoadedModel, encode_continuation, encode_prompt, fit, generate, load_model,
                                       loglikelihoods)
from medllama.evaluate.tasks import Example, Task, TaskError, get_task, locate_all
from medllama.recipe import DataSpec, EvalTask

log = logging.getLogger(__name__)

# The instruction-tuning template, so the candidate is asked the way it was taught to answer.
DEFAULT_TEMPLATE: str = DataSpec.model_fields["prompt_template"].default


def evaluate(model_dir: str, tasks: list[EvalTask], batch_size: int = 8, output: str | None = None, seed: int = 1234,
             template: str = DEFAULT_TEMPLATE, share_prompt: bool = True, device: str | None = None,
             paper: dict[str, float] | None = None) -> EvalReport:
    """Score the model in `model_dir` (local path or s3://) on each task; write results under `output` if given.
    `paper`: the published figure of each "task/metric" for this model (`paper.paper_scores`), set beside ours."""
    t0 = time.perf_counter()
    data = _resolve(tasks)  # a missing or credentialed file fails here, before the model loads
    local = storage.fetch(model_dir)
    lm = load_model(local, device=device)
    report = EvalReport(model_dir=str(model_dir), model_sha256=storage.sha256_tree(local), seed=seed,
                        versions=library_versions(), device=f"{lm.device.type}/{str(lm.dtype).removeprefix('torch.')}")
    for spec in tasks:
        torch.manual_seed(seed)
        report.tasks.append(_run_task(lm, spec, data[spec.name], batch_size, template, share_prompt, paper or {}))
        log.info("%s: %s", spec.name, report.tasks[-1].metrics)
    report.wall_s = round(time.perf_counter() - t0, 3)
    if output:
        report.save(output)
    return report


def _resolve(tasks: list[EvalTask]) -> dict[str, Path]:
    """Each task's local data; refuses a task list that cannot run."""
    names = [t.name.lower() for t in tasks]
    if len(set(names)) < len(names):
        # metrics are keyed "task/metric": a second run of a task would overwrite the first
        raise TaskError(f"tasks {names}: each task may appear once per evaluation; evaluate other modes separately")
    for spec in tasks:
        if spec.mode == "loglikelihood" and not get_task(spec.name).scores_options:
            raise TaskError(f"{spec.name}: its answers are free text or label sets, not one option to score; "
                            f"set mode: generate for it")
    return locate_all(tasks)


def _run_task(lm: LoadedModel, spec: EvalTask, path: Path, batch_size: int, template: str,
              share_prompt: bool, paper: dict[str, float]) -> TaskResult:
    t0 = time.perf_counter()
    task = get_task(spec.name)
    examples = task.load(path, spec.limit)
    samples, truncated, decoding = run_examples(lm, task, examples, spec.mode, batch_size, template, share_prompt)
    metrics = task.metrics([s.reference for s in samples], [s.prediction for s in samples], task.labels)
    return TaskResult(name=task.name, data=spec.data, data_sha256={path.name: storage.sha256_tree(path)},
                      mode=spec.mode, template=template, instruction=task.instruction,
                      decoding={**decoding, "batch_size": batch_size, "max_len": lm.max_len}, metrics=dict(metrics),
                      wall_s=round(time.perf_counter() - t0, 3), truncated=truncated, samples=samples,
                      examples=len(examples), split=task.split,
                      paper={k: paper[f"{task.name}/{k}"] for k in metrics if f"{task.name}/{k}" in paper},
                      notes=list(getattr(metrics, "notes", [])))


def run_examples(lm: LoadedModel, task: Task, examples: list[Example], mode: str = "loglikelihood",
                 batch_size: int = 8, template: str = DEFAULT_TEMPLATE,
                 share_prompt: bool = True) -> tuple[list[Sample], int, dict]:
    """Prompt the model with each example; (samples, prompts truncated to fit, decoding settings)."""
    prompts = [template.format(instruction=task.instruction, input=task.render_input(ex)) for ex in examples]
    if mode == "loglikelihood":
        samples, truncated = _by_loglikelihood(lm, task, examples, prompts, batch_size, share_prompt)
        choices = "option text" if task.option_text else list(task.labels)
        return samples, truncated, {"share_prompt": share_prompt, "choices": choices, "score": "sum log-prob"}
    max_new = min(task.max_new_tokens, lm.max_len // 2)  # leave the prompt at least half the context
    samples, truncated = _by_generation(lm, task, examples, prompts, batch_size, max_new)
    return samples, truncated, {"strategy": "greedy", "max_new_tokens": max_new, "stop": list(task.stop)}


def _by_loglikelihood(lm, task: Task, examples: list[Example], prompts: list[str], batch_size: int,
                      share_prompt: bool) -> tuple[list[Sample], int]:
    requests, truncated = [], 0
    for ex, prompt in zip(examples, prompts):
        sep = "" if prompt[-1:].isspace() else " "
        conts = [encode_continuation(lm, sep + task.continuation(ex, label)) for label in task.choices(ex)]
        ids = encode_prompt(lm, prompt)
        fitted = fit(ids, lm.max_len - max(map(len, conts)))
        truncated += len(fitted) < len(ids)
        requests.append((fitted, conts))
    all_scores = loglikelihoods(lm, requests, batch_size=batch_size, share_prompt=share_prompt)
    samples = []
    for ex, prompt, scores in zip(examples, prompts, all_scores):
        by_label = dict(zip(task.choices(ex), scores))
        pred = max(by_label, key=by_label.get)  # ties go to the first label, as written
        samples.append(Sample(ex.id, prompt, ex.reference, pred, pred == ex.reference, scores=by_label))
    return samples, truncated


def _by_generation(lm, task: Task, examples: list[Example], prompts: list[str], batch_size: int,
                   max_new_tokens: int) -> tuple[list[Sample], int]:
    ids = [encode_prompt(lm, p) for p in prompts]
    fitted = [fit(i, lm.max_len - max_new_tokens) for i in ids]
    outputs = generate(lm, fitted, max_new_tokens, batch_size=batch_size, stop=task.stop)
    samples = []
    for ex, prompt, out in zip(examples, prompts, outputs):
        pred = task.read(out, ex)
        correct = pred == ex.reference if task.labels else None  # free text: only the task metric judges it
        # (a label set is correct when it matches exactly: both are sorted and joined the same way)
        samples.append(Sample(ex.id, prompt, ex.reference, pred, correct, output=out))
    return samples, sum(len(f) < len(i) for f, i in zip(fitted, ids))


def score_predictions(task_name: str, predictions_jsonl: str | Path) -> Metrics:
    """Metrics of {"prediction", "reference"} lines in the task's answer form (a label, a list of labels, BIO tags,
    a text, a list of texts); a prediction that is not yet an answer is parsed as a generation."""
    task = get_task(task_name)
    refs, preds = [], []
    with open(storage.fetch(str(predictions_jsonl)), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                refs.append(task.as_answer(row["reference"]))
                pred = row["prediction"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                expected = '{"prediction", "reference"}'
                raise ValueError(f"{predictions_jsonl}:{n}: {e!r}; expected {expected}") from None
            try:
                preds.append(task.read_saved(pred))
            except TaskError as e:
                raise TaskError(f"{predictions_jsonl}:{n}: {e}") from None
    metrics = task.metrics(refs, preds, task.labels)
    return Metrics({f"{task.name}/{k}": v for k, v in metrics.items()}, getattr(metrics, "notes", []))
