"""KFP components of the supervised setting: list the recipe's tasks, tune and score one task (the ParallelFor
body), and put every task's zero-shot and supervised scores side by side."""

from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Metrics, Model, Output

from components.images import MEDLLAMA_IMAGE


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def supervised_tasks(recipe: str, overrides: dict, base_version: str) -> List[dict]:
    """The items of the ParallelFor over tune_on_task: each task of the recipe's supervised.tasks, with the
    registered version it starts from (carried in the item: kfp.local 2.17 hands a loop body the loop item in
    place of any other task's output parameter)."""
    from medllama.recipe import load_recipe

    return [{"dataset": t.name, "base_version": base_version} for t in load_recipe(recipe, overrides).supervised.tasks]


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def tune_on_task(
    recipe: str,
    overrides: dict,
    task: str,
    launcher: str,
    work_uri: str,
    run_id: str,
    tracking_uri: str,
    base: Input[Model],
    base_version: str,
    result: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[Markdown],
    cluster: str = "",
):
    """Tunes `base` on the task's training split, scores it beside `base` on the test split and registers it as
    its own version linked to `base_version`."""
    import dataclasses
    import json

    from medllama.supervised import finetune_task, side_by_side
    from medllama.supervised.report import flat_metrics

    out = f"{work_uri.rstrip('/')}/{run_id}/supervised/{task}"
    tuned = finetune_task(recipe, task, base.metadata["uri"], out, overrides=overrides, launcher=launcher,
                          cluster=cluster or None, base_version=base_version, register=True,
                          tracking_uri=tracking_uri or None)
    with open(result.path, "w") as f:
        json.dump(dataclasses.asdict(tuned), f, indent=2)
    result.metadata.update({"uri": out, "task": task, "registered": tuned.registered})
    for key, value in flat_metrics(tuned).items():
        metrics.log_metric(key, value)
    with open(report.path, "w") as f:
        f.write(side_by_side([tuned]))


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def supervised_report(results: Input[List[Artifact]], report: Output[Markdown]):
    """Every task's zero-shot and supervised scores in one table."""
    import json

    from medllama.supervised import SupervisedResult, side_by_side

    done = [SupervisedResult(**json.load(open(r.path))) for r in results]
    with open(report.path, "w") as f:
        f.write(side_by_side(sorted(done, key=lambda r: r.task)))
