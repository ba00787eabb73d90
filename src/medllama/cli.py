"""`medllama`: one verb per lifecycle step, each a thin call into the same function a KFP component calls.

Errors a user can fix (a bad recipe field, a missing file, an unreadable bucket) print one line and
exit 2; set MEDLLAMA_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

from medllama.recipe import load_recipe


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["cpt.lr=1e-4", "cpt.max_steps=10"]` → {"cpt.lr": 1e-4, ...}; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set cpt.max_steps=20")
        out[key.strip()] = _yaml_value(value)
    return out


def _yaml_value(text: str) -> Any:
    value = yaml.safe_load(text)
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string; a user means the number
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def print_registration(outcome: dict) -> None:
    """What a pipeline run leaves behind, for a person: the model version, its metrics, the UI command."""
    if not outcome.get("version"):
        print(f"\nNothing registered for {outcome['name']}: {outcome['reason']}")
        return
    print(f"\nRegistered model: {outcome['name']}  version {outcome['version']}  ({outcome['model_uri']})")
    print(f"MLflow tracking URI: {outcome['tracking_uri']}   run: {outcome['run_id']}")
    print("Metrics:")
    for key, value in outcome["metrics"].items():
        print(f"  {key:<40} {value:.4f}")
    print(f"\nOpen the MLflow UI on this store:\n  {outcome['ui_command']}")
    from medllama.serve import how_to_call

    print(f"\nServe it on KServe's OpenAI endpoint, then call it:\n"
          f"{how_to_call(outcome['name'], outcome['version'], outcome['tracking_uri'])}")


# --- verbs ---------------------------------------------------------------------------------------

def cmd_recipe(args: argparse.Namespace) -> None:
    print(load_recipe(args.recipe, parse_overrides(args.set)).to_yaml(), end="")


def cmd_prepare(args: argparse.Namespace) -> None:
    from medllama.data import prepare

    result = prepare(load_recipe(args.recipe, parse_overrides(args.set)), args.output, workers=args.workers)
    _print_json({"output": str(result.output_dir), "stats": result.stats})


def cmd_train(args: argparse.Namespace) -> None:
    from medllama.launch import run_stage

    result = run_stage(
        args.recipe,
        args.stage,
        data_dir=args.data,
        tokenizer_dir=args.tokenizer,
        init=None if args.init in (None, "none") else args.init,
        output_dir=args.output,
        launcher=args.launcher,
        overrides=parse_overrides(args.set),
        **({"dry_run": True} if args.dry_run else {}),
        **({"cluster": args.cluster} if args.cluster else {}),
    )
    _print_json({"model": str(result.model_dir), "metrics": {k: v for k, v in result.metrics.items() if k != "losses"}})


def cmd_plan(args: argparse.Namespace) -> None:
    from medllama.train.metrics import gpu_hour_price
    from medllama.train.plan import plan_cli

    price = args.price if args.price is not None else gpu_hour_price()
    table, plans = plan_cli(load_recipe(args.recipe, parse_overrides(args.set)), gpus=args.gpus, gpu_type=args.gpu_type,
                            mfu=args.mfu, price=price, sft_tokens=args.sft_tokens)
    _print_json(plans) if args.json else print(table, end="")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from medllama.evaluate import evaluate_cli

    _print_json(evaluate_cli(args.model, args.task, args.data, args.limit, args.mode, args.output, args.batch_size))


def cmd_score(args: argparse.Namespace) -> None:
    from medllama.evaluate import score_cli

    _print_json(score_cli(args.task, args.predictions))


def cmd_finetune_task(args: argparse.Namespace) -> None:
    from medllama.supervised import finetune_task

    result = finetune_task(args.recipe, args.task, args.model, args.output, overrides=parse_overrides(args.set),
                           train=args.train, test=args.test, launcher=args.launcher, cluster=args.cluster,
                           register=args.register,
                           tracking_uri=args.tracking_uri)
    _print_json({"model": result.model_dir, "zero_shot": result.zero_shot, "supervised": result.supervised,
                 "overlap": result.overlap, "registered": result.registered})


def cmd_judge_cases(args: argparse.Namespace) -> None:
    from medllama.clinical.judge import judge_cases

    ks = [int(k) for k in args.k.split(",")]
    metrics, _ = judge_cases(args.predictions, args.judge, ks, args.output, args.batch_size)
    _print_json(metrics)


def cmd_rating_payload(args: argparse.Namespace) -> None:
    from medllama.clinical.rating.store import payload_from_predictions

    pairs = dict(p.split("=", 1) for p in args.predictions if "=" in p)
    if len(pairs) != len(args.predictions):
        raise ValueError("--predictions takes MODEL=PATH (the model's name as the report will show it)")
    print(payload_from_predictions(args.cases, pairs).model_dump_json(indent=1))


def cmd_register(args: argparse.Namespace) -> None:
    from medllama.registry import registry_cli

    rv = registry_cli(args.model, args.name, args.metrics, args.tracking_uri, args.alias)
    _print_json({"name": rv.name, "version": rv.version, "model_uri": rv.model_uri, "ui_command": rv.ui_command})


def cmd_serve(args: argparse.Namespace) -> None:
    from medllama.serve import serve

    serve(args.model, port=args.port, tracking_uri=args.tracking_uri, name=args.name, batching=not args.no_batching,
          usage_url=args.usage_url)


def cmd_pipeline(args: argparse.Namespace) -> None:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pipelines" / "me_llama.py").is_file():
        raise FileNotFoundError("`medllama pipeline` runs from a checkout of medllama-ops (pipelines/ not found)")
    sys.path.insert(0, str(root))
    from pipelines import me_llama

    if args.verb == "compile":
        print(me_llama.compile_pipeline(Path(args.output) if args.output else me_llama.COMPILED, args.cluster))
        return
    run = functools.partial(me_llama.run_local, args.recipe, parse_overrides(args.set), args.work_dir,
                            args.tracking_uri or "")
    if args.verbose:  # every task's executor input, logs and outputs, as kfp.local prints them
        outcome = run()
    else:
        from medllama.runlog import quiet_run

        log = (args.work_dir or Path.cwd() / ".medllama" / "runs").resolve() / "pipeline.log"
        with quiet_run(log, f"pipeline {args.recipe}"):
            outcome = run()
        print(f"Every task's log: {log}")
    print_registration(outcome)
    if not outcome.get("version"):
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medllama", description="Build, evaluate and register medical LLMs.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def verb(name: str, fn: Callable, help: str, recipe: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        if recipe:
            p.add_argument("--recipe", default="tiny", help="recipe name (recipes/NAME.yaml) or path")
            p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
        return p

    verb("recipe", cmd_recipe, "print the resolved recipe")

    p = verb("prepare", cmd_prepare, "mix, clean, dedup, tokenize and pack the recipe's corpora")
    p.add_argument("--output", required=True, help="output directory (local path or s3://)")
    p.add_argument("--workers", type=int, default=1, help="read source shards in this many processes (same result)")

    p = verb("train", cmd_train, "run one training stage (python -m medllama.train under torchrun or a PyTorchJob)")
    p.add_argument("--stage", choices=["cpt", "sft"], required=True)
    p.add_argument("--data", required=True, help="packed directory of this stage (PREPARED/cpt or PREPARED/sft)")
    p.add_argument("--tokenizer", required=True, help="tokenizer directory (PREPARED/tokenizer)")
    p.add_argument("--init", default=None, help="model to start from (HF dir or s3://); default: the recipe's base")
    p.add_argument("--output", required=True)
    p.add_argument("--launcher", choices=["local", "kubernetes"], default="local")
    p.add_argument("--dry-run", action="store_true", help="kubernetes: print the PyTorchJob YAML, submit nothing")
    p.add_argument("--cluster", default=None, help="kubernetes: cluster profile (cluster/NAME.yaml or a path; default dev)")

    p = verb("plan", cmd_plan, "memory per GPU, FLOPs, GPU-hours and cost of the recipe's training stages")
    p.add_argument("--gpus", type=int, default=None, help="GPUs per stage (default: the stage's nproc_per_node x nnodes)")
    p.add_argument("--gpu-type", choices=["A100", "H100"], default="A100")
    p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation (default 0.4)")
    p.add_argument("--price", type=float, default=None, help="price of one GPU-hour (default $MEDLLAMA_GPU_HOUR_PRICE)")
    p.add_argument("--sft-tokens", type=float, default=None, help="instruction tokens per epoch (packed rows x seq_len)")
    p.add_argument("--json", action="store_true", help="print the plans as JSON")

    p = verb("evaluate", cmd_evaluate, "score a model on one benchmark task", recipe=False)
    p.add_argument("--model", required=True, help="HF model directory")
    p.add_argument("--task", required=True)
    p.add_argument("--data", default=None, help="the dataset's release file (local path, s3:// or samples://); default: the bundled sample, where one ships")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--mode", choices=["loglikelihood", "generate"], default="loglikelihood")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--output", default=None, help="results JSON (metrics, hashes, per-sample rows)")

    p = verb("score", cmd_score, "re-score saved predictions without a model", recipe=False)
    p.add_argument("--task", required=True)
    p.add_argument("--predictions", required=True, help='JSONL of {"prediction": ..., "reference": ...}')

    p = verb("finetune-task", cmd_finetune_task, "tune a model on one dataset's training split, score it beside zero-shot")
    p.add_argument("--model", required=True, help="model to tune: HF folder, s3:// or models:/NAME/VERSION")
    p.add_argument("--task", required=True, help="a benchmark task with a training split (the recipe's supervised.tasks)")
    p.add_argument("--output", required=True, help="directory for the packed data, the tuned model and the reports")
    p.add_argument("--train", default=None, help="training-split release file or tree (default: the recipe's)")
    p.add_argument("--test", default=None, help="test-split release file (default: the recipe's)")
    p.add_argument("--launcher", choices=["local", "kubernetes"], default="local")
    p.add_argument("--cluster", default=None, help="kubernetes: cluster profile (cluster/NAME.yaml or a path; default dev)")
    p.add_argument("--register", action="store_true", help="register the tuned model as its own MLflow version")
    p.add_argument("--tracking-uri", default=None)

    p = verb("judge-cases", cmd_judge_cases, "top-k diagnosis accuracy of saved clinical-case predictions", recipe=False)
    p.add_argument("--predictions", required=True, help="clinical-cases predictions JSONL written by evaluate --output")
    p.add_argument("--judge", default=None, help="local HF model deciding non-exact matches; default: exact after normalisation")
    p.add_argument("--k", default="1,5,10", help="comma-separated k values")
    p.add_argument("--output", default=None, help="directory for metrics.json and verdicts.jsonl (prompt and verdict per diagnosis)")
    p.add_argument("--batch-size", type=int, default=8)

    p = verb("rating-payload", cmd_rating_payload, "the JSON to POST to /rating/admin/cases: cases and each model's "
             "differentials", recipe=False)
    p.add_argument("--cases", required=True, help="clinical cases JSONL (id, case, diagnosis, synonyms)")
    p.add_argument("--predictions", action="append", required=True, metavar="MODEL=PATH",
                   help="a model's clinical-cases predictions JSONL (from evaluate --output); repeat per model")

    p = verb("register", cmd_register, "log a model folder to MLflow and register a version", recipe=False)
    p.add_argument("--model", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--metrics", default=None, help="JSON file of {metric: value}")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--alias", default=None)

    p = verb("serve", cmd_serve, "serve a model on KServe's OpenAI-compatible endpoint (/openai/v1/...)", recipe=False)
    p.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION, s3://… or a local HF folder")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (KServe binds 0.0.0.0)")
    p.add_argument("--tracking-uri", default=None, help="MLflow registry for models:/ (default $MLFLOW_TRACKING_URI, else .medllama/)")
    p.add_argument("--name", default=None, help="served model name (default: the registered name, else the folder's)")
    p.add_argument("--no-batching", action="store_true", help="one request at a time (the benchmark's baseline)")
    p.add_argument("--usage-url", default=None,
                   help="the gate's /admin/api/usage: report the tokens of requests the gate let through by "
                        "ext_authz or nginx (default $MEDLLAMA_USAGE_URL; token from $MEDLLAMA_USAGE_TOKEN)")

    p = verb("pipeline", cmd_pipeline, "compile the KFP pipeline or run it locally (kfp.local)")
    p.add_argument("verb", choices=["run", "compile"])
    p.add_argument("--output", default=None, help="compile: YAML path")
    p.add_argument("--cluster", default=None, help="compile: cluster profile the tasks are placed by (default dev)")
    p.add_argument("--work-dir", type=Path, default=None)
    p.add_argument("--tracking-uri", default=None)

    from medllama.gate.cli import add_parser as add_gate_parser

    add_gate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.fn(args)
    except (ValueError, FileNotFoundError, PermissionError, KeyError) as e:
        if os.environ.get("MEDLLAMA_DEBUG"):
            raise
        print(f"medllama {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
