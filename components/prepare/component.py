"""KFP components: the prepare stage split across a `dsl.ParallelFor` (medllama.data.prepare_shard ×
num_shards) and one merge (medllama.data.merge_shards); the merged output is byte-identical to
`prepare_data`'s, so the training components take either."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from components.images import MEDLLAMA_IMAGE


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def shard_indices(num_shards: int) -> List[int]:
    """0 .. num_shards-1: the items of the ParallelFor over prepare_shard."""
    if num_shards < 1:
        raise ValueError(f"num_shards {num_shards}: use 1 or more")
    return list(range(num_shards))


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def prepare_shard(
    recipe: str,
    overrides: dict,
    work_uri: str,
    run_id: str,
    shard_index: int,
    num_shards: int,
    shard: Output[Dataset],
):
    """Reads, cleans, decontaminates, hashes and (given a tokenizer) tokenizes every num_shards-th source file
    into {work_uri}/{run_id}/prepare-shards/{shard_index}; the artifact carries that URI."""
    import json

    from medllama.data import prepare_shard as read_shard
    from medllama.recipe import load_recipe

    uri = f"{work_uri.rstrip('/')}/{run_id}/prepare-shards/{shard_index:05d}"
    result = read_shard(load_recipe(recipe, overrides), shard_index, num_shards, uri)
    shard.metadata.update({"uri": result.uri or str(result.output_dir), "shard_index": shard_index,
                           "num_shards": num_shards})
    with open(shard.path, "w") as f:
        json.dump(result.info, f, indent=1)


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def merge_shards(
    recipe: str,
    overrides: dict,
    work_uri: str,
    run_id: str,
    shards: Input[List[Dataset]],
    dataset: Output[Dataset],
    stats: Output[Metrics],
    report: Output[Markdown],
    tracking_uri: str = "",
):
    """Dedups, mixes, tokenizes and packs the shards into {work_uri}/{run_id}/prepare ; logs the stats as KFP metrics, and to MLflow when `tracking_uri` (or MLFLOW_TRACKING_URI) is set."""
    import json
    import os

    from medllama.data import log_stats_to_mlflow
    from medllama.data import merge_shards as merge
    from medllama.recipe import load_recipe
    from medllama.steps import flat_stats, stats_markdown

    uris = [s.metadata["uri"] for s in shards]
    result = merge(load_recipe(recipe, overrides), uris, f"{work_uri.rstrip('/')}/{run_id}/prepare")
    dataset.metadata.update({"uri": result.uri or str(result.output_dir), "recipe": recipe, "shards": len(uris)})
    with open(dataset.path, "w") as f:
        json.dump(result.stats, f, indent=2)
    for key, value in flat_stats(result.stats).items():
        stats.log_metric(key, value)
    with open(report.path, "w") as f:
        f.write(stats_markdown(result.stats))
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    run = log_stats_to_mlflow(result.stats, histogram=result.output_dir / "length_hist.png")
    if run:
        dataset.metadata["mlflow_run_id"] = run
