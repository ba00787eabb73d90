"""Generation for concurrent requests: transformers' continuous batching behind one async stream per request.

`ContinuousBatchingManager` (transformers) runs the decode loop in a background thread over a paged KV
cache: requests join and leave between decode steps, each with its own max_new_tokens and sampling
settings, and a prompt is prefilled once. This module only adapts it to asyncio: a request is a stream
of its generated ids that the OpenAI layer reads, and leaving the stream early cancels the request,
which frees its cache blocks. With batching off, requests run one at a time (the benchmark's baseline).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import torch
from prometheus_client import Counter, Gauge
from transformers import GenerationConfig
from transformers.generation.configuration_utils import ContinuousBatchingConfig
from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor

log = logging.getLogger(__name__)
# On KServe's /metrics: what runs now and what was generated (a request that left stops counting at once)
RUNNING = Gauge("medllama_serve_requests_running", "requests holding a generation slot")
GENERATED = Counter("medllama_serve_generated_tokens", "tokens generated for all requests")


class EngineError(RuntimeError):
    """Generation failed inside the engine (not the client's fault)."""


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None

    def processor_kwargs(self, vocab_size: int) -> dict:
        """Per-request settings for the manager's logits processors: greedy is top-k 1 (one finite logit,
        so sampling cannot pick another token); a seed is used only when sampling."""
        if self.temperature == 0:
            return {"temperature": 1.0, "top_k": 1, "top_p": 1.0}
        kw = {"temperature": float(self.temperature), "top_k": vocab_size, "top_p": float(self.top_p)}
        return kw if self.seed is None else {**kw, "seed": int(self.seed)}


class SeededSampling(ContinuousBatchingLogitsProcessor):
    """Samples a seeded request's token itself, from the processed distribution, with a uniform draw that
    depends only on (seed, position), so its tokens do not depend on which requests share its batch.
    The row becomes one-hot; unseeded rows are left to the manager's own sampling."""

    supported_kwargs = {"seed": int}
    ignored_kwargs = ()

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.copy_(torch.full_like(int32_tensor, -1, dtype=torch.float32).view(torch.int32))

    def prepare_tensor_args(self, requests_with_new_token) -> torch.Tensor:
        draws = []
        for r in requests_with_new_token:
            seed = r.state.logit_processor_kwargs.get("seed")
            step = len(r.state.generated_tokens)
            draws.append(-1.0 if seed is None else random.Random(f"{seed}:{step}").random())
        return torch.tensor(draws, dtype=torch.float32).view(torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        draw = tensor_arg[: scores.size(0)].view(torch.float32).unsqueeze(-1)
        cdf = scores.float().softmax(-1).cumsum(-1)
        token = torch.searchsorted(cdf, draw.clamp(min=0)).clamp(max=scores.size(-1) - 1)
        one_hot = torch.full_like(scores, float("-inf")).scatter(-1, token, 0.0)
        return torch.where(draw >= 0, one_hot, scores)


class Engine:
    """One model's continuous batching manager, started once; `stream` is safe to call concurrently."""

    def __init__(self, model, eos_token_id: int | list[int] | None, batching: bool = True,
                 max_requests: int = 16, page_size: int = 32, max_batch_tokens: int = 512):
        self.model = model
        self.vocab_size = model.config.vocab_size
        self.context = model.config.max_position_embeddings
        self.eos_token_id = eos_token_id
        # Sampling processors exist only when the generation config asks for them; every request then
        # overrides these defaults with its own values (per_request_processors).
        generation = GenerationConfig(do_sample=True, temperature=0.5, top_k=self.vocab_size, top_p=0.5,
                                      eos_token_id=eos_token_id if eos_token_id is not None else -1)
        pages = -(-self.context // page_size)
        config = ContinuousBatchingConfig(
            per_request_processors=True, page_size=page_size, num_blocks=pages * max_requests,
            max_batch_tokens=max_batch_tokens, use_async_batching=False, max_requests_per_batch=max_requests)
        self.manager = model.init_continuous_batching(generation_config=generation, continuous_batching_config=config)
        processors = self.manager.logit_processor  # seeded sampling goes last, after temperature/top-k/top-p
        processors.logits_processor.append(SeededSampling())
        processors.tensors_required += 1
        processors.supported_keys.update(SeededSampling.supported_kwargs)
        self.manager.warmup()  # builds the batch processor up front: decode steps measured ~15x faster on CPU
        with torch.inference_mode():  # the generation thread runs in its starter's inference mode
            self.manager.start()
        self._one_at_a_time = None if batching else asyncio.Semaphore(1)
        self._ids = itertools.count()

    def stop(self) -> None:
        self.manager.stop(block=True, timeout=5)

    async def stream(self, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[list[int]]:
        """The request's generated ids so far, after each decode step; the last one ends it (EOS or
        max_new_tokens). Closing the iterator early cancels the request and frees its KV cache."""
        if self._one_at_a_time is None:
            async for tokens in self._stream(prompt_ids, sampling):
                yield tokens
            return
        async with self._one_at_a_time:
            async for tokens in self._stream(prompt_ids, sampling):
                yield tokens

    async def _stream(self, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[list[int]]:
        request_id = f"r{next(self._ids)}"
        outputs: asyncio.Queue = asyncio.Queue()
        self.manager.register_result_handler(request_id, outputs.put_nowait)  # before add: no result is missed
        self.manager.add_request(prompt_ids, request_id=request_id, max_new_tokens=sampling.max_new_tokens,
                                 streaming=True, eos_token_id=self.eos_token_id,
                                 **sampling.processor_kwargs(self.vocab_size))
        finished, count = False, 0
        RUNNING.inc()
        try:
            while not finished:
                out = await outputs.get()
                if out.error is not None:
                    raise EngineError(f"generation failed: {out.error}")
                finished = out.is_finished()
                GENERATED.inc(len(out.generated_tokens) - count)
                count = len(out.generated_tokens)
                yield out.generated_tokens
        finally:
            RUNNING.dec()
            if not finished:  # the client left (disconnect, stop string): free its slot now
                self.manager.cancel_request(request_id)
                with self.manager.output_router._lock:
                    self.manager.output_router.result_handlers.pop(request_id, None)
