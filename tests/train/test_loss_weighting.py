"""The loss of an optimizer step weighs every trained token alike, whatever micro-batch or rank it sits in:
2 ranks x 2 micro-batches of unequal response lengths under DeepSpeed give the loss and the gradients of
one big batch (a real torchrun + DeepSpeed step on CPU, gloo)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medllama.launch.local import run_local
from medllama.train.model import causal_lm_loss

SCRIPT = Path(__file__).with_name("dist_step_check.py")


def big_batch_reference(micro_batches: list[dict[str, torch.Tensor]], mean_of_means: bool = False):
    """Loss and gradients of all rows in one batch (or, to show the test can tell, the mean of per-micro-batch means)."""
    from dist_step_check import tiny_model

    model = tiny_model()
    if mean_of_means:
        loss = torch.stack([causal_lm_loss(model(input_ids=b["input_ids"]).logits, b["labels"])
                            for b in micro_batches]).mean()
    else:
        ids = torch.cat([b["input_ids"] for b in micro_batches])
        loss = causal_lm_loss(model(input_ids=ids).logits, torch.cat([b["labels"] for b in micro_batches]))
    loss.backward()
    return loss.item(), {n: p.grad for n, p in model.named_parameters()}


def test_two_ranks_two_micro_batches_equal_one_big_batch(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    out = tmp_path / "step.pt"
    run_local([str(SCRIPT), str(out)], 2, "distributed step", stream=open("/dev/null", "w"))
    got = torch.load(out, weights_only=False)
    rows = [b for rank in got["batches"] for b in rank]
    loss, grads = big_batch_reference(rows)
    naive_loss, naive = big_batch_reference(rows, mean_of_means=True)  # what averaging micro-batch means gives
    assert abs(naive_loss - loss) > 1e-3
    for zero, step in got["zero"].items():
        assert step["loss"] == pytest.approx(loss, abs=1e-6), zero
        worst = max((step["grads"][n] - g).abs().max().item() for n, g in grads.items())
        assert worst < 1e-6, (zero, worst)
        assert max((step["grads"][n] - g).abs().max().item() for n, g in naive.items()) > 1e-4
