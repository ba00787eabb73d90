"""`python -m medllama.train`: train one stage of a recipe (under torchrun, deepspeed or a PyTorchJob)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import yaml


def parse_args(argv: list[str] | None = None):
    from medllama.train.loop import TrainArgs

    p = argparse.ArgumentParser(prog="python -m medllama.train", description=__doc__)
    p.add_argument("--recipe", required=True, help="recipe name (recipes/NAME.yaml) or path")
    p.add_argument("--stage", required=True, choices=["cpt", "sft"])
    p.add_argument("--data", required=True, help="packed data directory (local, PVC or s3://)")
    p.add_argument("--tokenizer", required=True, help="HF tokenizer directory or URI")
    p.add_argument("--init", required=True, help="HF model directory or URI to start from, or 'none' (random init)")
    p.add_argument("--output", required=True, help="output directory: checkpoints/, model/, metrics.json")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, value parsed as YAML (e.g. --set cpt.max_steps=100)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher
    ns = p.parse_args(argv)
    overrides = {}
    for item in ns.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    if ns.local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(ns.local_rank))
    init = None if ns.init.lower() == "none" else ns.init
    return TrainArgs(ns.recipe, ns.stage, ns.data, ns.tokenizer, init, ns.output, overrides)


def main(argv: list[str] | None = None) -> int:
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(
        level=logging.INFO if rank == "0" else logging.WARNING,
        format=f"%(asctime)s [rank{rank}] %(levelname)s %(name)s: %(message)s",
    )
    from medllama.recipe import RecipeError
    from medllama.train.loop import TrainError, run

    args = parse_args(argv)
    try:
        run(args)
    except (RecipeError, TrainError, FileNotFoundError) as e:
        logging.getLogger("medllama.train").error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
