"""The DeepSpeed config and the lr schedule follow the recipe's stage fields."""

from __future__ import annotations

import pytest

from medllama.recipe import TrainStage, load_recipe
from medllama.train.ds_config import build_ds_config, lr_factor, scheduler_factory


def stage(**fields) -> TrainStage:
    return TrainStage(objective="cpt", lr=1e-3, **fields)


def test_batch_sizes_multiply_over_ranks():
    cfg = build_ds_config(stage(micro_batch_size=4, grad_accum=8), world_size=16)
    assert cfg["train_micro_batch_size_per_gpu"] == 4
    assert cfg["gradient_accumulation_steps"] == 8
    assert cfg["train_batch_size"] == 4 * 8 * 16


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_zero_stage_and_clipping(zero):
    cfg = build_ds_config(stage(zero_stage=zero, grad_clip=0.5), world_size=2)
    assert cfg["zero_optimization"]["stage"] == zero
    assert cfg["gradient_clipping"] == 0.5
    assert "offload_optimizer" not in cfg["zero_optimization"]


@pytest.mark.parametrize("precision,enabled", [("bf16", "bf16"), ("fp16", "fp16"), ("fp32", None)])
def test_precision(precision, enabled):
    cfg = build_ds_config(stage(precision=precision), world_size=1)
    for key in ("bf16", "fp16"):
        assert cfg.get(key, {}).get("enabled", False) == (key == enabled)


def test_adamw_takes_betas_weight_decay_lr_and_runs_without_compiled_ops():
    cfg = build_ds_config(stage(betas=(0.9, 0.95), weight_decay=1e-5), world_size=1)
    assert cfg["optimizer"]["type"] == "AdamW"
    params = cfg["optimizer"]["params"]
    assert params["betas"] == [0.9, 0.95] and params["weight_decay"] == 1e-5 and params["lr"] == 1e-3
    assert params["torch_adam"] is True


def test_offload_uses_deepspeed_cpu_adam_and_needs_zero():
    cfg = build_ds_config(stage(zero_stage=2, offload_optimizer=True), world_size=1)
    assert cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert "torch_adam" not in cfg["optimizer"]["params"]
    with pytest.raises(ValueError, match="zero_stage"):
        build_ds_config(stage(zero_stage=0, offload_optimizer=True), world_size=1)


def test_tiny_recipe_stages_build():
    recipe = load_recipe("tiny")
    for name in ("cpt", "sft"):
        cfg = build_ds_config(recipe.stage(name), world_size=recipe.stage(name).nproc_per_node)
        assert cfg["zero_optimization"]["stage"] == 2 and "bf16" not in cfg


def factors(schedule: str, total=100, warmup=10, min_ratio=0.1) -> list[float]:
    return [lr_factor(s, total_steps=total, warmup_steps=warmup, schedule=schedule, min_ratio=min_ratio) for s in range(total)]


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_warmup_rises_linearly_to_peak(schedule):
    f = factors(schedule)
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:10], f[1:10]))


def test_decay_ends_at_min_ratio_and_constant_stays():
    for schedule in ("cosine", "linear"):
        f = factors(schedule)
        assert all(a >= b for a, b in zip(f[10:], f[11:]))
        assert f[-1] == pytest.approx(0.1, abs=0.02)
    assert set(factors("constant")[10:]) == {1.0}
    assert factors("cosine")[30] > factors("linear")[30]  # cosine stays higher in the first half


def test_scheduler_factory_drives_an_optimizer():
    import torch

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = scheduler_factory(stage(warmup_ratio=0.1, schedule="cosine", min_lr_ratio=0.0), total_steps=10)(opt)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] < 1e-4


def test_throughput_levers_default_off():
    s = stage()
    assert (s.attn_implementation, s.compile, s.fused_optimizer, s.bf16_master_weights) == (None, False, False, False)
    cfg = build_ds_config(s, world_size=1)
    assert cfg["bf16"] == {"enabled": True} and cfg["optimizer"]["params"]["torch_adam"] is True


def test_fused_optimizer_is_deepspeeds_fused_adam():
    cfg = build_ds_config(stage(fused_optimizer=True), world_size=1)
    assert cfg["optimizer"]["type"] == "AdamW" and "torch_adam" not in cfg["optimizer"]["params"]
    with pytest.raises(ValueError, match="offload_optimizer"):
        build_ds_config(stage(fused_optimizer=True, offload_optimizer=True), world_size=1)


def test_bf16_master_weights_needs_bf16_and_zero():
    cfg = build_ds_config(stage(bf16_master_weights=True), world_size=1)
    assert cfg["bf16"] == {"enabled": True, "bf16_master_weights_and_grads": True, "bf16_optimizer_states": True}
    offload = build_ds_config(stage(bf16_master_weights=True, offload_optimizer=True), world_size=1)
    assert offload["bf16"] == {"enabled": True, "bf16_master_weights_and_grads": True}  # CPU Adam keeps fp32 moments
    for bad in ({"precision": "fp32"}, {"zero_stage": 0}):
        with pytest.raises(ValueError, match="bf16_master_weights needs"):
            build_ds_config(stage(bf16_master_weights=True, **bad), world_size=1)


def test_deepspeed_accepts_the_generated_levers():
    from deepspeed.runtime.config import DeepSpeedConfig

    cfg = DeepSpeedConfig(build_ds_config(stage(bf16_master_weights=True, fused_optimizer=True), world_size=1))
    assert cfg.bfloat16_config.bf16_master_weights_and_grads and cfg.bfloat16_config.enabled
