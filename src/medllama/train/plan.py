"""`medllama plan`: what a recipe's training stages need before anyone books GPUs.

Per stage: memory per GPU (DeepSpeed's ZeRO model-states estimators, plus activations at the stage's
micro-batch and sequence length), whether that fits the GPU, tokens to train, FLOPs (metrics.flops_per_token:
6N per token + attention, 4N + 2N_trainable with LoRA), GPU-hours at an assumed MFU, wall time, cost.

Activations (bf16) follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models": s·b·h·34 bytes per layer with a fused attention kernel (SDPA/flash keep no s×s scores; eager
adds 5·a·s²·b); with activation checkpointing each layer keeps only its bf16 input (2·s·b·h) and one
layer at a time is recomputed in full. The logits add s·b·V·10 bytes (bf16 logits, their fp32 copy for
the loss, its gradient). The model's size comes from `model.config` on the meta device (no weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from medllama.recipe import Recipe, TrainStage
from medllama.train.metrics import KNOWN_PEAKS, flops_per_token

GIB = 2**30
GPU_MEMORY = {"A100": 80 * GIB, "H100": 80 * GIB}  # the 80 GB parts (the paper's A100s are 80 GB)


@dataclass
class ModelSize:
    n_params: int
    largest_layer: int  # parameters of the largest single module (DeepSpeed's `largest_layer_params`)
    layers: int
    hidden: int
    heads: int
    vocab: int


@dataclass
class StagePlan:
    stage: str
    gpus: int
    gpu_type: str
    zero_stage: int
    n_params: int
    n_trainable: int
    model_states_gib: float  # per GPU
    activations_gib: float  # per GPU
    total_gib: float
    gpu_memory_gib: float
    fits: bool
    tokens: float | None  # trained tokens, all epochs
    flops_per_token: float
    flops: float | None
    mfu: float
    gpu_hours: float | None
    wall_hours: float | None
    cost: float | None


def model_size(recipe: Recipe) -> tuple[ModelSize, Any]:
    """Parameter counts of the recipe's architecture and the model built on the meta device (no memory,
    no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(recipe.model.config)
    if not cfg:
        raise ValueError(f"recipe {recipe.name}: model.config is empty; give the base model's architecture "
                         "(LlamaConfig fields) so the plan can size it")
    cfg.setdefault("vocab_size", recipe.model.vocab_size)
    config = LlamaConfig(**cfg)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return ModelSize(sum(p.numel() for p in model.parameters()), largest, config.num_hidden_layers,
                     config.hidden_size, config.num_attention_heads, config.vocab_size), model


def lora_params(model, stage: TrainStage) -> int:
    """Trainable parameters LoRA adds: r x (in + out) for every targeted linear layer (as peft builds them)."""
    import torch

    targets = set(stage.lora.target_modules)
    return sum(stage.lora.r * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets)


def model_states_bytes(size: ModelSize, n_trainable: int, frozen: int, stage: TrainStage, gpus: int, per_node: int) -> int:
    """Per-GPU bytes of weights, gradients and optimizer states (DeepSpeed's estimators; mixed precision).
    ZeRO-0/1 are counted as ZeRO-2 on one GPU / on `gpus` (an upper bound for ZeRO-1's gradients);
    frozen weights (LoRA) add their 16-bit copy, partitioned under ZeRO-3."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    nodes = max(1, gpus // per_node)
    if stage.zero_stage == 3:
        _, gpu, _ = estimate_zero3_model_states_mem_needs(
            n_trainable, size.largest_layer, num_gpus_per_node=gpus // nodes, num_nodes=nodes,
            cpu_offload=stage.offload_optimizer, cpu_offload_params=False, zero_init=True)
        return gpu + 2 * frozen // gpus
    shards = gpus if stage.zero_stage else 1
    _, gpu = estimate_zero2_model_states_mem_needs(n_trainable, num_gpus_per_node=shards, num_nodes=1,
                                                   cpu_offload=stage.offload_optimizer)
    return gpu + 2 * frozen


def activation_bytes(size: ModelSize, stage: TrainStage, seq_len: int) -> int:
    """Per-GPU activation bytes of one micro-batch at its peak (see the module docstring)."""
    s, b, h = seq_len, stage.micro_batch_size, size.hidden
    layer = 34 * s * b * h
    if stage.attn_implementation == "eager":
        layer += 5 * size.heads * s * s * b
    kept = size.layers * 2 * s * b * h + layer if stage.activation_checkpointing else size.layers * layer
    return kept + 10 * s * b * size.vocab


def plan_stage(recipe: Recipe, name: str, gpus: int | None = None, gpu_type: str = "A100", mfu: float = 0.4,
               price: float | None = None, tokens: float | None = None) -> StagePlan:
    """The plan of one stage; `tokens` (per epoch) defaults to data.token_budget for CPT."""
    if gpu_type not in GPU_MEMORY:
        raise ValueError(f"--gpu-type {gpu_type!r}: use one of {sorted(GPU_MEMORY)}")
    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu {mfu}: a fraction in (0, 1], e.g. 0.4")
    stage = recipe.stage(name)
    gpus = gpus or stage.nproc_per_node * stage.nnodes
    size, model = model_size(recipe)
    trainable = lora_params(model, stage) if stage.lora else size.n_params
    n_params = size.n_params + (trainable if stage.lora else 0)
    seq = recipe.data.seq_len
    frozen = size.n_params if stage.lora else 0  # LoRA freezes every base weight
    states = model_states_bytes(size, trainable, frozen, stage, gpus, min(gpus, stage.nproc_per_node))
    acts = activation_bytes(size, stage, seq)
    fpt = flops_per_token(n_params, size.layers, size.hidden, seq, trainable if stage.lora else None)
    if tokens is None and name == "cpt":
        tokens = recipe.data.token_budget
    total_tokens = tokens * stage.epochs if tokens else None
    flops = total_tokens * fpt if total_tokens else None
    peak = dict(KNOWN_PEAKS)[gpu_type]
    gpu_hours = flops / (mfu * peak) / 3600 if flops else None
    return StagePlan(
        stage=name, gpus=gpus, gpu_type=gpu_type, zero_stage=stage.zero_stage, n_params=n_params, n_trainable=trainable,
        model_states_gib=states / GIB, activations_gib=acts / GIB, total_gib=(states + acts) / GIB,
        gpu_memory_gib=GPU_MEMORY[gpu_type] / GIB, fits=states + acts <= GPU_MEMORY[gpu_type], tokens=total_tokens,
        flops_per_token=fpt, flops=flops, mfu=mfu, gpu_hours=gpu_hours,
        wall_hours=gpu_hours / gpus if gpu_hours else None,
        cost=gpu_hours * price if gpu_hours is not None and price is not None else None,
    )


def plan(recipe: Recipe, gpus: int | None = None, gpu_type: str = "A100", mfu: float = 0.4, price: float | None = None,
         sft_tokens: float | None = None) -> list[StagePlan]:
    return [plan_stage(recipe, "cpt", gpus, gpu_type, mfu, price),
            plan_stage(recipe, "sft", gpus, gpu_type, mfu, price, sft_tokens)]


def markdown(recipe: Recipe, plans: list[StagePlan]) -> str:
    def num(x: float | None, fmt: str) -> str:
        return "n/a" if x is None else format(x, fmt)

    lines = [f"Plan for {recipe.name} (MFU assumed {plans[0].mfu:.0%})", "",
             "| stage | GPUs | ZeRO | params (trainable) | memory/GPU GiB (states + activations) | fits | tokens "
             "| FLOPs | GPU-hours | wall hours | cost |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in plans:
        lines.append(
            f"| {p.stage} | {p.gpus} x {p.gpu_type} | {p.zero_stage} | {p.n_params / 1e9:.2f}B ({p.n_trainable / 1e9:.3g}B) "
            f"| {p.total_gib:.1f} ({p.model_states_gib:.1f} + {p.activations_gib:.1f}) of {p.gpu_memory_gib:.0f} "
            f"| {'yes' if p.fits else 'NO'} | {num(p.tokens, '.3g')} | {num(p.flops, '.3g')} | {num(p.gpu_hours, ',.0f')} "
            f"| {num(p.wall_hours, ',.1f')} | {num(p.cost, ',.0f')} |")
    if any(p.tokens is None for p in plans):
        lines += ["", "n/a: tokens unknown (CPT: set data.token_budget; SFT: pass --sft-tokens, the packed rows x seq_len)"]
    return "\n".join(lines) + "\n"


def plan_cli(recipe: Recipe, **kwargs: Any) -> tuple[str, list[dict]]:
    plans = plan(recipe, **kwargs)
    return markdown(recipe, plans), [asdict(p) for p in plans]
