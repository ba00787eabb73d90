"""A stand-in OpenAI-shaped model server for the gate tests (the real `medllama serve` had not landed yet).

It answers /openai/v1 chat/completions like KServe's OpenAI data plane does: JSON with `usage`, or an
SSE stream that ends with a usage-only chunk when `stream_options.include_usage` is set, then
`data: [DONE]`. `/_seen` reports the headers of the last request, so tests can check what reached it.
Run: `python standin_model_server.py PORT MODEL`.
"""

from __future__ import annotations

import json
import sys
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

WORDS = ["the", "patient", "has", "no", "fever"]  # each word is one "token"
app = FastAPI()
seen: dict = {"requests": 0, "headers": {}}


def _usage(prompt: str) -> dict:
    prompt_tokens = len(prompt.split())
    return {"prompt_tokens": prompt_tokens, "completion_tokens": len(WORDS),
            "total_tokens": prompt_tokens + len(WORDS)}


@app.get("/v2/health/ready")
def ready() -> dict:
    return {"ready": True}


@app.get("/_seen")
def report() -> dict:
    return seen


@app.get("/openai/v1/models")
def models() -> dict:
    return {"object": "list", "data": [{"id": app.state.model, "object": "model", "owned_by": "standin"}]}


@app.post("/openai/v1/chat/completions")
async def chat(request: Request):
    seen["requests"] += 1
    seen["headers"] = dict(request.headers)
    body = await request.json()
    if body.get("model") != app.state.model:
        return JSONResponse({"error": f"model {body.get('model')!r} not found"}, status_code=404)
    prompt = " ".join(m.get("content", "") for m in body.get("messages", []))
    created, rid = int(time.time()), "chatcmpl-standin"
    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": app.state.model}
    if not body.get("stream"):
        return {"id": rid, "object": "chat.completion", "created": created, "model": app.state.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(WORDS)},
                             "finish_reason": "stop"}], "usage": _usage(prompt)}
    include_usage = (body.get("stream_options") or {}).get("include_usage") is True

    async def events():
        for i, word in enumerate(WORDS):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": word + " "},
                                          "finish_reason": "stop" if i == len(WORDS) - 1 else None}]}
            if include_usage:
                chunk["usage"] = None
            yield f"data: {json.dumps(chunk)}\n\n"
        if include_usage:
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': _usage(prompt)})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


if __name__ == "__main__":
    app.state.model = sys.argv[2]
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
