"""The local launcher turns a failed training process into TrainingFailed carrying the cause."""

from __future__ import annotations

import io
import sys

import pytest

from medllama.launch import TrainingFailed, run_stage
from medllama.launch.local import wait


def test_nonzero_exit_raises_with_the_tail_and_the_error_lines():
    import subprocess

    code = "import sys\nfor i in range(100): print('line', i)\nprint('ValueError: bad thing')\nfor i in range(50): print('x')\nsys.exit(3)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = io.StringIO()
    with pytest.raises(TrainingFailed, match="exit code 3") as e:
        wait(proc, "demo", stream=out)
    assert "ValueError: bad thing" in str(e.value) and "line 99" not in str(e.value)
    assert "line 0" in out.getvalue()  # everything was streamed


def test_missing_prepared_data_fails_before_launching(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepared data .*nodata not found"):
        run_stage("tiny", "cpt", tmp_path / "nodata", tmp_path / "notok", None, tmp_path / "out",
                  overrides={"cpt.nproc_per_node": 1})


def test_bad_override_fails_before_launching(tmp_path):
    from medllama.recipe import RecipeError

    with pytest.raises(RecipeError, match="cpt.zero_stage"):
        run_stage("tiny", "cpt", tmp_path, tmp_path, None, tmp_path / "out", overrides={"cpt.zero_stage": 7})
