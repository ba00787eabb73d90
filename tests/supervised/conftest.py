"""The evaluation tests' tiny random model (BPE tokenizer trained on the PubMedQA/MedQA samples), built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluate.conftest import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"))
