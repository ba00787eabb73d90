"""The training loop of one stage (CPT or SFT) under DeepSpeed: resume, step, checkpoint, export.

It knows nothing of where it runs beyond the rendezvous environment torchrun, the `deepspeed` launcher
or a PyTorchJob sets (MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK/LOCAL_RANK), or OpenMPI's under `mpirun`
(a TrainJob on the DeepSpeed runtime), which deepspeed.init_distributed discovers.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from medllama import storage
from medllama.data.instructions import chat_template
from medllama.data.tokenizer import bos_prefix
from medllama.data.packed import PackedDataset
from medllama.recipe import Recipe, TrainStage, load_recipe
from medllama.train import checkpoint
from medllama.train.ds_config import build_ds_config, scheduler_factory
from medllama.train.metrics import (
    MlflowLogger,
    RunMetrics,
    gpu_hour_price,
    mfu,
    model_flops_per_token,
    peak_flops,
    plot_loss,
    write_metrics,
)
from medllama.train.model import build_model, causal_lm_loss_sum, export, trained_tokens
from medllama.train.outputs import Output

log = logging.getLogger(__name__)


class TrainError(RuntimeError):
    """A stage that cannot run as configured; the message says what to change."""


@dataclass
class TrainArgs:
    recipe: str
    stage: str
    data: str
    tokenizer: str
    init: str | None
    output: str
    overrides: dict[str, Any] = field(default_factory=dict)


def _single_process_env() -> None:
    """Let `python -m medllama.train` run without a launcher, as a world of one."""
    from medllama.launch.local import free_port

    if "RANK" in os.environ or "OMPI_COMM_WORLD_RANK" in os.environ:  # a launcher's, or mpirun's (DeepSpeed reads it)
        return
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))


def _init_distributed() -> None:
    import deepspeed

    _single_process_env()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    deepspeed.init_distributed(dist_backend=backend)


def _fetch(uri: str) -> Path:
    """Fetch an input once per node (local rank 0 first), then everyone reads the cached copy."""
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        path = storage.fetch(uri)
    dist.barrier()
    return path if int(os.environ.get("LOCAL_RANK", 0)) == 0 else storage.fetch(uri)


def _check_data(dataset: PackedDataset, stage: TrainStage, tokenizer) -> None:
    m = dataset.manifest
    if m.kind != stage.objective:
        raise TrainError(f"{dataset.dir}: packed for {m.kind!r} but the stage objective is {stage.objective!r}; "
                         "pass the matching --data directory")
    if m.vocab_size > len(tokenizer):
        raise TrainError(f"{dataset.dir}: packed with a vocabulary of {m.vocab_size} but the tokenizer has "
                         f"{len(tokenizer)}; pass the tokenizer the data was packed with")


def micro_batches(dataset: PackedDataset, sampler: DistributedSampler, micro: int, per_epoch: int,
                  start: int) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's micro-batches from global micro-batch index `start` on; the order depends only on
    the seed and the epoch, so a resumed run sees exactly the batches an uninterrupted one would.
    Every field of a row travels (input_ids, labels and, where the data has them, position_ids)."""
    epoch, offset = divmod(start, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        indices = list(sampler)
        for b in range(offset, per_epoch):
            rows = [dataset[i] for i in indices[b * micro:(b + 1) * micro]]
            yield {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]}
        epoch, offset = epoch + 1, 0


def run(args: TrainArgs) -> RunMetrics | None:
    """Train one stage; returns the run's metrics on rank 0 (None elsewhere)."""
    recipe = load_recipe(args.recipe, args.overrides)
    stage = recipe.stage(args.stage)
    _init_distributed()
    try:
        return _train(recipe, args, stage)
    finally:  # no barrier here: after an error on one rank the launcher stops the others
        dist.destroy_process_group()


def _train(recipe: Recipe, args: TrainArgs, stage: TrainStage) -> RunMetrics | None:
    import deepspeed
    from transformers import AutoTokenizer

    rank, world = dist.get_rank(), dist.get_world_size()
    output = Output(args.output)
    out = output.local
    tokenizer = AutoTokenizer.from_pretrained(_fetch(args.tokenizer))
    tokenizer.chat_template = chat_template(recipe.data, bos=bool(bos_prefix(tokenizer)))  # serving prompts as SFT did
    dataset = PackedDataset(_fetch(args.data))
    _check_data(dataset, stage, tokenizer)
    init = str(_fetch(args.init)) if args.init else None

    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=stage.seed, drop_last=True)
    steps_per_epoch = len(sampler) // (stage.micro_batch_size * stage.grad_accum)
    if steps_per_epoch == 0:
        raise TrainError(f"{dataset.dir}: {len(dataset)} rows are fewer than one optimizer step needs "
                         f"({world} ranks x micro_batch_size {stage.micro_batch_size} x grad_accum {stage.grad_accum})")
    total = stage.max_steps or math.ceil(stage.epochs * steps_per_epoch)

    if stage.fused_optimizer and not torch.cuda.is_available():
        raise TrainError(f"{args.stage}.fused_optimizer needs a CUDA GPU (DeepSpeed FusedAdam); set it to false here")
    output.pull_latest_checkpoint()
    try:  # a stage whose options contradict each other or this machine: say which field to change
        ds_config = build_ds_config(stage, world)
        universal = checkpoint.needs_universal(out, world)
        if universal:
            ds_config["checkpoint"] = {"load_universal": True}
        model = build_model(recipe, stage, init, tokenizer, ds_config)
        peak, price = peak_flops(), gpu_hour_price()
    except ValueError as e:
        raise TrainError(f"{args.stage}: {e}") from None
    seq_len = dataset.manifest.seq_len
    flops_per_token, n_params = model_flops_per_token(model, seq_len)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=ds_config,
        lr_scheduler=scheduler_factory(stage, total),
    )
    if stage.compile:
        engine.compile()  # compiles the module in place: parameter names, checkpoints and export are unchanged
    state = checkpoint.resume(engine, out, universal)
    state.world_size = world
    start = state.step
    if start >= total and (out / "model").is_dir() and (out / "metrics.json").is_file():
        log.info("%s already trained to step %d; nothing to do", out, total)
        return None

    params = {"recipe": recipe.name, "stage": args.stage, "world_size": world, **stage.model_dump(mode="json")}
    mlflow = MlflowLogger(params, f"{recipe.name}-{args.stage}", recipe.to_yaml()) if rank == 0 else None
    batches = micro_batches(dataset, sampler, stage.micro_batch_size, steps_per_epoch * stage.grad_accum,
                            start * stage.grad_accum)
    interactive = sys.stderr.isatty()  # in a pod or under the launcher: log lines, and a bar now and then
    bar = tqdm(total=total, initial=start, disable=rank != 0, desc=args.stage, unit="step",
               mininterval=0.5 if interactive else 30)
    tokens_per_step = stage.micro_batch_size * stage.grad_accum * world * seq_len
    step_seconds: list[float] = []
    t0 = time.perf_counter()
    engine.train()
    while state.step < total:
        lr = engine.get_lr()[0]
        t_step = time.perf_counter()
        mean_loss = _optimizer_step(engine, batches, stage.grad_accum, world)  # ends in a sync (.item())
        step_seconds.append(time.perf_counter() - t_step)
        state.step += 1
        state.epoch = state.step // steps_per_epoch
        state.losses.append(mean_loss)
        state.lrs.append(lr)
        bar.update(1)
        if rank == 0 and (state.step % stage.log_every == 0 or state.step == total):
            window = step_seconds[-stage.log_every:]  # the steps since the last log line
            tokens_per_s = tokens_per_step * len(window) / sum(window)
            values = {"loss": mean_loss, "lr": lr, "tokens_per_s": tokens_per_s, "tokens_per_s_per_gpu": tokens_per_s / world}
            step_mfu = mfu(tokens_per_s, flops_per_token, peak, world)
            if step_mfu is not None:
                values["mfu"] = step_mfu
            norm = engine.get_global_grad_norm()
            if norm is not None:
                values["grad_norm"] = float(norm)
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            if not interactive:
                log.info("step %d/%d %s", state.step, total, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
            mlflow.log_step(state.step, values)
        if stage.save_every and state.step % stage.save_every == 0 and state.step < total:
            output.push_checkpoint(checkpoint.save(engine, out, state, stage.keep_last), stage.keep_last)
    bar.close()
    seconds = time.perf_counter() - t0
    final = checkpoint.latest(out)
    if final is None or final.name != checkpoint.tag(state.step):
        output.push_checkpoint(checkpoint.save(engine, out, state, stage.keep_last), stage.keep_last)
    _export(engine, stage, tokenizer, out, rank)

    metrics = RunMetrics(
        stage=args.stage, start_step=start, steps=state.step, losses=state.losses, lrs=state.lrs,
        tokens=(state.step - start) * tokens_per_step, train_seconds=seconds, world_size=world,
        step_seconds=step_seconds, flops_per_token=flops_per_token, n_params=n_params, peak_flops=peak,
        price_per_gpu_hour=price,
    )
    if rank != 0:
        return None
    write_metrics(metrics, out)
    if state.losses:
        mlflow.log_artifact(plot_loss(state.losses, out / "loss.png", f"{recipe.name} {args.stage}"))
    output.push_results(["model", "metrics.json", "loss.png"])
    d = metrics.as_dict()
    mlflow.log_step(state.step, {f"run_{k}": d[k] for k in ("tokens_per_s", "tokens_per_s_per_gpu", "mfu", "gpu_hours",
                                                            "cost") if d[k] is not None})
    mlflow.close()
    log.info("%s done: %d steps (from %d), loss %.4f -> %.4f, %.0f tokens/s (%.0f per GPU), MFU %s, %.1f s, "
             "%.4g GPU-hours%s", args.stage, d["steps"], start, d["first_loss"] or 0, d["final_loss"] or 0,
             d["tokens_per_s"], d["tokens_per_s_per_gpu"], "n/a" if d["mfu"] is None else f"{d['mfu']:.1%}", seconds,
             d["gpu_hours"], "" if d["cost"] is None else f", cost {d['cost']:.4g}")
    return metrics


def _optimizer_step(engine, batches: Iterator[dict[str, torch.Tensor]], grad_accum: int, world: int) -> float:
    """One optimizer step of `grad_accum` micro-batches on every rank; returns its loss: the summed loss of
    all trained tokens of all micro-batches and ranks over their count, as one big batch would have it.

    Each micro-batch back-propagates its token sum x world / that count (not its own mean, which would
    weigh a micro-batch of 3 response tokens like one of 300): DeepSpeed then averages over ranks, so the
    step's gradient is the big batch's gradient (transformers' 2024 gradient-accumulation fix)."""
    micro = [{k: v.to(engine.device) for k, v in next(batches).items()} for _ in range(grad_accum)]
    total = torch.stack([trained_tokens(b["labels"]) for b in micro]).sum().float()  # NCCL reduces GPU tensors
    dist.all_reduce(total)
    total = total.clamp(min=1)
    loss_sum = torch.zeros((), dtype=torch.float32, device=engine.device)
    for batch in micro:
        labels = batch.pop("labels")
        # position_ids that restart at each packed document make HF build a per-document causal mask,
        # but only without a KV cache (which training does not need anyway)
        logits = engine(**batch, use_cache=False).logits
        token_sum = causal_lm_loss_sum(logits, labels)
        engine.backward(token_sum * world / total, scale_wrt_gas=False)
        engine.step()  # DeepSpeed updates the weights only at the accumulation boundary
        loss_sum += token_sum.detach().float()
    dist.all_reduce(loss_sum)
    return (loss_sum / total).item()


def _export(engine, stage: TrainStage, tokenizer, out: Path, rank: int) -> None:
    """`{out}/model`: under ZeRO-3 every rank takes part in gathering one layer at a time; rank 0 writes."""
    zero3 = stage.zero_stage == 3
    if zero3 or rank == 0:
        export(engine.module, tokenizer, out / "model", zero3=zero3)
    dist.barrier()
