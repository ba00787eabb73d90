"""What the gate adds in front of a model server: check and proxy latency, checks per CPU-second, first-token delay.

    .venv/bin/python bench/gate_overhead.py [--requests 2000] [--out bench/gate_overhead.json]

Real processes on loopback: the OpenAI-shaped stand-in model server of the gate tests, `medllama gate serve
--upstream` (SQLite, WAL), and Debian's nginx with two servers: one plain proxy to the model, one with the
gate's `auth_request` block. Sequential keep-alive requests, the paths taken in turn request by request (a
change of load on a shared machine hits them alike), warm-up excluded, p50/p99 of each path:

- check added   = nginx with auth_request - plain nginx (the same proxying, plus the gate's check)
- proxy added   = through `gate serve --upstream` - the model server directly (non-streamed chat)
- first token   = time to the first content chunk of a streamed chat, through the proxy vs directly
- CPU time the gate process spends per request on each path (load on the machine does not inflate it much,
  unlike wall-clock latency on shared cores)
- checks per CPU-second of the gate process (one core's worth of work): /proc CPU time of the server while
  a concurrent client sends checks (median of three series), so other load on the machine inflates it less;
  the same for `Gate.check` called in-process (decision + audit row, no HTTP); and an empty FastAPI route of
  the same server, the floor that FastAPI + uvicorn set on this machine.
Every check is a real decision with its audit row: the key with this minute's count and today's tokens (on
SQLite read again whenever the database changed), the audit row and count written in batches as the server
writes them (`medllama.gate.ledger`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "gate")]
from gate_helpers import (MODEL, approved_key, auth, gate_server, nginx_server, open_repo,  # noqa: E402
                     standin_model_server, write_config)

from servers import free_port  # noqa: E402

from medllama.gate.decide import Gate  # noqa: E402
from medllama.gate.nginx import Route  # noqa: E402

CHAT = "/openai/v1/chat/completions"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "does the patient have a fever"}]}
NGINX = "/usr/sbin/nginx"


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
            "n": len(ms)}


def one_call(client: httpx.Client, method: str, url: str, headers: dict) -> float:
    """Seconds until the whole answer is in (the chat BODY for POST)."""
    t0 = time.perf_counter()
    r = client.request(method, url, json=BODY if method == "POST" else None, headers=headers)
    took = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
    return took


def first_token(client: httpx.Client, method: str, url: str, headers: dict) -> float:
    """Seconds to the first content chunk of a streamed chat; read to its end (the usage is counted there)."""
    t0, took = time.perf_counter(), None
    with client.stream(method, url, json={**BODY, "stream": True}, headers=headers) as r:
        for line in r.iter_lines():
            if took is None and line.startswith("data:") and '"content"' in line:
                took = time.perf_counter() - t0
    return took


def interleaved(call, paths: dict[str, tuple[str, str, dict]], n: int, warmup: int) -> dict[str, dict]:
    """p50/p99 of `call` on every path, taken in turn (one keep-alive client per path) for `n` rounds after
    `warmup`: a change of load on the shared machine then hits every path alike."""
    clients = {name: httpx.Client(trust_env=False) for name in paths}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for i in range(n + warmup):
            for name, (method, url, headers) in paths.items():
                took = call(clients[name], method, url, headers)
                if i >= warmup:
                    samples[name].append(took)
    finally:
        for client in clients.values():
            client.close()
    return {name: percentiles(times) for name, times in samples.items()}


def cpu_ms_per_call(pid: int, method: str, url: str, headers: dict, n: int) -> float:
    """CPU milliseconds process `pid` spends per call, over `n` sequential calls."""
    with httpx.Client(trust_env=False) as client:
        before = cpu_seconds(pid)
        for _ in range(n):
            one_call(client, method, url, headers)
        return round((cpu_seconds(pid) - before) * 1000 / n, 3)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_per_cpu_second(url: str, pid: int, headers: dict, n: int, concurrency: int = 16) -> dict:
    """`n` GETs of `url`, `concurrency` at a time; CPU seconds the server process `pid` spent on them."""

    async def run() -> float:
        async with httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=concurrency)) as client:
            sem = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with sem:
                    r = await client.get(url, headers=headers)
                    if r.status_code != 200:
                        raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:200]}")

            t0 = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            return time.perf_counter() - t0

    before = cpu_seconds(pid)
    wall = asyncio.run(run())
    used = cpu_seconds(pid) - before
    return {"requests": n, "concurrency": concurrency, "server_cpu_s": round(used, 3),
            # /proc counts CPU in clock ticks (10 ms): a short series can read 0, which tells nothing
            "per_cpu_s": round(n / used, 1) if used > 0 else None, "wall_per_s": round(n / wall, 1)}


def in_process_checks(config, repo, key: str, n: int) -> dict:
    gate = Gate(config, repo)
    times = []
    cpu0 = time.process_time()
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        decision, _ = gate.check(key, MODEL, "POST " + CHAT, "bench")
        if i % 100 == 0:  # the server writes its batch every 0.1 s (100-500 checks at these rates); each write
            gate.ledger.flush()  # changes the database, so the next check reads the key again
        times.append(time.perf_counter() - t0)
        assert decision.status == 200, decision
    cpu = time.process_time() - cpu0
    return {**percentiles(times), "checks_per_cpu_s": round(n / cpu, 1)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="timed requests per path (warm-up: 10%%)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    n, warmup = args.requests, max(5, args.requests // 10)
    root = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    result: dict = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                    "load_average_at_start": os.getloadavg(), "requests": n}
    with standin_model_server(root / "model.log") as model:
        config_path = write_config(root, f"sqlite:///{root / 'gate.db'}", upstream=model.url)
        config, repo = open_repo(config_path)
        key, row = approved_key(config, repo)
        repo.set_quota(row.prefix, requests_per_minute=10**9, tokens_per_day=10**12)
        headers = auth(key)
        with gate_server(config_path, root / "gate.log", upstream=model.url, access_log=False) as gate:
            gate_pid = _server_pid(root / "gate.log")
            plain_port = free_port()
            plain = (f"server {{\n    listen 127.0.0.1:{plain_port};\n    location / {{\n"
                     f"        proxy_http_version 1.1;\n        proxy_buffering off;\n        proxy_pass {model.url};\n    }}\n}}\n")
            with nginx_server(NGINX, root / "nginx", gate.url, [Route("/", MODEL, model.url)],
                              extra=plain) as nginx_url:
                check_only = {**headers, "x-original-uri": CHAT, "x-original-method": "POST", "x-gate-model": MODEL}
                paths = {
                    "model direct": ("POST", model.url + CHAT, {}),
                    "nginx plain": ("POST", f"http://127.0.0.1:{plain_port}{CHAT}", {}),
                    "nginx + gate auth_request": ("POST", nginx_url + CHAT, headers),
                    "gate proxy": ("POST", gate.url + CHAT, headers),
                    "gate check endpoint alone": ("GET", gate.url + "/check/nginx", check_only),
                }
                lat = interleaved(one_call, paths, n, warmup)
                streams = {k: paths[k] for k in ("model direct", "gate proxy")}
                ft = interleaved(first_token, streams, n // 4, warmup)
                gate_cpu_ms = {name: cpu_ms_per_call(gate_pid, *paths[name], n // 2)
                               for name in ("nginx + gate auth_request", "gate proxy", "gate check endpoint alone")}
                # three series: CPU time on a shared machine still moves between them, the median is reported
                series = [requests_per_cpu_second(gate.url + "/check/nginx", gate_pid, check_only, n * 2)
                          for _ in range(3)]
                result["checks_over_http"] = {**series[1], "per_cpu_s": _median([s["per_cpu_s"] for s in series]),
                                              "per_cpu_s_series": [s["per_cpu_s"] for s in series]}
                # the floor: an empty route of the same FastAPI/uvicorn process, no decision, no database
                result["empty_route_over_http"] = requests_per_cpu_second(gate.url + "/healthz", gate_pid, {}, n * 2)
        result["checks_in_process"] = in_process_checks(config, repo, key, n)
    result["latency"] = lat
    result["gate_cpu_ms_per_request"] = gate_cpu_ms
    result["first_token"] = ft
    result["added"] = {
        "check_p50_ms": round(lat["nginx + gate auth_request"]["p50_ms"] - lat["nginx plain"]["p50_ms"], 3),
        "check_p99_ms": round(lat["nginx + gate auth_request"]["p99_ms"] - lat["nginx plain"]["p99_ms"], 3),
        "proxy_p50_ms": round(lat["gate proxy"]["p50_ms"] - lat["model direct"]["p50_ms"], 3),
        "proxy_p99_ms": round(lat["gate proxy"]["p99_ms"] - lat["model direct"]["p99_ms"], 3),
        "first_token_p50_ms": round(ft["gate proxy"]["p50_ms"] - ft["model direct"]["p50_ms"], 3),
    }
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _server_pid(log: Path) -> int:
    """uvicorn's `Started server process [PID]` line: the process whose CPU time is measured."""
    for line in log.read_text().splitlines():
        if "Started server process [" in line:
            return int(line.split("[", 1)[1].split("]", 1)[0])
    raise RuntimeError(f"no server pid in {log}")


if __name__ == "__main__":
    main()
