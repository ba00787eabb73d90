"""Run by torchrun (2 ranks) from test_zero3_memory.py: build a saved model the way the trainer does under
ZeRO-3 (inside zero.Init, loaded shard by shard), export it (one layer gathered at a time) and report each
rank's resident memory: before the build, its peak after loading, its peak after the export."""

from __future__ import annotations

import json
import resource
import sys

import psutil
import torch.distributed as dist


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main(recipe_path: str, model_dir: str, tokenizer_dir: str, out_dir: str, report: str, shard_bytes: int) -> None:
    from transformers import AutoTokenizer

    from medllama.recipe import load_recipe
    from medllama.train.ds_config import build_ds_config
    from medllama.train.loop import _init_distributed
    from medllama.train.model import build_model, export

    _init_distributed()
    recipe = load_recipe(recipe_path, {"cpt.zero_stage": 3})
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    ds_config = build_ds_config(recipe.cpt, dist.get_world_size())
    before = psutil.Process().memory_info().rss
    model = build_model(recipe, recipe.cpt, model_dir, tok, ds_config)
    loaded = peak_rss()
    local = sum(p.ds_tensor.numel() for p in model.parameters())  # this rank's partition
    export(model, tok, out_dir, zero3=True, shard_bytes=shard_bytes)
    exported = peak_rss()
    reports = [None] * dist.get_world_size()
    dist.all_gather_object(reports, {"before": before, "loaded": loaded, "exported": exported, "partition": local})
    if dist.get_rank() == 0:
        with open(report, "w") as f:
            json.dump(reports, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:6], int(sys.argv[6]))
