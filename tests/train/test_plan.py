"""`medllama plan` against a hand computation for the paper's 70B recipe (LLaMA-2 70B's published shape)."""

from __future__ import annotations

import json

import pytest

from medllama.cli import main
from medllama.recipe import load_recipe
from medllama.train.plan import GIB, plan_stage

N_70B = 68_976_648_192  # LLaMA-2 70B: 80 layers, hidden 8192, MLP 28672, 64 heads / 8 KV heads, vocab 32000


def test_70b_cpt_on_a100_at_40_percent_mfu_is_the_papers_order_of_gpu_hours():
    p = plan_stage(load_recipe("me-llama-70b"), "cpt", gpu_type="A100", mfu=0.4, price=2.0)
    assert p.n_params == p.n_trainable == N_70B and p.gpus == 160 and p.zero_stage == 3
    per_token = 6 * N_70B + 12 * 80 * 8192 * 4096  # 6N + 12·L·d·S
    hours = 129e9 * per_token / (0.4 * 312e12) / 3600
    assert p.flops == pytest.approx(129e9 * per_token) and p.gpu_hours == pytest.approx(hours)
    assert 100_000 < p.gpu_hours < 200_000  # paper: "over 100,000 A100 GPU hours" for the 70B models
    assert p.wall_hours == pytest.approx(hours / 160) and p.cost == pytest.approx(2.0 * hours)
    # ZeRO-3 model states: the largest layer (embedding 32000 x 8192) in fp32 + 18 bytes/param over 160 GPUs
    states = 4 * 32000 * 8192 + 18 * N_70B // 160
    # activations, micro-batch 1, seq 4096, checkpointing: 80 layer inputs (2sbh) + one layer (34sbh) + logits
    s, h = 4096, 8192
    acts = 80 * 2 * s * h + 34 * s * h + 10 * s * 32000
    assert p.model_states_gib == pytest.approx(states / GIB, rel=1e-9)
    assert p.activations_gib == pytest.approx(acts / GIB) and p.fits


def test_lora_stage_counts_adapters_and_frozen_16bit_weights():
    recipe = load_recipe("me-llama-70b")
    p = plan_stage(recipe, "sft", gpu_type="H100", mfu=0.5, tokens=1e8)
    # r=16 on q,k,v,o,gate,up,down of each of 80 layers: r x (in + out)
    per_layer = 16 * ((8192 + 8192) * 2 + (8192 + 1024) * 2 + (8192 + 28672) * 3)
    lora = 80 * per_layer
    assert p.n_trainable == lora and p.n_params == N_70B + lora
    assert p.flops_per_token == 4 * (N_70B + lora) + 2 * lora + 12 * 80 * 8192 * 4096
    assert p.tokens == 3e8  # 3 epochs
    frozen = 2 * N_70B // 8  # bf16 base weights, partitioned over 8 GPUs by ZeRO-3
    assert p.model_states_gib == pytest.approx((4 * 32000 * 8192 + 18 * lora // 8 + frozen) / GIB, rel=1e-6)


def test_the_70b_does_not_fit_one_gpu_without_zero3():
    p = plan_stage(load_recipe("me-llama-70b", {"cpt.zero_stage": 2}), "cpt", gpus=8)
    assert not p.fits and p.total_gib > 80


def test_cli_prints_a_table_and_json(capsys):
    assert main(["plan", "--recipe", "me-llama-13b", "--gpu-type", "H100", "--mfu", "0.5", "--price", "3"]) == 0
    out = capsys.readouterr().out
    assert "| cpt | 160 x H100 | 2 |" in out and "pass --sft-tokens" in out
    assert main(["plan", "--recipe", "me-llama-13b", "--json", "--sft-tokens", "5e7"]) == 0
    plans = json.loads(capsys.readouterr().out)
    assert [p["stage"] for p in plans] == ["cpt", "sft"] and plans[1]["tokens"] == 1.5e8
    assert main(["plan", "--recipe", "me-llama-13b", "--mfu", "2"]) == 2
    assert "--mfu 2.0" in capsys.readouterr().err
