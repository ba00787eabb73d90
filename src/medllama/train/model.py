"""The model of a stage: build (random init or a checkpoint), wrap with LoRA, the loss, export to a HF dir.

Under ZeRO-3 no rank ever holds the whole model: it is built inside `deepspeed.zero.Init` (transformers
does so while an `HfDeepSpeedConfig` is alive), each parameter partitioned as soon as its module exists,
and a checkpoint is loaded one safetensors shard at a time into the partitions. Export gathers one
layer at a time and streams it into safetensors shards (rank 0 writes), LoRA merged layer by layer.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from medllama.data.packed import IGNORE_INDEX
from medllama.recipe import Recipe, TrainStage

log = logging.getLogger(__name__)


_ZERO3: list = []  # the live HfDeepSpeedConfig: transformers consults it (weakly referenced) while it lives


def build_model(recipe: Recipe, stage: TrainStage, init: str | None, tokenizer: PreTrainedTokenizerBase,
                ds_config: dict | None = None):
    """Random init from `recipe.model.config` when `init` is None, else load the local HF dir `init`;
    partitioned while it is built when `ds_config` is a ZeRO-3 config."""
    torch.manual_seed(stage.seed)  # identical init on every rank (DeepSpeed also broadcasts rank 0's)
    from transformers.integrations import HfDeepSpeedConfig

    zero3 = ds_config is not None and ds_config["zero_optimization"]["stage"] == 3
    _ZERO3[:] = [HfDeepSpeedConfig(ds_config)] if zero3 else []
    if init is None:
        config = LlamaConfig(**{
            **recipe.model.config,
            **attn_kwargs(stage),
            "vocab_size": len(tokenizer),  # the tokenizer's, whatever the recipe's architecture says
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        })
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    elif zero3:  # built partitioned, then filled one unit at a time (transformers would merge every shard first)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(init, **attn_kwargs(stage)), dtype=torch.float32)
        load_partitioned(model, Path(init))
    else:
        model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32, **attn_kwargs(stage))
    if init is not None and model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    if stage.activation_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if stage.lora is not None:
        torch.manual_seed(stage.seed)  # the adapters' init does not depend on how the base was built (ZeRO-3 or not)
        model = add_lora(model, stage)
    return model


def load_partitioned(model, directory: Path) -> None:
    """Copy the safetensors checkpoint in `directory` into a ZeRO-3 partitioned model: per unit (a decoder
    layer, the embeddings, ...) every rank gathers it, rank 0 reads just its tensors from their file, and
    DeepSpeed scatters them back into the partitions (modifier_rank=0). No rank holds more than a unit."""
    import json

    import deepspeed
    import torch.distributed as dist
    from safetensors import safe_open

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
    elif (directory / "model.safetensors").is_file():
        with safe_open(directory / "model.safetensors", "pt") as f:
            weight_map = dict.fromkeys(f.keys(), "model.safetensors")
    else:
        raise ValueError(f"{directory}: no safetensors weights; ZeRO-3 loads safetensors checkpoints "
                         "(convert the .bin files with save_pretrained(safe_serialization=True))")
    seen: set[int] = set()
    for name, unit in _units(model):
        params = {k: p for k, p in unit.named_parameters(prefix=name) if id(p) not in seen}
        seen.update(id(p) for p in params.values())
        missing = [k for k in params if k not in weight_map]
        if missing:
            raise ValueError(f"{directory}: the checkpoint has no {missing[:3]}; is it a {type(model).__name__}?")
        with deepspeed.zero.GatheredParameters(list(params.values()), modifier_rank=0), torch.no_grad():
            if dist.get_rank() == 0:
                for file in sorted({weight_map[k] for k in params}):
                    with safe_open(directory / file, "pt") as f:  # opened per unit: its mapping never spans the model
                        for k, p in params.items():
                            if weight_map[k] == file:
                                p.copy_(f.get_tensor(k))


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
    return causal_lm_loss_sum(logits, labels) / trained_tokens(labels).clamp(min=1)


def causal_lm_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy over the trained positions (the numerator of a token-weighted mean)."""
    shift_logits = logits[:, :-1, :].float()
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


def trained_tokens(labels: torch.Tensor) -> torch.Tensor:
    """How many positions of `labels` a causal LM is trained to predict (after the shift)."""
    return (labels[:, 1:] != IGNORE_INDEX).sum()


SHARD_BYTES = 5 * 2**30  # safetensors shard size of an export (transformers' default is 5 GB too)


def export(model, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path, zero3: bool = False,
           shard_bytes: int = SHARD_BYTES) -> Path | None:
    """Write a plain HF model dir (LoRA merged, safetensors shards + index) with tokenizer and generation
    config. Every rank calls it under ZeRO-3 (`zero3`): each layer is gathered in turn, and rank 0 writes;
    returns the directory on the writing rank, None elsewhere."""
    import torch.distributed as dist

    writes = not zero3 or dist.get_rank() == 0
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: the wrapped HF model
    if writes:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    writer = _ShardWriter(tmp, shard_bytes) if writes else None
    seen: set[int] = set()  # tied weights (lm_head = embed_tokens) are written once, as save_pretrained does
    for name, unit in _units(base):
        params = [p for p in unit.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        with _gathered(params, zero3):
            tensors = _merged_state(name, unit, {id(p) for p in params}) if writes else {}
        if writer is not None:
            writer.add(tensors)
    if not writes:
        return None
    writer.close()
    config = base.config
    config.use_cache = True
    config.dtype = writer.dtype
    config.architectures = [type(base).__name__]  # as save_pretrained records them
    config.save_pretrained(tmp)
    # transformers records how the tokenizer was loaded (local_files_only, forced by offline mode): not part of
    # the model, and it would make the same weights export to different bytes (and content hashes).
    tokenizer.init_kwargs.pop("local_files_only", None)
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


def _units(module: torch.nn.Module, prefix: str = ""):
    """(name, module) of the pieces gathered one at a time: each block of a ModuleList (a decoder layer),
    and every other top-level child holding parameters (embeddings, final norm, lm_head)."""
    for name, child in module.named_children():
        if any(isinstance(m, torch.nn.ModuleList) for m in child.modules()):
            yield from _units(child, f"{prefix}{name}.")
        elif next(child.parameters(), None) is not None:
            yield f"{prefix}{name}", child


def _gathered(params: list, zero3: bool):
    import contextlib

    if not zero3:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)


def _merged_state(name: str, unit: torch.nn.Module, keep: set[int]) -> dict[str, torch.Tensor]:
    """CPU copies of a (gathered) unit's weights under their HF names, each LoRA adapter folded into the
    weight it adapts (W + scale·B·A, peft's get_delta_weight)."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for pname, p in unit.named_parameters(prefix=name):
        if id(p) in keep and "lora_" not in pname:
            out[pname.replace(".base_layer.", ".")] = p.detach()
    for mname, m in unit.named_modules(prefix=name):
        if isinstance(m, LoraLayer):
            key = f"{mname}.weight"
            out[key] = out[key] + sum(m.get_delta_weight(a) for a in m.active_adapters).to(out[key].dtype)
    return {k: v.to("cpu", copy=True).contiguous() for k, v in out.items()}


class _ShardWriter:
    """Streams tensors into safetensors files of at most `shard_bytes` (one file: model.safetensors; more:
    model-0000i-of-0000n.safetensors and model.safetensors.index.json, the layout from_pretrained reads)."""

    def __init__(self, directory: Path, shard_bytes: int):
        self.dir, self.shard_bytes = directory, shard_bytes
        self.pending: dict[str, torch.Tensor] = {}
        self.files: list[list[str]] = []
        self.total = 0
        self.dtype = "float32"

    def add(self, tensors: dict[str, torch.Tensor]) -> None:
        for key, t in tensors.items():
            size = t.numel() * t.element_size()
            if self.pending and self._pending_bytes() + size > self.shard_bytes:
                self._flush()
            self.pending[key] = t
            self.total += size
            self.dtype = str(t.dtype).removeprefix("torch.")

    def _pending_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.pending.values())

    def _flush(self) -> None:
        from safetensors.torch import save_file

        save_file(self.pending, self.dir / f"part-{len(self.files):05d}.safetensors", metadata={"format": "pt"})
        self.files.append(list(self.pending))
        self.pending = {}

    def close(self) -> None:
        import json

        if self.pending:
            self._flush()
        n = len(self.files)
        if n == 1:
            os.replace(self.dir / "part-00000.safetensors", self.dir / "model.safetensors")
            return
        weight_map = {}
        for i, keys in enumerate(self.files):
            name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            os.replace(self.dir / f"part-{i:05d}.safetensors", self.dir / name)
            weight_map.update(dict.fromkeys(keys, name))
        index = {"metadata": {"total_size": self.total}, "weight_map": dict(sorted(weight_map.items()))}
        (self.dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
