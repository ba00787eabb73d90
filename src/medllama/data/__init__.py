"""Data preparation: sources → clean → dedup → tokenizer → mix → pack (one module each).

`prepare(recipe, output_dir)` is the stage's one entry point (`prepare_shard` + `merge_shards` the same
split across tasks); `packed` is the on-disk format it writes.
"""

from medllama.data.prepare import (
    PrepareResult,
    ShardResult,
    merge_shards,
    prepare,
    prepare_shard,
)
from medllama.data.sources import DataError
from medllama.data.stats import log_stats_to_mlflow

__all__ = ["DataError", "PrepareResult", "ShardResult", "log_stats_to_mlflow", "merge_shards", "prepare", "prepare_shard"]
