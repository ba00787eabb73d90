"""The evaluation stage: benchmark tasks on a saved model, a results report, and the promotion gate.

    report = evaluate(model_dir, recipe.eval.tasks, batch_size=8, output="runs/eval")
    decision = decide_promotion(candidate.metrics, {"cpt_parent": parent.metrics}, tolerance=0.02, margin=0.0)
"""

from __future__ import annotations

from medllama import storage
from medllama.evaluate.promotion import PromotionDecision, decide_promotion, plot_comparison
from medllama.evaluate.report import EvalReport
from medllama.evaluate.tasks import TASKS, CredentialedDataError, TaskError, get_task, locate_all
from medllama.recipe import EvalTask

_RUN = ("evaluate", "run_examples", "score_predictions")  # need torch: imported on first use, so that the task
# loaders (medllama.evaluate.tasks, used by data preparation's decontamination) stay torch-free


def __getattr__(name: str):
    if name in _RUN:
        from medllama.evaluate import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sample_data(task: str) -> str:
    """The bundled sample of a task's release file (or release tree), as a samples:// URI."""
    t = get_task(task)
    for uri in (f"samples://eval/{t.name}/{t.release_file}", f"samples://eval/{t.name}"):
        if storage.local_path(uri).exists():
            return uri
    raise TaskError(f"{t.name}: no bundled sample; {t.access or 'pass the path of its release file'}")


def evaluate_cli(model: str, task: str, data: str | None = None, limit: int | None = None,
                 mode: str = "loglikelihood", output: str | None = None, batch_size: int = 8) -> dict[str, object]:
    """`medllama evaluate`: comma-separated task names; `data` defaults to the bundled sample (one task only)."""
    names = [n.strip() for n in task.split(",") if n.strip()]
    if data and len(names) > 1:
        raise TaskError("--data names one file: give one task with it, or leave --data out to use the samples")
    specs = [EvalTask(name=n, data=data or sample_data(n), limit=limit, mode=mode) for n in names]
    from medllama.evaluate.run import evaluate

    report = evaluate(model, specs, batch_size=batch_size, output=output)
    return {**report.metrics, **({"notes": report.notes} if report.notes else {})}


def score_cli(task: str, predictions: str) -> dict[str, object]:
    """`medllama score`: re-score a predictions JSONL without a model; notes say what was not computed."""
    from medllama.evaluate.run import score_predictions

    metrics = score_predictions(task, predictions)
    return {**metrics, **({"notes": metrics.notes} if metrics.notes else {})}


__all__ = ["TASKS", "CredentialedDataError", "EvalReport", "PromotionDecision", "TaskError", "decide_promotion",
           "evaluate", "evaluate_cli", "run_examples", "get_task", "locate_all", "plot_comparison", "sample_data", "score_cli", "score_predictions"]
