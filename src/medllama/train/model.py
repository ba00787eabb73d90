"""The model of a stage: build (random init or a checkpoint), wrap with LoRA, the loss, export to a HF dir."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from medllama.data.packed import IGNORE_INDEX
from medllama.recipe import Recipe, TrainStage

log = logging.getLogger(__name__)


def build_model(recipe: Recipe, stage: TrainStage, init: str | None, tokenizer: PreTrainedTokenizerBase):
    """Random init from `recipe.model.config` when `init` is None, else load the local HF dir `init`."""
    torch.manual_seed(stage.seed)  # identical init on every rank (DeepSpeed also broadcasts rank 0's)
    if init is None:
        config = LlamaConfig(
            **recipe.model.config,
            **attn_kwargs(stage),
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = LlamaForCausalLM(config)
    else:
        model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32, **attn_kwargs(stage))
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
    if stage.activation_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if stage.lora is not None:
        model = add_lora(model, stage)
    return model


def attn_kwargs(stage: TrainStage) -> dict[str, str]:
    """`attn_implementation` for HF when the stage picks one; flash attention fails here, with the fix,
    rather than deep inside transformers."""
    impl = stage.attn_implementation
    if impl is None:
        return {}
    if impl.startswith("flash_attention"):
        import importlib.util

        module = "flash_attn" if impl == "flash_attention_2" else "flash_attn_interface"
        if importlib.util.find_spec(module) is None or not torch.cuda.is_available():
            raise ValueError(f"attn_implementation {impl!r} needs a CUDA GPU and the {module} package; "
                             "use 'sdpa' (PyTorch's fused attention) or install it")
    return {"attn_implementation": impl}


def add_lora(model, stage: TrainStage):
    from peft import LoraConfig, get_peft_model

    spec = stage.lora
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("LoRA r=%d on %s: %d trainable parameters", spec.r, spec.target_modules, trainable)
    return model


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not IGNORE_INDEX (0 with grad if none)."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    total = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    count = (shift_labels != IGNORE_INDEX).sum()
    return total / count.clamp(min=1)


def export(model, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path) -> Path:
    """Write a plain HF model dir (LoRA merged, safetensors) with tokenizer and generation config."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "merge_and_unload"):  # a peft model: fold the adapters into the base weights
        model = model.merge_and_unload()
    model.config.use_cache = True
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ).save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
