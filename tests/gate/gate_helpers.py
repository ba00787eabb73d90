"""Shared pieces of the gate tests: the test config, keys in every state, the authorization matrix."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py
from servers import _process_group, free_port, venv_bin, wait_until, _http_ok  # noqa: E402
import socket  # noqa: E402

from medllama.gate import keys
from medllama.gate.config import GateConfig, load_config
from medllama.gate.db import make_engine, utcnow
from medllama.gate.nginx import Route, server_block
from medllama.gate.repository import Repository, migrate

MODEL = "me-llama-tiny"  # needs me-llama-dua version 2
OTHER_MODEL = "other-model"  # needs other-dua
ADMIN_TOKEN = "admin-" + secrets.token_urlsafe(16)
HERE = Path(__file__).resolve().parent
FORM = {"name": "Ada Lovelace", "email": "ada@example.org", "affiliation": "Analytical Engines",
        "training_certificate": "CITI-12345", "intended_use": "benchmarking on de-identified notes"}


def write_config(directory: Path, database_url: str, upstream: str | None = None) -> Path:
    """Two versions of the Me-LLaMA agreement (manual approval) and one other agreement (automatic)."""
    fields = [{"name": n, "label": n.replace("_", " ").capitalize(), "kind": "email" if n == "email" else "text"}
              for n in FORM]
    config = {
        "database_url": database_url,
        "agreements": [
            {"id": "me-llama-dua", "version": v, "title": f"Me-LLaMA DUA v{v}", "text": f"# Terms v{v}\nNo clinical use.",
             "fields": fields, "approval": "manual"} for v in (1, 2)
        ] + [{"id": "other-dua", "version": 1, "title": "Other", "text": "Other terms.", "fields": fields[:2],
              "approval": "auto"}],
        "models": {MODEL: "me-llama-dua@2", OTHER_MODEL: "other-dua@1"},
        "keys": {"default_days": 30, "max_days": 60, "requests_per_minute": 1000, "tokens_per_day": 100_000},
    }
    if upstream:
        config["upstream"] = upstream
    path = directory / "gate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def open_repo(config_path: Path) -> tuple[GateConfig, Repository]:
    config = load_config(config_path, environ={})
    engine = make_engine(config.database_url)
    migrate(engine)
    return config, Repository(engine)


def approved_key(config: GateConfig, repo: Repository, agreement_id: str = "me-llama-dua", version: int | None = None,
                 days: int | None = None, age_days: int = 0, email: str = "ada@example.org"):
    """Request (agreement at `version`, default newest), approve, issue; returns (clear key, key row)."""
    agreement = next(a for a in config.agreements if a.id == agreement_id
                     and a.version == (version or config.agreement(agreement_id).version))
    now = utcnow() - timedelta(days=age_days)
    req, _ = repo.create_request(agreement, {**FORM, "email": email}, now)
    if req.status == "pending":
        repo.decide_request(req.id, True, "test", now)
    new, row = repo.issue_key(req.id, config.keys, now, days)
    return new.key, row


@dataclass
class Case:
    name: str
    key: str | None
    model: str
    status: int
    reason: str  # a fragment of the reason the client must see
    allowed_first: bool = False  # over-rate: the first call passes, the second is refused


def authorization_matrix(config: GateConfig, repo: Repository) -> list[Case]:
    """Keys in every state the gate distinguishes, each with the status it must get."""
    valid, _ = approved_key(config, repo)
    revoked, row = approved_key(config, repo)
    repo.revoke(row.prefix, utcnow())
    expired, _ = approved_key(config, repo, days=1, age_days=2)
    old, _ = approved_key(config, repo, version=1)
    rate, row = approved_key(config, repo)
    repo.set_quota(row.prefix, requests_per_minute=1)
    spent, row = approved_key(config, repo)
    repo.set_quota(row.prefix, tokens_per_day=10)
    repo.record_usage(row.id, MODEL, utcnow(), 7, 5)
    return [
        Case("no key", None, MODEL, 401, "missing API key"),
        Case("malformed", "sk-not-a-gate-key", MODEL, 401, "malformed"),
        Case("unknown", keys.new_key().key, MODEL, 401, "unknown API key"),
        Case("revoked", revoked, MODEL, 401, "revoked"),
        Case("expired", expired, MODEL, 401, "expired"),
        Case("wrong model", valid, OTHER_MODEL, 403, "does not cover model"),
        Case("old agreement version", old, MODEL, 403, "requires me-llama-dua version 2"),
        Case("over rate", rate, MODEL, 429, "rate limit", allowed_first=True),
        Case("over token quota", spent, MODEL, 429, "token quota"),
        Case("valid", valid, MODEL, 200, ""),
    ]


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key is not None else {}


@dataclass
class Server:
    url: str
    log: Path
    env: dict = field(default_factory=dict)


@contextlib.contextmanager
def running(cmd: list[str], health_path: str, log: Path, env: dict | None = None, port: int | None = None,
            what: str = "server", timeout: float = 60) -> Iterator[Server]:
    """Run `cmd` (it must listen on `port`) until `health_path` answers; keep its log at `log`."""
    url = f"http://127.0.0.1:{port}"
    with _process_group(cmd, log, env) as proc:
        wait_until(lambda: _http_ok(url + health_path), what, timeout, proc, log)
        yield Server(url, log, env or {})


@contextlib.contextmanager
def standin_model_server(log: Path) -> Iterator[Server]:
    port = free_port()
    cmd = [sys.executable, str(HERE / "standin_model_server.py"), str(port), MODEL]
    with running(cmd, "/v2/health/ready", log, dict(os.environ), port, "stand-in model server") as s:
        yield s


@contextlib.contextmanager
def gate_server(config_path: Path, log: Path, upstream: str | None = None, access_log: bool = True) -> Iterator[Server]:
    """`medllama gate serve` as users run it, admin token from the environment (access log on: tests read it)."""
    port = free_port()
    cmd = [venv_bin("medllama") or "medllama", "gate", "--config", str(config_path), "serve", "--port", str(port)]
    if access_log:
        cmd.append("--access-log")
    if upstream:
        cmd += ["--upstream", upstream]
    env = {**os.environ, "MEDLLAMA_GATE_ADMIN_TOKEN": ADMIN_TOKEN,
           "PYTHONPATH": str(HERE.parents[1] / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with running(cmd, "/healthz", log, env, port, "medllama gate serve") as s:
        yield s


def gate_cli(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`medllama gate --config … ARGS` in a subprocess, as an operator types it."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([venv_bin("medllama") or "medllama", "gate", "--config", str(config_path), *args],
                          capture_output=True, text=True, env=env)


@contextlib.contextmanager
def nginx_server(nginx: str, prefix: Path, gate_url: str, routes: list[Route], extra: str = "") -> Iterator[str]:
    """Debian's nginx as a plain process on a loopback port with the server block the gate ships (+ `extra`)."""
    prefix.mkdir()
    port = free_port()
    (prefix / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "events { worker_connections 1024; }\nhttp {\n"
        f"    access_log {prefix}/access.log;\n"
        + "".join(f"    {t}_temp_path {prefix}/{t};\n" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + server_block(f"127.0.0.1:{port}", gate_url, routes) + extra + "}\n")
    cmd = [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    with _process_group(cmd, prefix / "stdout.log") as proc:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, "nginx",
                   30, proc, prefix / "error.log")
        yield f"http://127.0.0.1:{port}"
