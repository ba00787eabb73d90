"""The streaming reverse proxy: OpenAI/KServe calls pass through after `decide`, and their tokens are counted.

Streamed chat/completions are sent upstream with `stream_options.include_usage` forced on, so the
model server ends the stream with a usage chunk; the proxy counts it, and strips it again when the
client had not asked for it (the client then sees exactly the stream it asked for). The request body
is re-encoded only then; events without usage pass through unparsed.

Like the check doors it is a plain ASGI app that `app.GateApp` calls before FastAPI's routes; it calls the model
server with one pooled keep-alive aiohttp session (a third of httpx's CPU per call, measured).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from yarl import URL

from medllama.gate import keys
from medllama.gate.decide import Allow, Deny, Gate
from medllama.gate.doors import allow_headers, deny_response, model_of, parse_json

log = logging.getLogger(__name__)

PREFIXES = ("/openai", "/v1", "/v2")  # the paths it serves: OpenAI routes and KServe's V1/V2 protocols
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# not forwarded: hop-by-hop headers, the gate's key (the model server never sees it), lengths aiohttp recomputes
_DROP_REQUEST = {"host", "authorization", "content-length", "connection", "keep-alive", "transfer-encoding",
                 "te", "upgrade", "proxy-authorization", "x-gate-user", "x-gate-key", "x-gate-agreement"}
_DROP_RESPONSE = {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding"}
# an event worth parsing: it carries usage (an object to count, or the null a client that did not ask must not see)
_USAGE = re.compile(rb'"usage"\s*:\s*(null|\{)')


class Proxy:
    """ASGI app forwarding `PREFIXES` to `upstream` once the gate allows; open it with `proxy.connected()`."""

    def __init__(self, gate: Gate, upstream: str) -> None:
        self.gate = gate
        self.base = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """One pooled keep-alive session to the model server for the app's lifetime."""
        connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=60)
        # no limit on a whole answer (a long stream is fine), only on silence between reads
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
            self.session = session
            try:
                yield
            finally:
                self.session = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in _METHODS:
            response: Response = JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                                              headers={"allow": ", ".join(sorted(_METHODS))})
        else:
            response = await self.forward(Request(scope, receive))
        await response(scope, receive, send)

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        payload = parse_json(body)
        model = model_of(request.method, path, payload)
        key = keys.bearer(request.headers.get("authorization"))
        decision, audit = await self.gate.run(self.gate.check, key, model, f"{request.method} {path}", "proxy")
        if isinstance(decision, Deny):
            return deny_response(decision)
        streamed = isinstance(payload, dict) and payload.get("stream") is True
        options = (payload.get("stream_options") or {}) if streamed else {}
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        # a malformed stream_options is the model server's to refuse
        if streamed and isinstance(options, dict) and not wants_usage:
            payload["stream_options"] = {**options, "include_usage": True}
            body = json.dumps(payload).encode()
        headers = {k: v for k, v in request.headers.items() if k not in _DROP_REQUEST}  # Starlette lower-cases names
        headers.update(allow_headers(decision))
        del headers["x-gate-key"]  # the proxy meters the answer: a model server reporting usage for it must not
        raw_path = request.scope.get("raw_path") or path.encode()
        query = request.scope.get("query_string", b"")
        url = URL(self.base + raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else ""),
                  encoded=True)  # as the client sent it: no re-quoting
        try:
            upstream = await self.session.request(request.method, url, headers=headers, data=body,
                                                  allow_redirects=False)
            streaming = streamed and upstream.content_type == "text/event-stream"
            content = b"" if streaming else await upstream.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            log.warning("upstream unreachable or broke off: %s", type(e).__name__)
            return deny_response(Deny(502, "the model server is unreachable or broke off its answer"))
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP_RESPONSE}
        meter = _Meter(self.gate, decision, audit)
        if streaming:
            return StreamingResponse(_relay_events(upstream, meter, wants_usage), status_code=upstream.status,
                                     headers=out_headers)
        upstream.release()
        reply = parse_json(content) if upstream.status < 400 else None
        usage = reply.get("usage") if isinstance(reply, dict) else None
        return Response(content, status_code=upstream.status, headers=out_headers,  # counted once it is sent
                        background=BackgroundTask(meter.count, usage) if isinstance(usage, dict) else None)


class _Meter:
    """Adds a response's reported usage to the key's totals and to the decision's audit record."""

    def __init__(self, gate: Gate, decision: Allow, audit: dict) -> None:
        self.gate, self.decision, self.audit = gate, decision, audit
        self.last_seen: dict | None = None  # a stream's usage: counted once, at its end

    async def count(self, usage: dict) -> None:
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        await self.gate.run(self.gate.record_usage, self.decision, prompt, completion, self.audit)


async def _relay_events(upstream: aiohttp.ClientResponse, meter: _Meter, wants_usage: bool) -> AsyncIterator[bytes]:
    """Pass SSE events (LF or CRLF line ends) on as they arrive; count the usage chunk, drop it if not asked for."""
    try:
        pending = b""
        async for data in upstream.content.iter_any():
            # normalised after joining, so a CRLF split across two reads still becomes one LF
            pending = (pending + data).replace(b"\r\n", b"\n")
            *events, pending = pending.split(b"\n\n")
            out = b"".join(_one_event(e, meter, wants_usage) for e in events if e)
            if out:
                yield out
        last = _one_event(pending.rstrip(b"\n"), meter, wants_usage) if pending.strip() else b""
        if last:
            yield last
    finally:
        upstream.release()
    if meter.last_seen is not None:
        await meter.count(meter.last_seen)
    else:
        log.warning("stream for key %s ended without a usage chunk: tokens not counted", meter.decision.prefix)


def _one_event(event: bytes, meter: _Meter, wants_usage: bool) -> bytes:
    """The event to send on (b"": drop it); remembers the newest usage the stream reported."""
    found = _USAGE.search(event)
    if found is None or (wants_usage and found.group(1) == b"null"):
        return event + b"\n\n"
    lines = event.split(b"\n")
    chunk = parse_json(b"\n".join(line[5:].lstrip() for line in lines if line.startswith(b"data:")))
    if isinstance(chunk, dict) and "usage" in chunk:
        if isinstance(chunk["usage"], dict):
            meter.last_seen = chunk["usage"]
        if not wants_usage:
            if not chunk.get("choices"):
                return b""  # the usage-only chunk the client did not ask for
            chunk.pop("usage")
            return f"data: {json.dumps(chunk)}\n\n".encode()
    return event + b"\n\n"
