"""KFP component: score the candidate, its CPT parent and the original base model on the recipe's benchmark
tasks, and decide promotion by the recipe's rule."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.images import MEDLLAMA_IMAGE


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def evaluate_models(
    recipe: str,
    overrides: dict,
    candidate: Input[Model],
    parent: Input[Model],
    dataset: Input[Dataset],
    metrics: Output[Metrics],
    results: Output[Artifact],
    report: Output[Markdown],
    chart: Output[HTML],
) -> bool:
    """Runs medllama.evaluate on the candidate, `parent` (its CPT model) and the recipe's `model.base`; returns
    true when the candidate passes the promotion rule against both. The report (Markdown) shows every score
    beside the references and the paper's Table 3, then the decision and its reasons; `dataset`'s stats add
    how much of each test set the training corpus contained.

    A single `bool` output (not a NamedTuple) because kfp.local's condition evaluation only resolves a
    task's `Output`; the reasons travel in the report and the results artifact.
    """
    from medllama.steps import evaluate_step
    from medllama.recipe import load_recipe

    outcome = evaluate_step(
        load_recipe(recipe, overrides), candidate.metadata["uri"], parent.metadata["uri"], results.path, dataset.path
    )
    # the report first: when the candidate is refused, it is what the KFP UI shows as the reason
    with open(report.path, "w") as f:
        f.write(outcome.markdown)
    with open(chart.path, "w") as f:
        f.write(outcome.html)
    for key, value in outcome.candidate.items():
        metrics.log_metric(key, value)
    for name, values in outcome.references.items():
        for key, value in values.items():
            metrics.log_metric(f"{name}/{key}", value)
    for key, value in outcome.paper.items():
        metrics.log_metric(f"paper/{key}", value)
    for task, overlap in outcome.contamination.items():
        metrics.log_metric(f"contamination/{task}/share", overlap["share"])
    results.metadata.update({"promote": outcome.promote, "reasons": outcome.reasons})
    return outcome.promote
