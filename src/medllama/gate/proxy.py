"""The streaming reverse proxy: OpenAI/KServe calls pass through after `decide`, and their tokens are counted.

Streamed chat/completions are sent upstream with `stream_options.include_usage` forced on, so the
model server ends the stream with a usage chunk; the proxy counts it, and strips it again when the
client had not asked for it (the client then sees exactly the stream it asked for).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from medllama.gate import keys
from medllama.gate.db import utcnow
from medllama.gate.decide import Allow, Deny, Gate
from medllama.gate.deps import get_gate
from medllama.gate.doors import allow_headers, deny_response, model_of, parse_json

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# not forwarded: hop-by-hop headers, the gate's key (the model server never sees it), lengths we recompute
_DROP_REQUEST = {"host", "authorization", "content-length", "connection", "keep-alive", "transfer-encoding",
                 "te", "upgrade", "proxy-authorization", "x-gate-user", "x-gate-key", "x-gate-agreement"}
_DROP_RESPONSE = {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding"}


@asynccontextmanager
async def upstream_client(base_url: str | None) -> AsyncIterator[httpx.AsyncClient | None]:
    if not base_url:
        yield None
        return
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=httpx.Timeout(600.0, connect=10.0),
                                 limits=limits, trust_env=False) as client:
        yield client


@router.api_route("/openai/{path:path}", methods=_METHODS)
@router.api_route("/v1/{path:path}", methods=_METHODS)
@router.api_route("/v2/{path:path}", methods=_METHODS)
async def proxy(request: Request, gate: Gate = Depends(get_gate)) -> Response:
    body = await request.body()
    path = request.url.path
    payload = parse_json(body)
    model = model_of(request.method, path, payload)
    key = keys.bearer(request.headers.get("authorization"))
    decision, audit_id = await gate.run(gate.check, key, model, f"{request.method} {path}", "proxy")
    if isinstance(decision, Deny):
        return deny_response(decision)
    streamed = isinstance(payload, dict) and payload.get("stream") is True
    options = (payload.get("stream_options") or {}) if streamed else {}
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    if streamed and isinstance(options, dict) and not wants_usage:  # a malformed one is the model server's to refuse
        payload["stream_options"] = {**options, "include_usage": True}
        body = json.dumps(payload).encode()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
    headers.update(allow_headers(decision))
    client: httpx.AsyncClient = request.app.state.upstream
    upstream_request = client.build_request(request.method, path, params=request.query_params, headers=headers,
                                            content=body)
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.HTTPError as e:
        log.warning("upstream unreachable: %s", type(e).__name__)
        return deny_response(Deny(502, "the model server is unreachable"))
    out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP_RESPONSE}
    meter = _Meter(gate, decision, audit_id)
    if streamed and upstream.headers.get("content-type", "").startswith("text/event-stream"):
        return StreamingResponse(_relay_events(upstream, meter, wants_usage), status_code=upstream.status_code,
                                 headers=out_headers, background=BackgroundTask(upstream.aclose))
    content = await upstream.aread()
    await upstream.aclose()
    reply = parse_json(content)
    counted = upstream.status_code < 400 and isinstance(reply, dict) and isinstance(reply.get("usage"), dict)
    return Response(content, status_code=upstream.status_code, headers=out_headers,  # counted once it is sent
                    background=BackgroundTask(meter.count, reply["usage"]) if counted else None)


class _Meter:
    """Adds a response's reported usage to the key's totals and to the decision's audit record."""

    def __init__(self, gate: Gate, decision: Allow, audit_id: int) -> None:
        self.gate, self.decision, self.audit_id = gate, decision, audit_id
        self.counted = False
        self.last_seen: dict | None = None  # a stream's usage: counted once, at its end

    async def count(self, usage: dict) -> None:
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        await self.gate.run(self.gate.repo.record_usage, self.decision.key_id, self.decision.model or "",
                                utcnow(), prompt, completion, self.audit_id)
        self.counted = True


async def _relay_events(upstream: httpx.Response, meter: _Meter, wants_usage: bool) -> AsyncIterator[bytes]:
    """Pass SSE events through one by one; count the usage chunk, and drop it if the client did not ask for it."""
    event: list[str] = []
    async for line in upstream.aiter_lines():
        if line:
            event.append(line)
            continue
        if event:
            out = _one_event(event, meter, wants_usage)
            event = []
            if out is not None:
                yield out
    if event:
        out = _one_event(event, meter, wants_usage)
        if out is not None:
            yield out
    if meter.last_seen is not None:
        await meter.count(meter.last_seen)
    else:
        log.warning("stream for key %s ended without a usage chunk: tokens not counted", meter.decision.prefix)


def _one_event(lines: list[str], meter: _Meter, wants_usage: bool) -> bytes | None:
    """The event to send on (None: drop it); remembers the newest usage the stream reported."""
    data = "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
    chunk = parse_json(data.encode()) if data and data != "[DONE]" else None
    if isinstance(chunk, dict) and "usage" in chunk:
        if isinstance(chunk["usage"], dict):
            meter.last_seen = chunk["usage"]
        if not wants_usage:
            if not chunk.get("choices"):
                return None  # the usage-only chunk the client did not ask for
            chunk.pop("usage")
            lines = [f"data: {json.dumps(chunk)}"]
    return ("\n".join(lines) + "\n\n").encode()
