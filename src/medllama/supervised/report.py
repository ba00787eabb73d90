"""Zero-shot beside supervised, per task: the markdown report, the flat metrics, and the registration of each
tuned model as its own MLflow model version linked to the version it was tuned from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from medllama.recipe import Recipe

if TYPE_CHECKING:
    from medllama.registry import RegisteredVersion
    from medllama.supervised.finetune import SupervisedResult

BASE_LINK_TAG = "medllama.base_version"  # on a tuned version: the version it was tuned from
TUNED_LINK_TAG = "medllama.supervised.{task}"  # on the base version: its tuned version for a task


def side_by_side(results: Sequence[SupervisedResult], heading: bool = True) -> str:
    """Markdown: each task's test metrics zero-shot and after tuning, then what training used and dropped."""
    rows = []
    for r in results:
        for key, tuned in r.supervised.items():
            zero = r.zero_shot.get(key, float("nan"))
            rows.append(f"| {r.task} | {key.partition('/')[2]} | {zero:.4f} | {tuned:.4f} | {tuned - zero:+.4f} |")
    data = [f"| {r.task} | {r.overlap['train_examples']} | {r.overlap['dropped_same_input']} | "
            f"{r.overlap['dropped_shared_ngram']} | {r.overlap['test_examples_found']} of {r.overlap['test_examples']} | "
            f"{r.training.get('steps', '-')} | {_loss(r.training)} |" for r in results]
    return (("# Zero-shot and supervised (task-specific tuning)\n\n" if heading else "") +
            "| task | metric | zero-shot | supervised | Δ |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            "Δ is reported as measured: on the tiny demo models it is noise, not a judgement.\n\n"
            "## Training splits\n\n| task | training examples | dropped: same input as a test example | "
            "dropped: shared n-gram | test examples found in training | steps | loss |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(data) + "\n")


def _loss(training: dict) -> str:
    if "first_loss" not in training:
        return "-"
    return f"{training['first_loss']:.3f} → {training['final_loss']:.3f}"


def flat_metrics(result: SupervisedResult) -> dict[str, float]:
    """The tuned model's metrics as logged: its own scores, the base's under `zero-shot/`, the overlap counts."""
    return {**result.supervised, **{f"zero-shot/{k}": v for k, v in result.zero_shot.items()},
            **{f"overlap/{result.task}/{k}": float(v) for k, v in result.overlap.items()}}


def version_uri(model_uri: str, tracking_uri: str | None) -> str:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` → `models:/NAME/VERSION` (the alias resolved now)."""
    from mlflow import MlflowClient

    from medllama.registry.store import resolve_tracking_uri

    name, _, rest = model_uri.removeprefix("models:/").partition("@")
    if not rest:
        return model_uri.rstrip("/")
    uri = resolve_tracking_uri(tracking_uri)
    version = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(name, rest).version
    return f"models:/{name}/{version}"


def register_tuned(recipe: Recipe, result: SupervisedResult, out: Path,
                   tracking_uri: str | None = None) -> RegisteredVersion:
    """Register the tuned model as a version of `<registry name>-<task>`, its card showing both settings, and
    link it both ways to the base version (when the base is one)."""
    from medllama.registry import register_recipe_model

    card = (f"{recipe.registry.model_name} tuned on the {result.task} training split (the paper's supervised "
            f"setting), from `{result.base_version or result.base_model}`.\n\n" + side_by_side([result], heading=False))
    tags = {"medllama.setting": "supervised", "medllama.task": result.task, "base_model": result.base_model,
            BASE_LINK_TAG: result.base_version or "not registered"}
    rv = register_recipe_model(recipe, result.model_dir, flat_metrics(result), artifacts={"supervised": out / "eval"},
                               name=f"{recipe.registry.model_name}-{result.task}", tracking_uri=tracking_uri,
                               tags=tags, description=card)
    if result.base_version:
        from mlflow import MlflowClient

        name, _, version = result.base_version.removeprefix("models:/").partition("/")
        client = MlflowClient(tracking_uri=rv.tracking_uri, registry_uri=rv.tracking_uri)
        client.set_model_version_tag(name, version, TUNED_LINK_TAG.format(task=result.task), rv.model_uri)
    return rv
