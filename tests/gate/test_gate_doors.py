"""The authorization matrix through all three doors, on real processes: `medllama gate serve` (proxy and
ext_authz check), Debian's nginx with `auth_request`, and a model server behind them.

The model server is a stand-in (standin_model_server.py) whose fixed answers give exact token counts and
which reports the headers that reached it; tests/serve/test_gate_in_front.py runs the matrix through the
proxy and nginx in front of the real `medllama serve`. No Envoy binary exists here, so the ext_authz door is called the way
Envoy's HTTP ext_authz filter calls it (original method, path under the prefix, headers and body).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import httpx
import openai
import pytest

from medllama.gate.nginx import Route
from gate_helpers import (ADMIN_TOKEN, MODEL, OTHER_MODEL, approved_key, auth, authorization_matrix, gate_cli,
                     gate_server, nginx_server, open_repo, standin_model_server, write_config)

pytestmark = pytest.mark.local
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CHAT = "/openai/v1/chat/completions"
ISSUED: list[str] = []  # every clear key the tests made: none may appear in a log or the database


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: run .ci/install-services")
    root = tmp_path_factory.mktemp("gate-doors")
    with standin_model_server(root / "model.log") as model:
        config_path = write_config(root, f"sqlite:///{root / 'gate.db'}", upstream=model.url)
        with gate_server(config_path, root / "gate.log", upstream=model.url) as gate:
            routes = [Route("/", MODEL, model.url), Route("/other/", OTHER_MODEL, model.url)]
            with nginx_server(NGINX, root / "nginx", gate.url, routes) as nginx_url:
                config, repo = open_repo(config_path)
                yield {"model": model.url, "gate": gate.url, "nginx": nginx_url, "config": config, "repo": repo,
                       "root": root}


def call(stack: dict, door: str, key: str | None, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "does the patient have a fever"}]}
    if door == "proxy":
        return httpx.post(stack["gate"] + CHAT, json=body, headers=auth(key))
    if door == "ext_authz":  # as Envoy's HTTP ext_authz filter asks (path_prefix /check/envoy, body included)
        return httpx.post(stack["gate"] + "/check/envoy" + CHAT, json=body, headers=auth(key))
    prefix = "/other" if model == OTHER_MODEL else ""
    return httpx.post(stack["nginx"] + prefix + CHAT, json=body, headers=auth(key))


@pytest.mark.parametrize("door", ["proxy", "ext_authz", "nginx"])
def test_authorization_matrix(stack: dict, door: str) -> None:
    cases = authorization_matrix(stack["config"], stack["repo"])
    ISSUED.extend(c.key for c in cases if c.key and c.key.startswith("mlk_"))
    seen_before = httpx.get(stack["model"] + "/_seen").json()["requests"]
    got = {}
    for case in cases:
        if case.allowed_first:
            assert call(stack, door, case.key, case.model).status_code == 200, case.name
        r = call(stack, door, case.key, case.model)
        got[case.name] = r.status_code
        if case.status != 200:
            assert case.reason in r.json()["error"]["message"], (case.name, r.text)
    assert got == {c.name: c.status for c in cases}
    reached = httpx.get(stack["model"] + "/_seen").json()
    # only the valid call and the first over-rate call reach the model server (not the ext_authz door: it only checks)
    assert reached["requests"] - seen_before == (0 if door == "ext_authz" else 2)
    if door != "ext_authz":
        headers = reached["headers"]
        assert "authorization" not in headers and headers["x-gate-user"] == "ada@example.org"
        # the key prefix makes `medllama serve --usage-url` report usage: behind the proxy, which meters, it must not
        assert ("x-gate-key" in headers) == (door == "nginx")
        assert headers["x-gate-agreement"] == "me-llama-dua@2"


def test_ext_authz_allow_carries_identity_headers(stack: dict) -> None:
    key, row = approved_key(stack["config"], stack["repo"], email="grace@example.org")
    ISSUED.append(key)
    r = httpx.post(stack["gate"] + "/check/envoy/v2/models/" + MODEL + "/infer", json={}, headers=auth(key))
    assert r.status_code == 200 and r.headers["x-gate-user"] == "grace@example.org"
    assert r.headers["x-gate-key"] == row.prefix and key not in str(r.headers)


def test_streamed_tokens_are_counted_and_usage_chunk_hidden_unless_asked(stack: dict) -> None:
    key, row = approved_key(stack["config"], stack["repo"])
    ISSUED.append(key)
    client = openai.OpenAI(base_url=stack["gate"] + "/openai/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "one two three four"}]
    plain = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in plain) == "the patient has no fever "
    assert all(c.usage is None and c.choices for c in plain)  # the forced usage chunk never reached the client
    asked = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True,
                                                stream_options={"include_usage": True}))
    assert asked[-1].choices == [] and asked[-1].usage.completion_tokens == 5
    whole = client.chat.completions.create(model=MODEL, messages=messages)
    assert whole.usage.total_tokens == 9
    # through the admin API: the gate writes usage and audit in batches, and its reads include what is pending
    admin = {"headers": auth(ADMIN_TOKEN), "params": {"key": row.prefix}}
    [usage] = httpx.get(stack["gate"] + "/admin/api/usage", **admin).json()
    assert (usage["requests"], usage["prompt_tokens"], usage["completion_tokens"]) == (3, 12, 15)
    audited = [e for e in httpx.get(stack["gate"] + "/admin/api/audit", **admin).json() if e["outcome"] == "allow"]
    assert sorted((e["prompt_tokens"], e["completion_tokens"]) for e in audited) == [(4, 5)] * 3


def test_nginx_door_enforces_token_quota_from_metered_usage(stack: dict) -> None:
    """Tokens metered by the proxy count at the nginx door: 9 tokens used of 10 allow one more call, not two."""
    key, row = approved_key(stack["config"], stack["repo"])
    ISSUED.append(key)
    stack["repo"].set_quota(row.prefix, tokens_per_day=10)
    assert call(stack, "nginx", key, MODEL).status_code == 200  # ext_authz/nginx see no tokens themselves
    client = openai.OpenAI(base_url=stack["gate"] + "/openai/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a b c d"}])  # 9 tokens
    assert call(stack, "nginx", key, MODEL).status_code == 200
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a"}])  # 6 more: 15 > 10
    r = call(stack, "nginx", key, MODEL)
    assert r.status_code == 429 and "token quota" in r.json()["error"]["message"]


def test_revocation_and_quotas_take_effect_on_the_next_request(stack: dict) -> None:
    """The gate keeps a key's state between calls until the database changes: a quota cut or revocation by the
    CLI (another process) or the admin API still counts from the very next request."""
    key, row = approved_key(stack["config"], stack["repo"])
    other, other_row = approved_key(stack["config"], stack["repo"])
    ISSUED.extend([key, other])
    assert call(stack, "proxy", key, MODEL).status_code == 200  # 9 tokens metered
    assert call(stack, "nginx", key, MODEL).status_code == 200
    out = gate_cli(stack["root"] / "gate.yaml", "quota", row.prefix, "--tokens-per-day", "5")
    assert out.returncode == 0, out.stderr
    assert call(stack, "nginx", key, MODEL).status_code == 429
    out = gate_cli(stack["root"] / "gate.yaml", "revoke", row.prefix)
    assert out.returncode == 0, out.stderr
    assert call(stack, "proxy", key, MODEL).status_code == 401
    assert call(stack, "nginx", key, MODEL).status_code == 401
    assert call(stack, "ext_authz", other, MODEL).status_code == 200
    r = httpx.post(f"{stack['gate']}/admin/api/keys/{other_row.prefix}/revoke", headers=auth(ADMIN_TOKEN))
    assert r.status_code == 200
    assert call(stack, "ext_authz", other, MODEL).status_code == 401


def test_no_key_in_clear_in_logs_or_database(stack: dict) -> None:
    assert len(ISSUED) > 20
    root: Path = stack["root"]
    logs = "".join(p.read_text(errors="replace") for p in root.rglob("*.log"))
    assert "/openai/v1/chat/completions" in logs  # the logs are the ones the requests went through
    db = "\n".join(sqlite3.connect(root / "gate.db").iterdump())
    assert "api_keys" in db
    for key in ISSUED:
        secret = key.split("_", 2)[2]  # mlk_<prefix>_<secret>; the secret may contain "_"
        assert secret not in logs and secret not in db


def test_a_clean_stop_writes_every_batched_audit_row_count_and_token(tmp_path: Path) -> None:
    """Audit rows, request counts and usage are written in batches (here: hourly, so only the stop writes them);
    after `gate serve` stops on SIGTERM the database holds every one of them, exactly."""
    with standin_model_server(tmp_path / "model.log") as model:
        config_path = write_config(tmp_path, f"sqlite:///{tmp_path / 'gate.db'}", upstream=model.url)
        config_path.write_text(config_path.read_text() + "flush_seconds: 3600\n")
        config, repo = open_repo(config_path)
        key, row = approved_key(config, repo)
        with gate_server(config_path, tmp_path / "gate.log", upstream=model.url) as gate:
            check = {**auth(key), "x-original-uri": CHAT, "x-original-method": "POST", "x-gate-model": MODEL}
            with httpx.Client() as c:
                statuses = [c.get(gate.url + "/check/nginx", headers=check).status_code for _ in range(30)]
                statuses.append(c.get(gate.url + "/check/nginx", headers=auth("sk-wrong")).status_code)
            client = openai.OpenAI(base_url=gate.url + "/openai/v1", api_key=key, max_retries=0)
            messages = [{"role": "user", "content": "one two three"}]
            client.chat.completions.create(model=MODEL, messages=messages)
            list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
            assert repo.audit_events(row.prefix) == [] and repo.usage(row.prefix) == []  # all still pending
    assert statuses == [200] * 30 + [401]
    events = repo.audit_events(limit=1000)
    assert len(events) == 33 and sum(e["outcome"] == "allow" for e in events) == 32
    with repo.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT sum(count) FROM request_counts").scalar() == 32
    [usage] = repo.usage(row.prefix)
    assert (usage["requests"], usage["prompt_tokens"], usage["completion_tokens"]) == (2, 6, 10)
    proxied = [e for e in events if e["door"] == "proxy"]
    assert [(e["prompt_tokens"], e["completion_tokens"]) for e in proxied] == [(3, 5), (3, 5)]
