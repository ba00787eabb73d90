"""Usage reports to the gate, for the doors where the gate decides but never sees the response.

Behind Istio/Envoy ext_authz or nginx `auth_request`, the gate lets a request through with the key's
lookup prefix in `x-gate-key` (never the key) and sees nothing after. The model server does: when
`--usage-url` (or $MEDLLAMA_USAGE_URL) names the gate's `/admin/api/usage`, each answer to such a
request is reported there with the meter token ($MEDLLAMA_USAGE_TOKEN), prompt and completion tokens,
streamed or not, and also when the client left early (the tokens were generated all the same). The gate
then enforces tokens-per-day at these doors as the proxy door does. Behind the proxy door the header
never arrives (the proxy strips it and meters itself), so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import os

import httpx

log = logging.getLogger(__name__)
GATE_KEY_HEADER = "x-gate-key"  # set by the gate's allow answer (medllama.gate.doors.allow_headers)
RETRY_DELAYS_S = (0.2, 1.0, 5.0)


class UsageReporter:
    """Posts `{key_prefix, model, prompt_tokens, completion_tokens}` to the gate, retrying a failed post."""

    def __init__(self, url: str, token: str | None = None):
        self.url = url
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=10.0, trust_env=False)
        self._background: set[asyncio.Task] = set()

    @classmethod
    def from_env(cls, url: str | None = None) -> UsageReporter | None:
        url = url or os.environ.get("MEDLLAMA_USAGE_URL")
        return cls(url, os.environ.get("MEDLLAMA_USAGE_TOKEN")) if url else None

    async def report(self, key_prefix: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Report once; a failed post is retried in the background so the answer is not held up."""
        usage = _usage(key_prefix, model, prompt_tokens, completion_tokens)
        if not await self._post(usage):
            self._in_background(self._retry(usage, RETRY_DELAYS_S))

    def report_later(self, key_prefix: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Report from a task of its own (a client that left early cancels the request's own task)."""
        usage = _usage(key_prefix, model, prompt_tokens, completion_tokens)
        self._in_background(self._retry(usage, (0.0, *RETRY_DELAYS_S)))

    def _in_background(self, work) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _retry(self, usage: dict, delays: tuple[float, ...]) -> None:
        for delay in delays:
            await asyncio.sleep(delay)
            if await self._post(usage):
                return
        log.error("usage of key %s on %s (%d + %d tokens) could not be reported to %s", usage["key_prefix"],
                  usage["model"], usage["prompt_tokens"], usage["completion_tokens"], self.url)

    async def _post(self, usage: dict) -> bool:
        """True when nothing more is to be done: the gate took the report, or refused it for good."""
        try:
            r = await self.client.post(self.url, json=usage)
        except httpx.HTTPError as e:
            log.warning("usage report to %s failed: %s", self.url, e)
            return False
        if r.status_code in (400, 401, 403, 404, 422):  # the gate refused it: retrying cannot help
            log.error("the gate refused a usage report for key %s: %d %s", usage["key_prefix"], r.status_code,
                      r.text[:200])
            return True
        return r.is_success


def _usage(key_prefix: str, model: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {"key_prefix": key_prefix, "model": model, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens}
