"""The DeepSpeed config and learning-rate schedule of a training stage, derived from its recipe fields.

Recipes say what to train; this module turns a TrainStage into how DeepSpeed runs it. The optimizer is
DeepSpeed's AdamW built from the config (so it checkpoints with the engine); without optimizer offload
it is torch's AdamW (`torch_adam`), which needs no compiled op and is exact on CPU; with offload it is
DeepSpeed's CPU Adam, the only optimizer ZeRO-Offload runs fast with; with `fused_optimizer` it is
DeepSpeed's FusedAdam (one multi-tensor CUDA kernel, JIT-built on first use: set TORCH_CUDA_ARCH_LIST).
The schedule is one formula for warmup + cosine/linear/constant with a floor of `min_lr_ratio`, given to
DeepSpeed as a LambdaLR factory: its state (the step) is saved and restored by engine checkpoints.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from medllama.recipe import TrainStage


def precision_section(precision: str, bf16_master_weights: bool = False, offload: bool = False) -> dict[str, Any]:
    if precision == "bf16":
        if bf16_master_weights:
            # no fp32 copy of the weights: less memory and optimizer traffic, coarser updates. DeepSpeed keeps
            # fp32 Adam moments beside bf16 master weights only in CPU Adam (offload); on the GPU the moments
            # must be bf16 too, or ZeRO refuses the config.
            section = {"enabled": True, "bf16_master_weights_and_grads": True}
            if not offload:
                section["bf16_optimizer_states"] = True
            return {"bf16": section}
        return {"bf16": {"enabled": True}}
    if precision == "fp16":
        # dynamic loss scaling: fp16 gradients under- or overflow without it
        return {"fp16": {"enabled": True, "loss_scale": 0, "initial_scale_power": 16, "loss_scale_window": 1000}}
    return {}


def build_ds_config(stage: TrainStage, world_size: int) -> dict[str, Any]:
    """DeepSpeed config dict for `stage` on `world_size` data-parallel ranks."""
    zero: dict[str, Any] = {"stage": stage.zero_stage}
    if stage.zero_stage >= 1:
        zero.update(overlap_comm=False, contiguous_gradients=True)
    if stage.offload_optimizer:
        if stage.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage >= 1; set zero_stage or offload_optimizer: false")
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    if stage.bf16_master_weights and (stage.precision != "bf16" or stage.zero_stage == 0):
        raise ValueError("bf16_master_weights needs precision: bf16 and zero_stage >= 1; "
                         "set those or bf16_master_weights: false")
    if stage.fused_optimizer and stage.offload_optimizer:
        raise ValueError("fused_optimizer is a GPU optimizer but offload_optimizer runs it on the CPU; "
                         "drop one of them")
    if stage.zero_stage == 3:
        # export gathers the full weights itself; no 16-bit copy inside every checkpoint
        zero.update(stage3_gather_16bit_weights_on_model_save=False)
    adam: dict[str, Any] = {
        "lr": stage.lr,
        "betas": list(stage.betas),
        "eps": 1e-8,
        "weight_decay": stage.weight_decay,
    }
    if not stage.offload_optimizer and not stage.fused_optimizer:
        adam["torch_adam"] = True
    return {
        "train_micro_batch_size_per_gpu": stage.micro_batch_size,
        "gradient_accumulation_steps": stage.grad_accum,
        "train_batch_size": stage.micro_batch_size * stage.grad_accum * world_size,
        "gradient_clipping": stage.grad_clip,
        "zero_optimization": zero,
        "optimizer": {"type": "AdamW", "params": adam},
        "zero_allow_untested_optimizer": False,
        "steps_per_print": 10**9,  # the trainer logs itself
        "wall_clock_breakdown": False,
        **precision_section(stage.precision, stage.bf16_master_weights, stage.offload_optimizer),
    }


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * shape


def warmup_steps(stage: TrainStage, total_steps: int) -> int:
    return int(round(stage.warmup_ratio * total_steps))


def scheduler_factory(stage: TrainStage, total_steps: int):
    """A callable optimizer → LambdaLR that DeepSpeed calls once it has built the optimizer."""
    fn = partial(
        lr_factor,
        total_steps=total_steps,
        warmup_steps=warmup_steps(stage, total_steps),
        schedule=stage.schedule,
        min_ratio=stage.min_lr_ratio,
    )

    def make(optimizer: Optimizer) -> LambdaLR:
        return LambdaLR(optimizer, lambda step: fn(step))

    return make
