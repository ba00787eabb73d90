"""Batched and prompt-sharing log-likelihoods equal a slow one-sequence-at-a-time computation."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from medllama.evaluate.scoring import encode_continuation, encode_prompt, fit, generate, loglikelihoods


def manual_loglikelihood(lm, prompt: list[int], cont: list[int]) -> float:
    """The definition, unbatched and unpadded: sum over option tokens of log p(token | everything before)."""
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.tensor([prompt + cont])).logits[0]
    total = 0.0
    for k, token in enumerate(cont):
        total += torch.log_softmax(logits[len(prompt) - 1 + k].double(), dim=-1)[token].item()
    return total


@pytest.fixture(scope="module")
def requests(lm):
    rng = random.Random(0)
    vocab = lm.model.config.vocab_size
    bos = lm.tokenizer.bos_token_id
    # prompts of very different lengths (padding), options of 1-5 tokens (the shared path's second pass)
    return [([bos] + [rng.randrange(4, vocab) for _ in range(rng.randint(1, 60))],
             [[rng.randrange(4, vocab) for _ in range(rng.randint(1, 5))] for _ in range(rng.randint(2, 4))])
            for _ in range(11)]


@pytest.fixture(scope="module")
def reference(lm, requests):
    return [[manual_loglikelihood(lm, p, c) for c in conts] for p, conts in requests]


@pytest.mark.parametrize("share_prompt", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_equals_unbatched(lm, requests, reference, share_prompt, batch_size):
    got = loglikelihoods(lm, requests, batch_size=batch_size, share_prompt=share_prompt)
    for want_row, got_row in zip(reference, got):
        assert got_row == pytest.approx(want_row, abs=1e-4)


def test_shared_equals_unshared_on_real_prompts(lm):
    prompts = ["### Instruction:\nAnswer with yes, no, or maybe.\n\n### Response:\n",
               "### Instruction:\nAnswer with the letter.\n\n### Input:\nQuestion: Which is it?\n\n### Response:\n"]
    reqs = [(encode_prompt(lm, p), [encode_continuation(lm, c) for c in ("yes", "no", "maybe", "A")]) for p in prompts]
    assert any(len(c) > 1 for _, conts in reqs for c in conts)
    shared = loglikelihoods(lm, reqs, batch_size=2, share_prompt=True)
    unshared = loglikelihoods(lm, reqs, batch_size=2, share_prompt=False)
    for s, u in zip(shared, unshared):
        assert s == pytest.approx(u, abs=1e-4)


def test_empty_option_is_refused(lm):
    with pytest.raises(ValueError, match="no tokens"):
        loglikelihoods(lm, [([1, 5], [[]])])


def test_fit_keeps_head_and_tail():
    ids = list(range(100))
    cut = fit(ids, 40)
    assert len(cut) == 40 and cut[:10] == ids[:10] and cut[10:] == ids[-30:]
    assert fit(ids, 200) == ids


def hf_generate_until(lm, prompt: list[int], max_new: int, until: list[str]) -> str:
    """lm-eval's generate_until for one prompt: HF greedy generate alone, decoded, cut by lm-eval's own function."""
    from lm_eval.models.utils import postprocess_generated_text

    eos = lm.tokenizer.eos_token_id
    with torch.inference_mode():
        out = lm.model.generate(torch.tensor([prompt]), max_new_tokens=max_new, do_sample=False, pad_token_id=lm.pad_id,
                                eos_token_id=eos)
    text = lm.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True)
    return postprocess_generated_text(text, until + [lm.tokenizer.decode([eos])], None)


def test_generate_joins_and_leaves_as_lm_eval_generate_until_alone(lm, monkeypatch):
    """Rows start from the shared template prefix, leave at a stop sequence and make room for the next prompt;
    every answer equals lm-eval's cut of HF generate on the prompt alone."""
    from medllama.decoding import DecodeBatch

    pytest.importorskip("lm_eval")
    head = "### Instruction:\nAnswer with yes, no, or maybe.\n\n### Input:\n"
    inputs = ["Is it yes?", "Question: which option, A B C D?", "no", "maybe the study", "A", "yes or no", "C D"]
    prompts = [encode_prompt(lm, f"{head}{x}\n\n### Response:\n") for x in inputs]
    raw = [hf_generate_until(lm, p, 12, []) for p in prompts]
    # a stop that some generations contain after their first character: two letters or digits, the commonest
    pairs = Counter(p for t in raw for p in {t[k:k + 2] for k in range(1, len(t) - 1)} if p.isascii() and p.isalnum())
    stop = max(sorted(pairs), key=pairs.get)
    want = [hf_generate_until(lm, p, 12, [stop]) for p in prompts]
    assert any(w != r for w, r in zip(want, raw)) and any(w == r for w, r in zip(want, raw))  # some cut, some not
    widths, step = [], DecodeBatch.step
    monkeypatch.setattr(DecodeBatch, "step", lambda self, tokens: widths.append(len(tokens)) or step(self, tokens))
    assert generate(lm, prompts, max_new_tokens=12, batch_size=3, stop=(stop,)) == want
    assert max(widths) == 3 and sum(widths) < len(prompts) * 11  # rows left before their 12th token


@pytest.mark.parametrize("batch_size", [1, 3])
def test_shared_template_prefix_equals_unbatched(lm, batch_size):
    """Prompts that begin alike (template, instruction) share one prefix pass; scores stay the definition's."""
    from medllama.evaluate.scoring import MIN_SHARED_PREFIX, common_prefix

    rng = random.Random(1)
    vocab = lm.model.config.vocab_size
    prefix = [lm.tokenizer.bos_token_id] + [rng.randrange(4, vocab) for _ in range(20)]
    reqs = [(prefix + [rng.randrange(4, vocab) for _ in range(rng.randint(1, 30))],
             [[rng.randrange(4, vocab) for _ in range(rng.randint(1, 4))] for _ in range(3)]) for _ in range(5)]
    assert common_prefix([p for p, _ in reqs]) >= MIN_SHARED_PREFIX
    want = [[manual_loglikelihood(lm, p, c) for c in conts] for p, conts in reqs]
    got = loglikelihoods(lm, reqs, batch_size=batch_size, share_prompt=True)
    for want_row, got_row in zip(want, got):
        assert got_row == pytest.approx(want_row, abs=1e-4)
    # a prompt equal to the common prefix keeps one token of its own
    assert common_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2
