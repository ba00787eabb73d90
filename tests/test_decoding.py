"""DecodeBatch: rows that join mid-way, leave early, or start from a shared prefix's cache produce the
same greedy tokens as HF `generate` on each prompt alone."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from medllama.decoding import DecodeBatch, Sampling, pick

GREEDY = Sampling(0, temperature=0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=300, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


def alone(model, prompt: list[int], n: int) -> list[int]:
    out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=n, min_new_tokens=n,
                         eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


@torch.inference_mode()
def test_rows_joining_and_leaving_between_steps_decode_as_alone(model):
    rng = random.Random(1)
    prompts = [[rng.randrange(1, 300) for _ in range(rng.randrange(2, 30))] for _ in range(9)]
    limits = [rng.randrange(3, 15) for _ in prompts]
    batch, rows, outs, waiting, widths = DecodeBatch(model), [], {}, list(range(len(prompts))), set()
    for step in range(200):
        if waiting and step % 3 == 0:  # one to three newcomers every third step
            new = waiting[:rng.randrange(1, 4)]
            waiting = waiting[len(new):]
            for i, token in zip(new, pick(batch.join([prompts[i] for i in new]), [GREEDY] * len(new), [0] * len(new))):
                outs[i] = [token]
            rows += new
        elif rows:
            for i, token in zip(rows, pick(batch.step([outs[i][-1] for i in rows]), [GREEDY] * len(rows), [0] * len(rows))):
                outs[i].append(token)
        keep = [k for k, i in enumerate(rows) if len(outs[i]) < limits[i]]
        rows = [rows[k] for k in keep]
        batch.keep(keep)
        widths.add(len(batch))
        if not rows and not waiting:
            break
    assert max(widths) >= 3 and len(batch) == 0 and batch.mask.shape[1] == 0  # shared steps; all left, cache cut
    assert [outs[i] for i in range(len(prompts))] == [alone(model, p, n) for p, n in zip(prompts, limits)]


@torch.inference_mode()
def test_rows_starting_from_a_shared_prefix_cache_decode_as_the_whole_prompt_alone(model):
    prefix = list(range(10, 22))
    prompts = [prefix + [40 + i] * (1 + 3 * i) for i in range(4)]
    prefix_cache = model(input_ids=torch.tensor([prefix]), use_cache=True).cache
    batch = DecodeBatch(model)
    outs = [[t] for t in pick(batch.join(prompts, prefix_cache, len(prefix)), [GREEDY] * 4, [0] * 4)]
    for _ in range(5):
        for out, token in zip(outs, pick(batch.step([o[-1] for o in outs]), [GREEDY] * 4, [0] * 4)):
            out.append(token)
    assert outs == [alone(model, p, 6) for p in prompts]


@torch.inference_mode()
def test_steps_write_in_place_and_decode_as_alone_past_the_spare_columns(model):
    prompt = list(range(5, 17))
    batch = DecodeBatch(model)
    out, buffers = [pick(batch.join([prompt]), [GREEDY], [0])[0]], set()
    for _ in range(79):
        out.append(pick(batch.step([out[-1]]), [GREEDY], [0])[0])
        buffers.add(batch.cache.layers[0].keys.data_ptr())
    assert len(buffers) == 2  # steps wrote into the first buffer until its spare columns ran out, then one more
    assert out == alone(model, prompt, 80)
