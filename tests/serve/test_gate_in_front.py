"""The gate in front of the real `medllama serve`: the authorization matrix through the proxy door and
through Debian's nginx with `auth_request`; and token quotas at the door where the gate never sees the
answer (nginx), from the usage `medllama serve --usage-url` reports with the meter token. Streamed and
non-streamed answers count, as does one the client left early; the quota then refuses the key at the
nginx door; the meter token opens nothing but the usage report. (tests/gate/test_gate_doors.py runs the
same matrix, plus ext_authz, in front of a stand-in whose exact answers and seen headers it reads.)"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import httpx
import openai
import pytest

from gate.gate_helpers import (ADMIN_TOKEN, MODEL, OTHER_MODEL, approved_key, auth, authorization_matrix, gate_server, nginx_server,
                               open_repo, write_config)
from medllama.gate.nginx import Route

from servers import free_port

from .conftest import medllama_serve

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
METER_TOKEN = "meter-" + secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_served_dir: Path):
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: run .ci/install-services")
    root = tmp_path_factory.mktemp("gate-in-front")
    model_port = free_port()  # the gate proxies to the model server, which reports usage to the gate
    config_path = write_config(root, f"sqlite:///{root / 'gate.db'}", upstream=f"http://127.0.0.1:{model_port}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MEDLLAMA_GATE_METER_TOKEN", METER_TOKEN)
        with gate_server(config_path, root / "gate.log", upstream=f"http://127.0.0.1:{model_port}") as gate:
            usage_url = gate.url + "/admin/api/usage"
            with medllama_serve(str(tiny_served_dir), "--name", MODEL, "--usage-url", usage_url,
                                env={"MEDLLAMA_USAGE_TOKEN": METER_TOKEN}, port=model_port) as model:
                routes = [Route("/", MODEL, model.url), Route("/other/", OTHER_MODEL, model.url)]  # nginx: a route per model
                with nginx_server(NGINX, root / "nginx", gate.url, routes) as nginx_url:
                    config, repo = open_repo(config_path)
                    yield {"gate": gate.url, "nginx": nginx_url, "config": config, "repo": repo}


def used(stack: dict, prefix: str) -> tuple[int, int]:
    rows = stack["repo"].usage(prefix, None)
    return sum(r["prompt_tokens"] for r in rows), sum(r["completion_tokens"] for r in rows)


def billed(stack: dict, prefix: str) -> tuple[int, int]:
    """Usage of a client that left early is reported from a task of its own: give it a moment."""
    for _ in range(50):
        if used(stack, prefix)[1]:
            break
        time.sleep(0.1)
    return used(stack, prefix)


@pytest.mark.parametrize("door", ["proxy", "nginx"])
def test_authorization_matrix_in_front_of_the_real_server(stack: dict, door: str) -> None:
    got, want = {}, {}
    for case in authorization_matrix(stack["config"], stack["repo"]):
        base = stack["gate"] if door == "proxy" else stack["nginx"] + ("/other" if case.model == OTHER_MODEL else "")
        body = {"model": case.model, "prompt": "Anemia is", "max_tokens": 2}
        call = lambda: httpx.post(base + "/openai/v1/completions", json=body, headers=auth(case.key))  # noqa: E731
        if case.allowed_first:
            assert call().status_code == 200, case.name
        r = call()
        got[case.name] = ((200, r.json()["usage"]["completion_tokens"]) if r.status_code == 200
                          else (r.status_code, case.reason in r.json()["error"]["message"]))
        want[case.name] = (200, 2) if case.status == 200 else (case.status, True)
    assert got == want


def test_answers_behind_nginx_are_metered_and_the_token_quota_refuses_at_the_door(stack: dict) -> None:
    key, row = approved_key(stack["config"], stack["repo"])
    client = openai.OpenAI(base_url=stack["nginx"] + "/openai/v1", api_key=key, max_retries=0)

    whole = client.completions.create(model=MODEL, prompt="Anemia is", max_tokens=5, temperature=0)
    assert used(stack, row.prefix) == (whole.usage.prompt_tokens, 5)  # reported before the answer ended

    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Fever?"}], max_tokens=4,
                                            stream=True, stream_options={"include_usage": True})
    streamed = [c for c in stream][-1].usage
    assert used(stack, row.prefix) == (whole.usage.prompt_tokens + streamed.prompt_tokens, 9)

    stack["repo"].set_quota(row.prefix, tokens_per_day=sum(used(stack, row.prefix)) + 1)
    assert client.completions.create(model=MODEL, prompt="Anemia is", max_tokens=1).usage.completion_tokens == 1
    with pytest.raises(openai.RateLimitError, match="token quota"):
        client.completions.create(model=MODEL, prompt="Anemia is", max_tokens=1)


def test_a_client_that_leaves_early_is_billed_for_what_was_generated(stack: dict) -> None:
    key, row = approved_key(stack["config"], stack["repo"])
    body = {"model": MODEL, "prompt": "Clinical notes", "max_tokens": 200, "stream": True}
    chunks = 0
    with httpx.stream("POST", stack["nginx"] + "/openai/v1/completions", json=body, headers=auth(key)) as r:
        for line in r.iter_lines():
            chunks += line.startswith("data: {")
            if chunks == 3:
                break
    prompt, completion = billed(stack, row.prefix)
    assert prompt > 0 and 3 <= completion < 200


def test_the_meter_token_reports_usage_and_opens_nothing_else(stack: dict) -> None:
    _, row = approved_key(stack["config"], stack["repo"])
    report = {"key_prefix": row.prefix, "model": MODEL, "prompt_tokens": 2, "completion_tokens": 3}
    meter, admin = {"Authorization": f"Bearer {METER_TOKEN}"}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.post(stack["gate"] + "/admin/api/usage", json=report, headers=meter).status_code == 204
    assert used(stack, row.prefix) == (2, 3)
    assert httpx.post(stack["gate"] + "/admin/api/usage", json=report, headers=admin).status_code == 204
    assert httpx.post(stack["gate"] + "/admin/api/usage", json=report).status_code == 401
    assert httpx.get(stack["gate"] + "/admin/api/keys", headers=meter).status_code == 401
    assert httpx.get(stack["gate"] + "/admin/api/keys", headers=admin).status_code == 200
