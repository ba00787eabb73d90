"""Generation for concurrent requests: one decode thread over a `DecodeBatch`, one async stream per request.

The thread owns the batch. Between two decode steps it admits the requests that arrived (their prompts
prefilled together, once), then every running request advances one token in a single forward pass; a
request leaves when it reaches its own max_new_tokens or EOS, or when its client left, and its keys and
values go with it. Each request sees the ids generated so far after every step. With batching off,
requests run one at a time (the benchmark's baseline).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import torch
from prometheus_client import Counter, Gauge

from medllama.decoding import DecodeBatch, Sampling, pick

__all__ = ["Engine", "EngineError", "Sampling"]

log = logging.getLogger(__name__)
# On KServe's /metrics: what runs now and what was generated (a request that left stops counting at once)
RUNNING = Gauge("medllama_serve_requests_running", "requests holding a generation slot")
GENERATED = Counter("medllama_serve_generated_tokens", "tokens generated for all requests")


class EngineError(RuntimeError):
    """Generation failed inside the engine (not the client's fault)."""


@dataclass(eq=False)
class _Request:
    prompt: list[int]
    sampling: Sampling
    deliver: Callable[[object], None]  # thread-safe: hands a result to the request's stream
    tokens: list[int] = field(default_factory=list)
    done: bool = False  # EOS or max_new_tokens (set by the decode thread)
    left: bool = False  # the client is gone (set by the stream)


class Engine:
    """One model's decode thread, started once; `stream` is safe to call concurrently from the event loop."""

    def __init__(self, model, eos_token_id: int | list[int] | None, batching: bool = True, max_requests: int = 16):
        self.eos = set([eos_token_id] if isinstance(eos_token_id, int) else eos_token_id or [])
        self.max_requests = max_requests
        self.batch = DecodeBatch(model)
        with torch.inference_mode():  # the first forward pays one-time setup; not a client's
            self.batch.join([[0]])
            self.batch.keep([])
        self.rows: list[_Request] = []  # the batch's rows, in its order; only the decode thread changes it
        self._arrivals: queue.Queue[_Request | None] = queue.Queue()
        self._waiting: list[_Request] = []
        self._just_joined = False
        self._stopping = False
        self._one_at_a_time = None if batching else asyncio.Semaphore(1)
        self._thread = threading.Thread(target=self._run, name="medllama-decode", daemon=True)
        self._thread.start()

    @property
    def running(self) -> int:
        """Requests holding a row of the batch now."""
        return len(self.rows)

    def stop(self) -> None:
        self._stopping = True
        self._arrivals.put(None)  # wakes an idle thread
        self._thread.join(timeout=5)

    async def stream(self, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[list[int]]:
        """The request's generated ids so far, after each decode step; the last one ends it (EOS or
        max_new_tokens). Closing the iterator early lets its row go at the next step."""
        if self._one_at_a_time is None:
            async for tokens in self._stream(prompt_ids, sampling):
                yield tokens
            return
        async with self._one_at_a_time:
            async for tokens in self._stream(prompt_ids, sampling):
                yield tokens

    async def _stream(self, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[list[int]]:
        loop, results = asyncio.get_running_loop(), asyncio.Queue()
        request = _Request(list(prompt_ids), sampling, lambda r: loop.call_soon_threadsafe(results.put_nowait, r))
        self._arrivals.put(request)
        finished, count = False, 0
        RUNNING.inc()
        try:
            while not finished:
                result = await results.get()
                while not results.empty() and not isinstance(result, Exception):  # behind: only the latest counts
                    result = results.get_nowait()
                if isinstance(result, Exception):
                    raise EngineError(f"generation failed: {result}") from result
                tokens, finished = result
                GENERATED.inc(len(tokens) - count)
                count = len(tokens)
                yield tokens
        finally:
            RUNNING.dec()
            if not finished:  # the client left (disconnect, stop string): its row goes at the next step
                request.left = True

    # --- the decode thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        with torch.inference_mode():
            while not self._stopping:
                try:
                    self._advance()
                except Exception as e:  # a failed forward fails the requests in it, not the server
                    log.exception("decode step failed")
                    for request in self.rows:
                        request.deliver(e)
                    self.rows = []
                    self.batch.keep([])

    def _advance(self) -> None:
        """Admit the arrivals, else decode one step for every row; then let finished rows go."""
        self._collect(block=not self.rows and not self._waiting)
        self._let_go()
        # at most one prefill between two decode steps: a steady stream of arrivals cannot stall the running rows
        room = 0 if self._just_joined and self.rows else self.max_requests - len(self.rows)
        joining, self._waiting = self._waiting[:room], self._waiting[room:]
        self._just_joined = bool(joining)
        if joining:  # the newcomers' prompts in one pass; the running rows wait one forward for them
            self.rows += joining  # before the pass: a failure reaches them too
            logits = self.batch.join([r.prompt for r in joining])
        elif self.rows:
            logits = self.batch.step([r.tokens[-1] for r in self.rows])
        else:
            return
        updated = joining or self.rows
        for request, token in zip(updated, pick(logits, [r.sampling for r in updated],
                                                [len(r.tokens) for r in updated])):
            request.tokens.append(token)
            request.done = token in self.eos or len(request.tokens) >= request.sampling.max_new_tokens
            request.deliver((list(request.tokens), request.done))
        self._let_go()

    def _let_go(self) -> None:
        """Rows that finished or whose client left leave the batch; so do waiting requests whose client left."""
        keep = [i for i, r in enumerate(self.rows) if not (r.done or r.left)]
        self.batch.keep(keep)
        self.rows = [self.rows[i] for i in keep]
        self._waiting = [r for r in self._waiting if not r.left]

    def _collect(self, block: bool) -> None:
        try:
            if block:
                self._waiting.append(self._arrivals.get(timeout=0.5))
            while True:
                self._waiting.append(self._arrivals.get_nowait())
        except queue.Empty:
            pass
        self._waiting = [r for r in self._waiting if r is not None]  # None only wakes the thread to stop
