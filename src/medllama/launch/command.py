"""The one command line of a training stage, shared by the local and the Kubernetes launcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def train_argv(recipe: str | Path, stage: str, data_dir: str | Path, tokenizer_dir: str | Path, init: str | None,
               output_dir: str | Path, overrides: dict[str, Any] | None = None) -> list[str]:
    """`-m medllama.train ...` arguments; override values travel as JSON, which the trainer reads as YAML."""
    argv = ["-m", "medllama.train", "--recipe", str(recipe), "--stage", stage, "--data", str(data_dir),
            "--tokenizer", str(tokenizer_dir), "--init", str(init) if init else "none", "--output", str(output_dir)]
    for key, value in (overrides or {}).items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


def torchrun_argv(train: list[str], nproc_per_node: int, nnodes: int = 1, master_port: int | None = None) -> list[str]:
    """`torchrun` arguments around `train`; on a PyTorchJob the master address, port and node rank come from
    the PET_* environment the training operator sets."""
    argv = ["--nnodes", str(nnodes), "--nproc_per_node", str(nproc_per_node)]
    if master_port is not None:
        argv += ["--master_addr", "127.0.0.1", "--master_port", str(master_port)]
    return argv + train
