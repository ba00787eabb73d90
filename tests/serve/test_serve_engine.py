"""The batching engine in process: concurrent requests share decode steps, keep their own limits, give
the same greedy tokens as alone (and as HF `generate`), and a request that leaves frees its slot."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import torch
from transformers import AutoModelForCausalLM

from medllama.decoding import pick
from medllama.serve.engine import Engine, Sampling


@pytest.fixture(scope="module")
def engine(tiny_served_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_served_dir, dtype=torch.float32).eval()
    eng = Engine(model, eos_token_id=None)  # no EOS: every request runs to its own max_new_tokens
    yield eng
    eng.stop()


PROMPTS = [[5 + i, 40 + 3 * i, 7, 90 + i, 11] for i in range(8)]


async def _run(engine: Engine, prompt: list[int], sampling: Sampling, active: list[int] | None = None) -> list[int]:
    tokens: list[int] = []
    async for tokens in engine.stream(prompt, sampling):
        if active is not None:
            active.append(engine.running)
    return tokens


def test_eight_concurrent_requests_decode_together_with_their_own_limits(engine, tiny_served_dir):
    limits = [4 + 2 * i for i in range(8)]
    alone = [asyncio.run(_run(engine, p, Sampling(n, temperature=0))) for p, n in zip(PROMPTS, limits)]

    async def together():
        active: list[int] = []
        outs = await asyncio.gather(*(_run(engine, p, Sampling(n, temperature=0), active) for p, n in zip(PROMPTS, limits)))
        return outs, max(active)

    outs, most_active = asyncio.run(together())
    assert most_active >= 4  # they shared decode steps, not one after another
    assert [len(o) for o in outs] == limits
    assert outs == alone  # greedy tokens do not depend on the neighbours

    reference = AutoModelForCausalLM.from_pretrained(tiny_served_dir, dtype=torch.float32).eval()
    hf = reference.generate(torch.tensor([PROMPTS[0]]), do_sample=False, max_new_tokens=limits[0],
                            min_new_tokens=limits[0], eos_token_id=None, pad_token_id=0)
    assert hf[0, len(PROMPTS[0]):].tolist() == outs[0]


def test_a_seeded_request_samples_the_same_tokens_beside_others(engine):
    seeded = Sampling(12, temperature=1.0, top_p=0.9, seed=7)
    alone = asyncio.run(_run(engine, PROMPTS[0], seeded))

    async def beside_others():
        others = [_run(engine, p, Sampling(12, temperature=1.0)) for p in PROMPTS[1:]]
        return (await asyncio.gather(_run(engine, PROMPTS[0], seeded), *others))[0]

    assert asyncio.run(beside_others()) == alone
    assert asyncio.run(_run(engine, PROMPTS[0], Sampling(12, temperature=1.0, seed=8))) != alone


def test_leaving_a_stream_cancels_the_request_and_frees_its_slot(engine):
    async def leave_after_two_steps():
        async with contextlib.aclosing(engine.stream(PROMPTS[0], Sampling(200, temperature=0))) as steps:
            async for tokens in steps:
                if len(tokens) >= 2:
                    break
        for _ in range(100):  # the decode thread drops it at its next step
            if engine.running == 0:
                return True
            await asyncio.sleep(0.02)
        return False

    assert asyncio.run(leave_after_two_steps())
    assert asyncio.run(_run(engine, PROMPTS[1], Sampling(4, temperature=0)))  # and the engine serves on


def test_pick_is_argmax_when_greedy_and_a_seeded_draw_from_the_top_p_head_otherwise():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25], [0.05, 0.15, 0.8]]))
    greedy, top, seeded = Sampling(4, temperature=0), Sampling(4, top_p=0.5), Sampling(4, seed=3)
    assert pick(logits, [greedy] * 3, [0] * 3) == [2, 0, 2]
    # top_p 0.5 keeps only the most likely token of rows 0 and 1 (0.7 and 0.5 reach it alone)
    assert [pick(logits[:2], [top, top], [s, s]) for s in range(20)] == [[2, 0]] * 20
    draws = [pick(logits[2:], [seeded], [step])[0] for step in range(50)]
    assert draws == [pick(logits[2:], [seeded], [step])[0] for step in range(50)]  # (seed, step) fixes the draw
    assert set(draws) == {0, 1, 2} or set(draws) >= {1, 2}  # a draw, not the argmax


def test_a_stream_of_arrivals_never_holds_the_running_rows_for_two_prefills_in_a_row(engine, monkeypatch):
    ops: list[tuple[str, int]] = []
    for name in ("join", "step"):
        original = getattr(engine.batch, name)

        def recorded(*args, _name=name, _original=original, **kwargs):
            ops.append((_name, len(engine.batch)))
            return _original(*args, **kwargs)

        monkeypatch.setattr(engine.batch, name, recorded)

    async def arrivals():
        later, first = [], []
        async for first in engine.stream(PROMPTS[0], Sampling(30, temperature=0)):
            if len(later) < 12:  # a newcomer after each of the running request's steps
                later.append(asyncio.create_task(_run(engine, PROMPTS[1 + len(later) % 7], Sampling(3, temperature=0))))
        return first, await asyncio.gather(*later)

    first, later = asyncio.run(arrivals())
    assert len(first) == 30 and all(len(t) == 3 for t in later)
    joins = [i for i, (op, rows) in enumerate(ops) if op == "join" and rows > 0]
    assert len(joins) >= 3  # newcomers did join running rows
    assert all(ops[i - 1][0] == "step" for i in joins)  # and a decode step came between any two prefills
