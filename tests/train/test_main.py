"""The command line of `python -m medllama.train` and the launcher's rendering of it agree."""

from __future__ import annotations

import os

import pytest

from medllama.launch.command import torchrun_argv, train_argv
from medllama.train.__main__ import parse_args


def test_launcher_argv_parses_back_to_the_same_values(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    overrides = {"cpt.max_steps": 7, "cpt.lr": 0.001, "cpt.betas": [0.9, 0.99], "cpt.schedule": "linear",
                 "sft.lora": {"r": 4, "target_modules": ["q_proj"]}, "model.base": None}
    argv = train_argv("tiny", "cpt", "/d", "/t", None, "/o", overrides)
    assert argv[:2] == ["-m", "medllama.train"]
    args = parse_args(argv[2:])
    assert (args.recipe, args.stage, args.data, args.tokenizer, args.init, args.output) == ("tiny", "cpt", "/d", "/t", None, "/o")
    assert args.overrides == overrides


def test_init_path_and_deepspeed_local_rank(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    args = parse_args(["--recipe", "tiny", "--stage", "sft", "--data", "d", "--tokenizer", "t", "--init", "s3://b/m",
                       "--output", "o", "--local_rank=1"])
    assert args.init == "s3://b/m" and os.environ["LOCAL_RANK"] == "1"


def test_bad_override_is_rejected():
    with pytest.raises(SystemExit):
        parse_args(["--recipe", "tiny", "--stage", "cpt", "--data", "d", "--tokenizer", "t", "--init", "none",
                    "--output", "o", "--set", "novalue"])


def test_torchrun_argv_local_and_cluster():
    assert torchrun_argv(["-m", "x"], 2, master_port=1234) == [
        "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", "1234", "-m", "x"]
    assert torchrun_argv(["-m", "x"], 8, nnodes=4) == ["--nnodes", "4", "--nproc_per_node", "8", "-m", "x"]
