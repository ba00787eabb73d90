"""The served model: KServe's `OpenAIGenerativeModel` for completions and chat over the batching engine.

KServe routes the requests and frames the stream; this class checks a request, renders and tokenizes
its prompt (a chat with the template saved at export: the SFT instruction format), generates through
`Engine`, applies stop strings and builds OpenAI's responses with usage. Bad requests come back as
OpenAI-shaped 400s naming the parameter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus

from kserve.protocol.rest.openai import OpenAIGenerativeModel
from kserve.protocol.rest.openai.errors import create_error_response
from kserve.protocol.rest.openai.types import (
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatMessage,
    ChoiceDelta,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionChunk,
    CompletionChunkChoice,
    ErrorResponse,
    UsageInfo,
)

from medllama.data.tokenizer import bos_prefix, encode_batch
from medllama.decoding import held_back
from medllama.serve.engine import Engine, Sampling
from medllama.serve.metering import GATE_KEY_HEADER, UsageReporter
from medllama.serve.resolve import ServedModel

log = logging.getLogger(__name__)
ROLES = ("system", "user", "assistant")


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param

    def response(self) -> ErrorResponse:
        return create_error_response(str(self), "BadRequestError", self.param or "", HTTPStatus.BAD_REQUEST)


@dataclass
class Piece:
    """What a decode step adds to the answer: new text, and why it ended once it has."""
    text: str
    finish_reason: str | None
    completion_tokens: int


class MedllamaModel(OpenAIGenerativeModel):
    def __init__(self, served: ServedModel, batching: bool = True, usage_url: str | None = None):
        super().__init__(served.name)
        self.served = served
        self.batching = batching
        self.usage_url = usage_url
        self.reporter: UsageReporter | None = None
        self.ready = False

    def load(self) -> bool:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            # the decode thread's matmuls get every core but one: the event loop (HTTP, SSE) keeps its own,
            # and an OpenMP team never waits for a member the event loop has pushed off its core
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) - 1))
        self.tokenizer = AutoTokenizer.from_pretrained(self.served.path)
        model = AutoModelForCausalLM.from_pretrained(self.served.path, dtype=dtype).to(device).eval()
        self.context = model.config.max_position_embeddings
        self.generator = Engine(model, self.tokenizer.eos_token_id, batching=self.batching)
        self.reporter = UsageReporter.from_env(self.usage_url)
        self.ready = True
        return True

    def stop(self) -> None:
        if self.ready:
            self.ready = False
            self.generator.stop()

    # --- the two OpenAI endpoints -----------------------------------------------------------------

    async def create_completion(self, request, raw_request=None, context=None):
        started = self._start(request, ("echo", "suffix", "logprobs"), lambda: self._prompt_ids(request.prompt),
                              request.max_tokens, raw_request)
        if isinstance(started, ErrorResponse):
            return started
        ids, pieces = started
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if request.stream:
            return self._completion_events(rid, created, pieces, len(ids), _include_usage(request))
        text, finish, n = await _collect(pieces)
        choice = CompletionChoice(index=0, text=text, finish_reason=finish,
                                  prompt_token_ids=ids if request.return_token_ids else None)
        return Completion(id=rid, created=created, model=self.name, usage=_usage(len(ids), n), choices=[choice])

    async def create_chat_completion(self, request, raw_request=None, context=None):
        started = self._start(request, ("logprobs", "tools", "echo"), lambda: self._chat_ids(request.messages),
                              request.max_completion_tokens or request.max_tokens, raw_request)
        if isinstance(started, ErrorResponse):
            return started
        ids, pieces = started
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if request.stream:
            return self._chat_events(rid, created, pieces, len(ids), _include_usage(request))
        text, finish, n = await _collect(pieces)
        choice = ChatCompletionChoice(index=0, message=ChatMessage(role="assistant", content=text), finish_reason=finish)
        return ChatCompletion(id=rid, created=created, model=self.name, choices=[choice], usage=_usage(len(ids), n),
                              prompt_token_ids=ids if request.return_token_ids else None)

    def _start(self, request, unsupported: tuple[str, ...], prompt_ids, max_tokens: int | None, raw_request=None):
        """(prompt ids, the answer's pieces as they come) of a valid request, else its 400."""
        try:
            _reject_unsupported(request, unsupported)
            ids = prompt_ids()
            sampling = self._sampling(request, len(ids), max_tokens)
        except BadRequest as e:
            return e.response()
        pieces = self._generate(ids, sampling, _stops(request.stop))
        key = raw_request.headers.get(GATE_KEY_HEADER) if raw_request is not None else None
        return ids, (self._metered(pieces, key, len(ids)) if key and self.reporter else pieces)

    # --- prompts ----------------------------------------------------------------------------------

    def _prompt_ids(self, prompt) -> list[int]:
        """A completion prompt (text or token ids; one prompt per request) as ids, BOS as data prep adds it."""
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]
        if isinstance(prompt, str):
            ids = bos_prefix(self.tokenizer) + encode_batch(self.tokenizer, [prompt])[0]
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            if not all(0 <= t < len(self.tokenizer) for t in prompt):
                raise BadRequest(f"prompt: token ids must be in [0, {len(self.tokenizer)})", "prompt")
            ids = list(prompt)
        else:
            raise BadRequest("prompt: send one prompt per request, as a string or a list of token ids", "prompt")
        if not ids:
            raise BadRequest("prompt: empty", "prompt")
        return ids

    def _chat_ids(self, messages) -> list[int]:
        """The chat rendered with the model's saved template (its SFT instruction format), tokenized as
        data prep tokenizes an SFT prompt."""
        if not self.tokenizer.chat_template:
            raise BadRequest(f"model {self.name} was exported without a chat template; use /completions", "messages")
        plain = []
        for i, m in enumerate(messages):
            role, content = m.get("role"), m.get("content")
            if isinstance(content, list):  # OpenAI content parts: text only
                if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                    raise BadRequest(f"messages[{i}].content: only text parts are supported", "messages")
                content = "".join(p.get("text", "") for p in content)
            if role not in ROLES or not isinstance(content, str):
                raise BadRequest(f"messages[{i}]: role must be one of {ROLES} with string content", "messages")
            plain.append({"role": role, "content": content})
        if not plain or plain[-1]["role"] != "user":
            raise BadRequest("messages: the last message must be the user's", "messages")
        ids = encode_batch(self.tokenizer, [self.tokenizer.apply_chat_template(plain, tokenize=False)])[0]
        bos = bos_prefix(self.tokenizer)  # the template opens with it when exported for such a tokenizer
        return ids if ids[:len(bos)] == bos else bos + ids

    def _sampling(self, request, prompt_len: int, max_tokens: int | None) -> Sampling:
        room = self.context - prompt_len
        if max_tokens is None:
            max_tokens = room
        if max_tokens < 1:
            raise BadRequest("max_tokens: must be at least 1", "max_tokens")
        if prompt_len + max_tokens > self.context:
            raise BadRequest(f"This model's maximum context length is {self.context} tokens. However, you requested "
                             f"{prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} for the "
                             "completion). Please reduce the prompt or max_tokens.", "max_tokens")
        temperature = 1.0 if request.temperature is None else request.temperature
        top_p = 1.0 if request.top_p is None else request.top_p
        if not 0 <= temperature <= 2:
            raise BadRequest("temperature: must be between 0 and 2", "temperature")
        if not 0 < top_p <= 1:
            raise BadRequest("top_p: must be in (0, 1]", "top_p")
        if (request.n or 1) != 1:
            raise BadRequest("n: only one choice per request is supported", "n")
        return Sampling(max_tokens, temperature, top_p, request.seed)

    # --- generation -------------------------------------------------------------------------------

    async def _generate(self, ids: list[int], sampling: Sampling, stops: list[str]) -> AsyncIterator[Piece]:
        """Text pieces as tokens arrive; the text that could still become a stop string is held back, and a
        stop string ends the request (cancelling it in the engine)."""
        sent, tokens = "", []
        async with contextlib.aclosing(self.generator.stream(ids, sampling)) as steps:
            async for tokens in steps:
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    yield Piece(text[len(sent):cut], "stop", len(tokens))
                    return
                safe = len(text) - held_back(text, stops)
                if safe > len(sent):
                    yield Piece(text[len(sent):safe], None, len(tokens))
                    sent = text[:safe]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        eos = bool(tokens) and tokens[-1] in _as_set(self.tokenizer.eos_token_id)
        finish = "stop" if eos or len(tokens) < sampling.max_new_tokens else "length"
        yield Piece(text[len(sent):], finish, len(tokens))

    async def _metered(self, pieces: AsyncIterator[Piece], key: str, prompt_len: int) -> AsyncIterator[Piece]:
        """The pieces, then the tokens used reported to the gate for `key` (also when the client left)."""
        n, whole = 0, False
        try:
            async for piece in pieces:
                n = piece.completion_tokens
                yield piece
            whole = True
        finally:
            if whole:  # before the stream's last chunk: the report is done within the request
                await self.reporter.report(key, self.name, prompt_len, n)
            else:
                self.reporter.report_later(key, self.name, prompt_len, n)

    async def _completion_events(self, rid, created, pieces, prompt_len, include_usage) -> AsyncIterator[str]:
        n = 0
        async for piece in pieces:
            n = piece.completion_tokens
            choice = CompletionChunkChoice(index=0, text=piece.text, finish_reason=piece.finish_reason)
            yield _event(CompletionChunk(id=rid, created=created, model=self.name, choices=[choice]))
        if include_usage:
            yield _event(CompletionChunk(id=rid, created=created, model=self.name, choices=[], usage=_usage(prompt_len, n)))
        yield "data: [DONE]\n\n"

    async def _chat_events(self, rid, created, pieces, prompt_len, include_usage) -> AsyncIterator[str]:
        def chunk(delta: ChoiceDelta, finish: str | None = None) -> str:
            choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)
            return _event(ChatCompletionChunk(id=rid, created=created, model=self.name, choices=[choice]))

        yield chunk(ChoiceDelta(role="assistant", content=""))
        n = 0
        async for piece in pieces:
            n = piece.completion_tokens
            yield chunk(ChoiceDelta(content=piece.text), piece.finish_reason)
        if include_usage:
            yield _event(ChatCompletionChunk(id=rid, created=created, model=self.name, choices=[],
                                             usage=_usage(prompt_len, n)))
        yield "data: [DONE]\n\n"


def _reject_unsupported(request, fields: tuple[str, ...]) -> None:
    for name in fields:
        if getattr(request, name, None) not in (None, False, []):
            raise BadRequest(f"{name}: not supported by this server", name)


def _stops(stop) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    return [s for s in stops if s]


def _as_set(ids) -> set[int]:
    return set(ids) if isinstance(ids, list) else {ids}


def _include_usage(request) -> bool:
    return bool(request.stream_options and request.stream_options.include_usage)


def _usage(prompt_tokens: int, completion_tokens: int) -> UsageInfo:
    return UsageInfo(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     total_tokens=prompt_tokens + completion_tokens)


def _event(chunk) -> str:
    return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"


async def _collect(pieces: AsyncIterator[Piece]) -> tuple[str, str | None, int]:
    text, finish, n = [], None, 0
    async for piece in pieces:
        text.append(piece.text)
        finish, n = piece.finish_reason, piece.completion_tokens
    return "".join(text), finish, n
