"""Run by torchrun (2 ranks) from test_loss_weighting.py: one optimizer step of the trainer's
`_optimizer_step` under DeepSpeed on micro-batches of very unequal response lengths, with plain SGD
(lr 1) so each weight's change is its gradient. Rank 0 writes the loss and the gradients to argv[1]."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from medllama.train.loop import _init_distributed, _optimizer_step

GRAD_ACCUM, MICRO, SEQ, VOCAB = 2, 2, 16, 64
# trained (response) tokens of each row: rank -> micro-batch -> rows; a 1-token row beside 14-token ones
RESPONSES = {0: [[1, 3], [14, 12]], 1: [[5, 0], [9, 2]]}


def tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=SEQ))


def batches(rank: int) -> list[dict[str, torch.Tensor]]:
    """Rows of random tokens whose last `n` positions are the response (labels), the rest prompt (-100)."""
    out = []
    for m, lengths in enumerate(RESPONSES[rank]):
        g = torch.Generator().manual_seed(100 * rank + m)
        ids = torch.randint(4, VOCAB, (MICRO, SEQ), generator=g)
        labels = torch.full_like(ids, -100)
        for row, n in enumerate(lengths):
            labels[row, SEQ - n:] = ids[row, SEQ - n:]
        out.append({"input_ids": ids, "labels": labels})
    return out


def step(zero_stage: int, rank: int, world: int) -> dict | None:
    import deepspeed

    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = {"train_micro_batch_size_per_gpu": MICRO, "gradient_accumulation_steps": GRAD_ACCUM,
              "train_batch_size": MICRO * GRAD_ACCUM * world, "gradient_clipping": 0.0,
              "zero_optimization": {"stage": zero_stage}, "zero_allow_untested_optimizer": True,
              "steps_per_print": 10**9}
    engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1.0), config=config)
    loss = _optimizer_step(engine, iter(batches(rank)), GRAD_ACCUM, world)
    return {"loss": loss, "grads": {n: before[n] - p.detach() for n, p in engine.module.named_parameters()}}


def main(out: str) -> None:
    """ZeRO-0 (DeepSpeed's plain data parallel) and ZeRO-2 (the recipes' default) in one launch."""
    _init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {zero: step(zero, rank, world) for zero in (0, 2)}
    if rank == 0:
        torch.save({"zero": results, "batches": [batches(r) for r in range(world)]}, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
