"""KFP component: score the candidate and the base model on the recipe's benchmark tasks, decide promotion."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import MEDLLAMA_IMAGE


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def evaluate_models(
    recipe: str,
    overrides: dict,
    candidate: Input[Model],
    base: Input[Model],
    dataset: Input[Dataset],
    metrics: Output[Metrics],
    results: Output[Artifact],
    report: Output[Markdown],
    chart: Output[HTML],
) -> bool:
    """Runs medllama.evaluate on both models; returns true when the candidate is not worse than the base.
    `dataset`'s stats put each score beside how much of its test set the training corpus contained.

    A single `bool` output (not a NamedTuple) because kfp.local's condition evaluation only resolves a
    task's `Output`; the reasons travel in the results artifact.
    """
    from medllama.steps import evaluate_step
    from medllama.recipe import load_recipe

    outcome = evaluate_step(
        load_recipe(recipe, overrides), candidate.metadata["uri"], base.metadata["uri"], results.path, dataset.path
    )
    for key, value in outcome.candidate.items():
        metrics.log_metric(key, value)
    for key, value in outcome.base.items():
        metrics.log_metric(f"base/{key}", value)
    for task, overlap in outcome.contamination.items():
        metrics.log_metric(f"contamination/{task}/share", overlap["share"])
    with open(report.path, "w") as f:
        f.write(outcome.markdown)
    with open(chart.path, "w") as f:
        f.write(outcome.html)
    results.metadata.update({"promote": outcome.promote, "reasons": outcome.reasons})
    return outcome.promote
