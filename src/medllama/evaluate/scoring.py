"""Running a causal LM over prompts: option log-likelihoods and greedy generation, batched.

Log-likelihood mode scores each option as the summed log-probability of its tokens after the prompt.
With `share_prompt` (the default) each prompt runs once and its KV cache is reused by all of its
options, so a 4-option question costs one prompt pass instead of four; single-token options (the
letters and yes/no/maybe) then need no second pass at all. The tokens all prompts begin with (template
and instruction) run once for the whole list; the prompt pass computes logits only where an option
starts and runs without a padding mask (right padding; see `_loglik_shared`). Both paths are checked against a plain
one-sequence-at-a-time computation in the tests.

Generation decodes over a `DecodeBatch` (medllama.decoding): the shared prefix is prefilled once, and a
finished question leaves the batch at once, the next one joining in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medllama.decoding import DecodeBatch, held_back, repeat_rows


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object  # a transformers tokenizer
    device: torch.device
    dtype: torch.dtype
    max_len: int  # positions the model was built for

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)


def load_model(model_dir: str | Path, device: str | None = None, max_memory: dict | None = None) -> LoadedModel:
    """An HF causal LM and its tokenizer, in eval mode: bf16 on CUDA, fp32 on CPU. `device="auto"` (the
    default where there are several GPUs) lets accelerate place a model too big for one device across the
    GPUs, then CPU memory, then disk (`max_memory` caps each, e.g. {0: "75GiB", "cpu": "200GiB"})."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    device = device or ("auto" if cuda and torch.cuda.device_count() > 1 else "cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda and device != "cpu" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if device == "auto":
        import shutil
        import tempfile
        import weakref

        offload = tempfile.mkdtemp(prefix="medllama-offload-")
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, device_map="auto",
                                                     max_memory=max_memory, offload_folder=offload).eval()
        weakref.finalize(model, shutil.rmtree, offload, True)
        # inputs go where the first layers run; accelerate's hooks bring the logits back there
        gpus = [d for d in model.hf_device_map.values() if d not in ("cpu", "disk")]
        dev = torch.device("cuda", gpus[0]) if gpus else torch.device("cpu")
    else:
        dev = torch.device(device)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(dev).eval()
    max_len = getattr(model.config, "max_position_embeddings", None) or 2048
    return LoadedModel(model, tokenizer, dev, dtype, max_len)


def encode_prompt(lm: LoadedModel, text: str) -> list[int]:
    return list(lm.tokenizer(text, add_special_tokens=True)["input_ids"])


def encode_continuation(lm: LoadedModel, text: str) -> list[int]:
    return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])


def fit(ids: list[int], budget: int) -> list[int]:
    """Cut the middle of an over-long prompt: the instruction (head) and the question (tail) stay."""
    if len(ids) <= budget:
        return ids
    head = budget // 4
    return ids[:head] + ids[len(ids) - (budget - head):]


def _batches(order: list[int], size: int, desc: str):
    for start in tqdm(range(0, len(order), size), desc=desc, unit="batch", leave=False, disable=None):
        yield order[start:start + size]


def _pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their mask (1 = a real token)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids.to(device), mask.to(device)


def loglikelihoods(lm: LoadedModel, requests: list[tuple[list[int], list[list[int]]]], batch_size: int = 8,
                   share_prompt: bool = True) -> list[list[float]]:
    """For each (prompt ids, [option ids]): the summed log-prob of every option given the prompt."""
    if any(not c for _, conts in requests for c in conts):
        raise ValueError("an option encodes to no tokens; every option needs at least one token")
    run = _loglik_shared if share_prompt else _loglik_unshared
    with torch.inference_mode():
        return run(lm, requests, batch_size)


def _loglik_unshared(lm: LoadedModel, requests, batch_size: int) -> list[list[float]]:
    pairs = [(i, j, p, c) for i, (p, conts) in enumerate(requests) for j, c in enumerate(conts)]
    scores = [[0.0] * len(conts) for _, conts in requests]
    # longest first: the first batch shows at once whether memory suffices, and padding stays small
    order = sorted(range(len(pairs)), key=lambda k: -(len(pairs[k][2]) + len(pairs[k][3])))
    for batch in _batches(order, batch_size, "loglikelihood"):
        rows = [pairs[k][2] + pairs[k][3] for k in batch]
        ids, mask = _pad(rows, lm.pad_id, device=lm.device)
        logits = lm.model(input_ids=ids, attention_mask=mask).logits
        for row, k in enumerate(batch):
            i, j, p, c = pairs[k]
            logp = torch.log_softmax(logits[row, len(p) - 1:len(p) + len(c) - 1].float(), dim=-1)
            scores[i][j] = logp.gather(1, torch.tensor(c, device=lm.device)[:, None]).sum().item()
    return scores


MIN_SHARED_PREFIX = 8  # tokens: a shorter common prefix is not worth a pass of its own


def common_prefix(prompts: list[list[int]]) -> int:
    """Tokens every prompt starts with (the template and instruction), leaving each at least one of its own."""
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def _prefix_cache(lm: LoadedModel, prefix: list[int]):
    """Keys/values of the prefix all prompts share, computed once for the whole request list."""
    if len(prefix) < MIN_SHARED_PREFIX:
        return None
    return lm.model(input_ids=torch.tensor([prefix], device=lm.device), use_cache=True, logits_to_keep=1).cache


def _loglik_shared(lm: LoadedModel, requests, batch_size: int) -> list[list[float]]:
    scores = [[0.0] * len(conts) for _, conts in requests]
    # The template and instruction every prompt starts with run once for the whole list, not once per prompt.
    shared = common_prefix([p for p, _ in requests])
    prefix_cache = _prefix_cache(lm, requests[0][0][:shared])
    shared = shared if prefix_cache is not None else 0
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i][0]))
    for batch in _batches(order, batch_size, "loglikelihood (shared prompts)"):
        prompts = [requests[i][0][shared:] for i in batch]
        lengths = torch.tensor([shared + len(p) for p in prompts], device=lm.device)
        # Right padding and no attention mask: a causal model never looks ahead, so the pads after a prompt
        # cannot change it, and attention keeps its mask-free fast path. Only the logits at each prompt's last
        # position are computed (the distinct ones, shared by the batch), not the whole vocabulary everywhere.
        ids, own_mask = _pad(prompts, lm.pad_id, device=lm.device)
        mask = torch.cat([torch.ones((len(batch), shared), dtype=own_mask.dtype, device=lm.device), own_mask], 1)
        pairs = [(row, i, j, c) for row, i in enumerate(batch) for j, c in enumerate(requests[i][1])]
        rest = [pair for pair in pairs if len(pair[3]) > 1]
        last, where = torch.unique(lengths - shared - 1, return_inverse=True)
        cache = repeat_rows(lm.model, prefix_cache, len(batch)) if shared else None
        out = lm.model(input_ids=ids, cache=cache, use_cache=bool(rest) or cache is not None, logits_to_keep=last)
        rows = torch.arange(len(batch), device=lm.device)
        first = torch.log_softmax(out.logits[rows, where].float(), dim=-1)
        for row, i, j, c in pairs:
            scores[i][j] = first[row, c[0]].item()
        for start in range(0, len(rest), batch_size):
            _continue_options(lm, out.cache, mask, lengths, rest[start:start + batch_size], scores)
    return scores


def _continue_options(lm: LoadedModel, cache, prompt_mask: torch.Tensor, lengths: torch.Tensor, pairs,
                      scores) -> None:
    """Feed options' tokens after their prompt's cached keys/values; add their log-probs to `scores`."""
    from transformers import DynamicCache

    rows = torch.tensor([row for row, *_ in pairs], device=lm.device)
    selected = DynamicCache(config=lm.model.config)
    for layer_idx, layer in enumerate(cache.layers):
        selected.update(layer.keys[rows], layer.values[rows], layer_idx)
    feed, feed_mask = _pad([c[:-1] for *_, c in pairs], lm.pad_id, device=lm.device)
    positions = lengths[rows, None] + torch.arange(feed.shape[1], device=lm.device)
    logits = lm.model(input_ids=feed, attention_mask=torch.cat([prompt_mask[rows], feed_mask], dim=1),
                      position_ids=positions, cache=selected, use_cache=True).logits
    for k, (_, i, j, c) in enumerate(pairs):
        logp = torch.log_softmax(logits[k, :len(c) - 1].float(), dim=-1)
        scores[i][j] += logp.gather(1, torch.tensor(c[1:], device=lm.device)[:, None]).sum().item()


def generate(lm: LoadedModel, prompts: list[list[int]], max_new_tokens: int, batch_size: int = 8,
             stop: tuple[str, ...] = ()) -> list[str]:
    """Greedy continuations of token-id prompts, decoded without special tokens and cut as lm-eval's
    `generate_until` cuts them. Up to `batch_size` rows decode together: the prefix all prompts share is
    prefilled once, and a row leaves as soon as its text is final (EOS, a stop sequence, `max_new_tokens`),
    the next prompt joining in its place, instead of every batch running until its longest row is done."""
    eos = lm.tokenizer.eos_token_id
    # lm-eval's `until` always holds the EOS token's text too; the cut is before each stop in turn
    stops = [s for s in (*stop, lm.tokenizer.decode([eos], skip_special_tokens=False) if eos is not None else "")
             if s]
    outputs = [""] * len(prompts)
    if not prompts:
        return outputs
    shared = common_prefix(prompts)
    prefix_cache = _prefix_cache(lm, prompts[0][:shared])
    shared = shared if prefix_cache is not None else 0
    # longest first: the first rows show at once whether memory suffices, and the joiners' padding stays small
    waiting = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    batch, rows, tokens = DecodeBatch(lm.model, lm.pad_id), [], {}
    with torch.inference_mode(), tqdm(total=len(prompts), desc="generate", unit="question", leave=False,
                                      disable=None) as bar:
        while rows or waiting:
            room = batch_size - len(rows)
            if waiting and room:  # newcomers are prefilled in one pass; the running rows wait for it
                joining, waiting = waiting[:room], waiting[room:]
                updated, logits = joining, batch.join([prompts[i] for i in joining], prefix_cache, shared)
                rows += joining
            else:
                updated, logits = rows, batch.step([tokens[i][-1] for i in rows])
            for i, token in zip(updated, logits.argmax(-1).tolist()):
                tokens.setdefault(i, []).append(token)
            keep = []
            for k, i in enumerate(rows):
                text = _final_text(lm, tokens[i], eos, stops, max_new_tokens)
                if text is None:
                    keep.append(k)
                else:
                    outputs[i] = text
                    bar.update()
            batch.keep(keep)
            rows = [rows[k] for k in keep]
    return outputs


def _final_text(lm: LoadedModel, ids: list[int], eos: int | None, stops: list[str], max_new_tokens: int) -> str | None:
    """A row's answer once no further token can change it, else None. lm-eval splits the whole generation at
    each stop in turn; a stop found here ends the row once no stop could still begin before the text's end."""
    text = lm.tokenizer.decode(ids, skip_special_tokens=True)
    cut = text
    for s in stops:
        cut = cut.split(s)[0]
    ended = ids[-1] == eos or len(ids) >= max_new_tokens
    return cut if ended or (len(cut) < len(text) and not held_back(text, stops)) else None
