"""The trainer on CUDA: bf16, DeepSpeed's fused Adam, SDPA and flash attention, torch.compile, ZeRO-3 on
two GPUs, and the CUDA RNG state in checkpoints. `make test-gpu` runs these on a GPU machine; `make test`
deselects them (marker `gpu`), and they skip where CUDA is absent."""

from __future__ import annotations

import json
import math

import pytest
import torch

from medllama.launch import run_stage

pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def gpu_run(assets, out, nproc=1, stage="cpt", init=None, **fields):
    data = assets["cpt"] if stage == "cpt" else assets["sft"]
    overrides = {f"{stage}.{k}": v for k, v in {"precision": "bf16", "nproc_per_node": nproc, "max_steps": 20,
                                                 **fields}.items()}
    return run_stage(str(assets["recipe"]), stage, data, assets["tokenizer"], init, out, overrides=overrides).metrics


def falls(m: dict) -> bool:
    return all(math.isfinite(x) for x in m["losses"]) and m["final_loss"] < 0.8 * m["first_loss"]


def test_bf16_step_learns_and_reports_mfu_against_the_gpu_peak(tiny_assets, tmp_path):
    m = gpu_run(tiny_assets, tmp_path / "o")
    assert falls(m), m["losses"]
    assert m["peak_flops"] and 0 < m["mfu"] < 1 and m["gpu_hours"] > 0


@pytest.mark.parametrize("fields", [{"fused_optimizer": True}, {"attn_implementation": "sdpa"}, {"compile": True},
                                    {"fused_optimizer": True, "compile": True, "bf16_master_weights": True}],
                         ids=["fused-adam", "sdpa", "compile", "all-levers"])
def test_throughput_levers_train_like_the_default(tiny_assets, tmp_path, fields):
    assert falls(gpu_run(tiny_assets, tmp_path / "o", **fields))


def test_flash_attention_keeps_packed_documents_apart(tiny_assets, tmp_path):
    pytest.importorskip("flash_attn")
    assert falls(gpu_run(tiny_assets, tmp_path / "o", attn_implementation="flash_attention_2"))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_zero3_on_two_gpus_trains_exports_and_resumes(tiny_assets, tmp_path):
    first = gpu_run(tiny_assets, tmp_path / "o", nproc=2, zero_stage=3, save_every=10)
    assert falls(first)
    state = torch.load(tmp_path / "o" / "checkpoints" / "step-0000020" / "rng-rank1.pt", weights_only=False)
    assert "cuda" in state  # LoRA dropout draws from the GPU's generator: it must resume too
    again = gpu_run(tiny_assets, tmp_path / "o", nproc=2, zero_stage=3, save_every=10, max_steps=30)
    assert again["start_step"] == 20 and again["losses"][:20] == first["losses"]
    assert json.loads((tmp_path / "o" / "model" / "config.json").read_text())["num_hidden_layers"] == 2


def test_lora_dropout_resumes_with_the_cuda_rng(tiny_assets, tmp_path):
    """A run resumed at step 10 reproduces an uninterrupted run's losses with LoRA dropout on the GPU."""
    lora = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
    whole = gpu_run(tiny_assets, tmp_path / "whole", stage="sft", lora=lora, save_every=10)
    gpu_run(tiny_assets, tmp_path / "cut", stage="sft", lora=lora, save_every=10, max_steps=10)
    resumed = gpu_run(tiny_assets, tmp_path / "cut", stage="sft", lora=lora, save_every=10)
    assert resumed["start_step"] == 10
    assert max(abs(a - b) for a, b in zip(resumed["losses"], whole["losses"])) < 1e-3
