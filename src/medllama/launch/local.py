"""Run a training stage on this machine: `python -m torch.distributed.run ... -m medllama.train ...`."""

from __future__ import annotations

import collections
import logging
import os
import re
import socket
import subprocess
import sys
from typing import TextIO

from medllama.launch.command import torchrun_argv

log = logging.getLogger(__name__)
TAIL_LINES = 40
ERROR_LINE = re.compile(r"^(\[rank\d+\]: )?\w+(Error|Exception|Failed)\b.*:")


class TrainingFailed(RuntimeError):
    """The training process or job ended without success; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_command(train: list[str], nproc_per_node: int) -> list[str]:
    """`python -m torch.distributed.run ... <train>` on a free local port."""
    torchrun = torchrun_argv(train, nproc_per_node, master_port=free_port())
    return [sys.executable, "-m", "torch.distributed.run", *torchrun]


def start(train: list[str], nproc_per_node: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start torchrun with `train` (the `-m medllama.train ...` arguments); output merged into one pipe."""
    cmd = local_command(train, nproc_per_node)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log.info("running %s", " ".join(cmd))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, text=True,
                            errors="replace", bufsize=1)


def wait(proc: subprocess.Popen, what: str, stream: TextIO | None = None) -> None:
    """Stream the process's output to `stream` (stdout by default); raise TrainingFailed on a non-zero exit."""
    stream = stream or sys.stdout
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    errors: collections.deque[str] = collections.deque(maxlen=10)  # torchrun's summary buries the cause
    assert proc.stdout is not None
    for line in proc.stdout:
        stream.write(line)
        line = line.rstrip("\n")[-1000:]  # tqdm bars make very long lines
        tail.append(line)
        if " ERROR " in line or ERROR_LINE.match(line):
            errors.append(line)
    rc = proc.wait()
    if rc != 0:
        cause = ("errors:\n" + "\n".join(errors) + "\n") if errors else ""
        raise TrainingFailed(f"{what} failed (exit code {rc}); {cause}last lines of its log:\n" + "\n".join(tail))


def run_local(train: list[str], nproc_per_node: int, what: str, env: dict[str, str] | None = None,
              stream: TextIO | None = None) -> None:
    wait(start(train, nproc_per_node, env), what, stream)
