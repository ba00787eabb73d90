"""Sign-up -> approval -> key -> chat call, through the gate's pages in real headless Chromium (JavaScript off,
since the pages promise to work without it), then the key used with the official `openai` client via the proxy."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import openai
import pytest

from gate_helpers import ADMIN_TOKEN, FORM, MODEL, auth, gate_server, standin_model_server, write_config

pytestmark = pytest.mark.local
CHROMIUM = "/usr/bin/chromium"


def test_sign_up_approval_key_and_chat_in_a_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run .ci/install-services")
    with standin_model_server(tmp_path / "model.log") as model, \
            gate_server(write_config(tmp_path, f"sqlite:///{tmp_path / 'gate.db'}", model.url),
                        tmp_path / "gate.log", upstream=model.url) as gate, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--disable-background-networking", "--disable-dev-shm-usage"])
        page = browser.new_context(java_script_enabled=False).new_page()
        page.goto(gate.url + "/")
        page.get_by_role("link", name="Me-LLaMA DUA v2").click()
        assert page.get_by_role("heading", name="Terms v2").is_visible()
        page.get_by_role("button", name="Accept and request access").click()  # empty form: the browser refuses
        assert page.url == gate.url + "/agreements/me-llama-dua"
        assert httpx.get(f"{gate.url}/admin/api/requests", headers=auth(ADMIN_TOKEN)).json() == []
        for name, value in FORM.items():
            page.fill(f"#{name}", value)
        page.check("input[name=accept]")
        page.get_by_role("button", name="Accept and request access").click()
        assert page.locator("#status").inner_text() == "pending"
        request_id = int(re.search(r"Request (\d+) received", page.content()).group(1))
        page.get_by_role("link", name=f"See the status of request {request_id}").click()
        assert page.locator("#status").inner_text() == "pending"
        assert page.get_by_role("button", name="Get my API key").count() == 0

        r = httpx.post(f"{gate.url}/admin/api/requests/{request_id}/approve", headers=auth(ADMIN_TOKEN))
        assert r.status_code == 200
        page.reload()
        assert page.locator("#status").inner_text() == "approved"
        page.get_by_role("button", name="Get my API key").click()
        key = page.locator("#api-key").inner_text().strip()
        assert key.startswith("mlk_")
        page.goto(f"{gate.url}/requests/{request_id}")
        assert "shown once" in page.content() and key not in page.content()  # never shown again

        other = browser.new_context(java_script_enabled=False).new_page()  # no claim cookie: must give the code
        other.goto(f"{gate.url}/requests/{request_id}")
        assert other.get_by_role("button", name="Show status").is_visible() and "approved" not in other.content()
        browser.close()

        client = openai.OpenAI(base_url=gate.url + "/openai/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "fever?"}])
        assert reply.choices[0].message.content == "the patient has no fever"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=gate.url + "/openai/v1", api_key="mlk_x", max_retries=0).models.list()
    logs = (tmp_path / "gate.log").read_text()
    assert "POST /agreements/me-llama-dua" in logs and key.split("_", 2)[2] not in logs
