"""KFP component: mix, clean, dedup, tokenize and pack the corpora of a recipe (medllama.data.prepare)."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output

from components.images import MEDLLAMA_IMAGE


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def prepare_data(
    recipe: str,
    overrides: dict,
    work_uri: str,
    run_id: str,
    dataset: Output[Dataset],
    stats: Output[Metrics],
    report: Output[Markdown],
):
    """Packs the recipe's corpora under {work_uri}/{run_id}/prepare; the artifact carries that URI."""
    import json

    from medllama.data import prepare
    from medllama.recipe import load_recipe
    from medllama.steps import flat_stats, stats_markdown

    result = prepare(load_recipe(recipe, overrides), f"{work_uri.rstrip('/')}/{run_id}/prepare")
    dataset.metadata.update({"uri": result.uri or str(result.output_dir), "recipe": recipe})
    with open(dataset.path, "w") as f:
        json.dump(result.stats, f, indent=2)
    for key, value in flat_stats(result.stats).items():
        stats.log_metric(key, value)
    with open(report.path, "w") as f:
        f.write(stats_markdown(result.stats))
