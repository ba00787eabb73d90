"""The proxy's own handling of the model server's answer, the gate in-process with its real proxy.

It frames the event stream itself (it parses only events that carry usage): events split across reads at
any byte, with CRLF line ends, must still reach the client whole and be counted. The upstream is a raw socket
server writing a fixed chunked SSE answer 7 bytes at a time (no model server library splits its writes like
that on purpose). And a model server that cannot be reached is a 502 with a reason, not a 500."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from gate_helpers import MODEL, approved_key, auth, open_repo, write_config
from medllama.gate.app import create_app

CONTENT = [{"choices": [{"index": 0, "delta": {"content": w}}], "usage": None} for w in ("no ", "fever")]
USAGE = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}


def _sse_server(events: list[str]) -> tuple[str, threading.Thread]:
    """One HTTP/1.1 answer: `events` as CRLF-framed SSE, in 7-byte chunked pieces with a pause between them."""
    sock = socket.create_server(("127.0.0.1", 0))
    body = "".join(f"data: {e}\r\n\r\n" for e in events).encode()

    def serve() -> None:
        conn, _ = sock.accept()
        with conn, sock:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, rest = request.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += conn.recv(65536)
            assert json.loads(rest)["stream_options"] == {"include_usage": True}  # forced on by the proxy
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                         b"connection: close\r\n\r\n")
            for i in range(0, len(body), 7):
                piece = body[i:i + 7]
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                time.sleep(0.002)
            conn.sendall(b"0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}", thread


def test_events_split_anywhere_with_crlf_arrive_whole_and_are_counted(tmp_path: Path) -> None:
    events = [json.dumps(c) for c in CONTENT] + [json.dumps(USAGE), "[DONE]"]
    upstream, server = _sse_server(events)
    config, repo = open_repo(write_config(tmp_path, f"sqlite:///{tmp_path / 'gate.db'}", upstream=upstream))
    key, row = approved_key(config, repo)
    app = create_app(config)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a b c d"}], "stream": True}
    with TestClient(app) as client:
        r = client.post("/openai/v1/chat/completions", json=body, headers=auth(key))
        server.join(timeout=10)
        app.state.gate.ledger.flush()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    got = [e.removeprefix("data: ") for e in r.text.split("\n\n") if e]
    # the client did not ask for usage: the usage-only event is dropped and the null usage fields removed
    assert [json.loads(e) if e != "[DONE]" else e for e in got] == \
        [{"choices": c["choices"]} for c in CONTENT] + ["[DONE]"]
    [usage] = repo.usage(row.prefix)
    assert (usage["requests"], usage["prompt_tokens"], usage["completion_tokens"]) == (1, 4, 2)


def test_an_unreachable_model_server_is_a_502_with_a_reason(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    config, repo = open_repo(write_config(tmp_path, f"sqlite:///{tmp_path / 'gate.db'}",
                                          upstream=f"http://127.0.0.1:{port}"))
    key, _ = approved_key(config, repo)
    with TestClient(create_app(config)) as client:
        r = client.post("/openai/v1/chat/completions", json={"model": MODEL, "messages": []}, headers=auth(key))
    assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"]
