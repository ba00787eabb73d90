"""Real 2-process DeepSpeed ZeRO-2 runs on CPU (gloo) through run_stage(launcher='local').

Each run starts torchrun with two ranks on a 2-layer model and generated, learnable text; a run takes
about 10 s here, mostly process start-up.
"""

from __future__ import annotations

import json
import shutil
import signal
import time

import psutil
import pytest
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from medllama.launch import TrainingFailed, run_stage
from medllama.launch.command import train_argv
from medllama.launch.local import start, wait

pytestmark = pytest.mark.slow


def stage_run(assets, out, stage="cpt", init=None, **overrides):
    data = assets["cpt"] if stage == "cpt" else assets["sft"]
    return run_stage(str(assets["recipe"]), stage, data, assets["tokenizer"], init, out,
                     overrides={f"{stage}.{k}": v for k, v in overrides.items()})


PEAK, PRICE = 1e12, 2.5  # a made-up peak FLOP/s and GPU-hour price, so the 2-rank run reports MFU and cost


@pytest.fixture(scope="module")
def cpt_run(tiny_assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("cpt") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLLAMA_PEAK_FLOPS", str(PEAK))
        mp.setenv("MEDLLAMA_GPU_HOUR_PRICE", str(PRICE))
        return out, stage_run(tiny_assets, out)  # 40 steps, save_every 10, keep_last 2


def test_loss_falls_and_model_loads(cpt_run):
    out, result = cpt_run
    m = result.metrics
    assert m["stage"] == "cpt" and m["steps"] == 40 and m["start_step"] == 0 and len(m["losses"]) == 40
    assert m["final_loss"] < 0.5 * m["first_loss"], m["losses"]
    assert m["tokens_per_s"] > 0 and m["train_seconds"] > 0
    assert len(m["step_seconds"]) == 40 and m["n_params"] > 0 and m["flops_per_token"] > 6 * m["n_params"]
    # 2 ranks: MFU divides all ranks' FLOP/s by 2 devices' peak; GPU-hours count both
    assert m["world_size"] == 2 and m["peak_flops"] == PEAK
    assert m["tokens_per_s_per_gpu"] == pytest.approx(m["tokens_per_s"] / 2)
    assert m["mfu"] == pytest.approx(m["tokens_per_s"] * m["flops_per_token"] / (2 * PEAK))
    assert m["gpu_hours"] == pytest.approx(2 * m["train_seconds"] / 3600) and m["cost"] == pytest.approx(PRICE * m["gpu_hours"])
    assert (out / "loss.png").stat().st_size > 1000
    model = AutoModelForCausalLM.from_pretrained(result.model_dir)
    tok = AutoTokenizer.from_pretrained(result.model_dir)
    assert model.config.vocab_size == len(tok) and model.config.eos_token_id == tok.eos_token_id
    assert model.config.num_hidden_layers == 2


def test_checkpoints_keep_last(cpt_run):
    out, _ = cpt_run
    kept = sorted(p.name for p in (out / "checkpoints").glob("step-*"))
    assert kept == ["step-0000030", "step-0000040"]
    assert all((out / "checkpoints" / k / "COMPLETE").is_file() for k in kept)


def test_gradient_accumulation_matches_a_bigger_micro_batch(cpt_run, tiny_assets, tmp_path):
    """2 x micro-batch 2 sees the same rows per step as 1 x micro-batch 4, so the losses agree."""
    _, reference = cpt_run
    m = stage_run(tiny_assets, tmp_path / "out", micro_batch_size=2, grad_accum=2).metrics
    assert max(abs(a - b) for a, b in zip(m["losses"], reference.metrics["losses"])) < 1e-4


def test_rerun_resumes_from_latest_checkpoint(cpt_run, tiny_assets, tmp_path):
    first_out, first = cpt_run
    out = tmp_path / "out"
    shutil.copytree(first_out, out)
    result = stage_run(tiny_assets, out, max_steps=60)
    m = result.metrics
    assert m["start_step"] == 40 and m["steps"] == 60 and len(m["losses"]) == 60
    assert m["losses"][:40] == first.metrics["losses"]  # the history comes back with the checkpoint
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-0000050", "step-0000060"]


def test_sigkilled_rank_then_relaunch_matches_uninterrupted_run(tiny_assets, tmp_path):
    """Issue-3 fault test: SIGKILL one rank mid-run; the relaunch resumes and reproduces the losses."""
    steps = 120
    reference = stage_run(tiny_assets, tmp_path / "ref", max_steps=steps).metrics

    out = tmp_path / "faulty"
    argv = train_argv(str(tiny_assets["recipe"]), "cpt", tiny_assets["cpt"], tiny_assets["tokenizer"], None, out,
                      {"cpt.max_steps": steps})
    proc = start(argv, nproc_per_node=2)
    marker = out / "checkpoints" / "step-0000020" / "COMPLETE"
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    ranks = psutil.Process(proc.pid).children()
    assert marker.exists() and len(ranks) == 2, "the run ended before it could be interrupted"
    ranks[-1].send_signal(signal.SIGKILL)
    with pytest.raises(TrainingFailed, match="exit code"):
        wait(proc, "interrupted run", stream=open("/dev/null", "w"))
    last = sorted((out / "checkpoints").glob("step-*/COMPLETE"))[-1].parent
    resumed_at = json.loads((last / "trainer_state.json").read_text())["step"]
    assert 20 <= resumed_at < steps

    m = stage_run(tiny_assets, out, max_steps=steps).metrics
    assert m["start_step"] == resumed_at and m["steps"] == steps
    assert max(abs(a - b) for a, b in zip(m["losses"], reference["losses"])) < 1e-5


def test_sft_with_lora_exports_a_plain_model_under_zero2_and_zero3(cpt_run, tiny_assets, tmp_path):
    _, cpt = cpt_run
    lora = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    results = {zero: stage_run(tiny_assets, tmp_path / f"sft-z{zero}", stage="sft", init=str(cpt.model_dir),
                               max_steps=20, lora=lora, lr=5e-3, zero_stage=zero) for zero in (2, 3)}
    m = results[2].metrics
    assert m["stage"] == "sft" and m["steps"] == 20
    assert m["final_loss"] < 0.7 * m["first_loss"], m["losses"]
    with safe_open(f"{results[2].model_dir}/model.safetensors", "pt") as f:
        assert not any("lora" in k or "base_model" in k for k in f.keys())
    z2, z3, base = (AutoModelForCausalLM.from_pretrained(d).state_dict()
                    for d in (results[2].model_dir, results[3].model_dir, cpt.model_dir))
    assert max((z2[k] - z3[k]).abs().max().item() for k in z2) < 1e-5  # ZeRO-3 gathers the same weights
    assert max((z2[k] - base[k]).abs().max().item() for k in z2) > 1e-3  # the adapters were merged in


def test_wrong_data_kind_fails_with_a_clear_message(tiny_assets, tmp_path):
    with pytest.raises(TrainingFailed, match="packed for 'cpt' but the stage objective is 'sft'"):
        run_stage(str(tiny_assets["recipe"]), "sft", tiny_assets["cpt"], tiny_assets["tokenizer"], None, tmp_path / "o",
                  overrides={"sft.nproc_per_node": 1})


def test_resume_on_another_world_size_refuses_then_loads_the_universal_conversion(cpt_run, tiny_assets, tmp_path):
    """A 2-rank checkpoint resumed by 1 rank: refused with the command that converts it; once converted
    (DeepSpeed's ds_to_universal), the run resumes from it, never silently from a half-read state."""
    import subprocess
    import sys

    first_out, first = cpt_run
    out = tmp_path / "out"
    shutil.copytree(first_out, out)
    with pytest.raises(TrainingFailed, match="written by 2 ranks and this run has 1: relaunch with 2 ranks, or convert"):
        stage_run(tiny_assets, out, max_steps=45, nproc_per_node=1)
    ckpt = out / "checkpoints" / "step-0000040"
    subprocess.run([sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder", str(ckpt),
                    "--output_folder", str(ckpt / "universal")], check=True, capture_output=True)
    m = stage_run(tiny_assets, out, max_steps=45, nproc_per_node=1).metrics
    assert m["start_step"] == 40 and m["steps"] == 45 and m["world_size"] == 1
    assert m["losses"][:40] == first.metrics["losses"]
    assert abs(m["losses"][40] - first.metrics["losses"][39]) < 0.1 * first.metrics["losses"][39]  # the trained weights
