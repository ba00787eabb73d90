"""quiet_run around a real kfp.local pipeline: the terminal gets a short bar, the log gets everything; a
failed task shows the end of the log and where it is."""

# no `from __future__ import annotations`: KFP reads the components' annotations as real types

import logging
import sys

import pytest
from kfp import dsl, local

from medllama.runlog import quiet_run


@dsl.component(base_image="python:3.11")
def chatty(n: int) -> int:
    for i in range(n):
        print(f"line {i} of a chatty task")
    return n


@dsl.component(base_image="python:3.11")
def broken(n: int):
    raise ValueError(f"bad input {n}")


@dsl.pipeline(name="two-chatty")
def two_chatty():
    first = chatty(n=150)
    chatty(n=first.output)


@dsl.pipeline(name="breaks")
def breaks():
    broken(n=chatty(n=3).output)


def _run(pipeline, tmp_path, capfd):
    """As the CLI runs it: a root log handler on the terminal's stderr already set up (logging.basicConfig)."""
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    log, terminal = tmp_path / "pipeline.log", logging.StreamHandler(sys.__stderr__)
    logging.getLogger().addHandler(terminal)
    try:
        with quiet_run(log, "test pipeline"):
            pipeline()
    finally:
        logging.getLogger().removeHandler(terminal)
    return log


def test_the_terminal_gets_a_bar_and_the_log_gets_every_line(tmp_path, capfd):
    log = _run(two_chatty, tmp_path, capfd)
    out, err = capfd.readouterr()
    terminal = (out + err).replace("\r", "\n")
    assert "line 149 of a chatty task" in log.read_text() and "Executing task" in log.read_text()
    assert "chatty task" not in terminal and "Executing task" not in terminal
    assert "test pipeline: 2 tasks done" in terminal
    assert len([line for line in terminal.splitlines() if line.strip()]) < 15


def test_a_failed_task_shows_the_end_of_the_log_and_its_path(tmp_path, capfd):
    with pytest.raises(RuntimeError):
        _run(breaks, tmp_path, capfd)
    out, err = capfd.readouterr()
    terminal = out + err
    assert "ValueError: bad input 3" in terminal and f"its whole log: {tmp_path / 'pipeline.log'}" in terminal
    assert len(terminal.splitlines()) < 40
