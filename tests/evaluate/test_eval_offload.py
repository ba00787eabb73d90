"""A model that does not fit the memory it is given: accelerate's device_map places what fits and offloads
the rest to disk (real accelerate hooks on CPU; GPUs are where the same map spreads a 70B), and the scores
are those of the model loaded whole."""

from __future__ import annotations

import pytest

from medllama.evaluate.scoring import load_model, loglikelihoods


def test_offloaded_model_scores_like_the_whole_model(tiny_model, lm):
    size = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    offloaded = load_model(tiny_model, device="auto", max_memory={"cpu": size // 3})
    placed = set(offloaded.model.hf_device_map.values())
    assert "disk" in placed and offloaded.device.type == "cpu"
    bos = lm.tokenizer.bos_token_id
    requests = [([bos, 5, 9, 14, 7], [[11], [12, 13]]), ([bos, 20, 21], [[30, 31, 32], [6]])]
    got = loglikelihoods(offloaded, requests, batch_size=2)
    want = loglikelihoods(lm, requests, batch_size=2)
    assert [x for row in got for x in row] == pytest.approx([x for row in want for x in row], abs=1e-4)
