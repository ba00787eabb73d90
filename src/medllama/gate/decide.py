"""The gate's one decision: may this key call this model at this endpoint now? Every door asks here.

Order of checks (and statuses): no key 401, malformed 401, unknown 401, revoked 401, expired 401,
model not offered 403, key's agreement does not cover the model 403, agreement version too old 403,
requests this UTC minute 429 (a fixed window), tokens today 429, else allow. Every decision is
audited (no prompt/completion text); audit rows, counts and usage are written in batches (`ledger`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from medllama.gate import keys
from medllama.gate.config import GateConfig, GateConfigError
from medllama.gate.db import utcnow
from medllama.gate.ledger import Ledger
from medllama.gate.repository import Repository, day_of, minute_of
from medllama.gate.requirements import ModelRequirements, RegistryUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Allow:
    key_id: int
    prefix: str
    owner: str
    agreement: str  # "<id>@<version accepted>"
    model: str | None
    status: int = 200


@dataclass(frozen=True)
class Deny:
    status: int  # 401 | 403 | 429 | 503
    reason: str
    prefix: str | None = None
    owner: str | None = None


Decision = Allow | Deny
T = TypeVar("T")


class Gate:
    """The decision function with what it reads: config, repository, model requirements."""

    def __init__(self, config: GateConfig, repo: Repository) -> None:
        self.config = config
        self.repo = repo
        self.requirements = ModelRequirements(config)
        self.ledger = Ledger(repo)
        # SQLite on a local file answers in a fraction of a millisecond: run it inline rather than pay a
        # thread hop per request; a networked database runs in the thread pool so the event loop never waits on it
        self.inline_db = repo.engine.dialect.name == "sqlite"

    async def run(self, fn: Callable[..., T], *args) -> T:
        """`fn(*args)` (a repository or decision call) from async code."""
        return fn(*args) if self.inline_db else await run_in_threadpool(fn, *args)

    def decide(self, key: str | None, model: str | None, endpoint: str, now: datetime) -> Decision:
        """Allow, or Deny with the HTTP status and a reason a user can act on. Writes nothing.

        `model` None: the endpoint serves no model (a model list, a rating page); "": it needs one and none was named.
        """
        if key is None:
            return Deny(401, "missing API key: send Authorization: Bearer <key>")
        prefix = keys.key_prefix(key)
        if prefix is None:
            return Deny(401, "malformed API key")
        state = self.repo.key_state(prefix, now)
        if state is None or not keys.matches(key, state.key_hash):
            return Deny(401, "unknown API key")
        who = {"prefix": prefix, "owner": state.owner}
        if state.revoked_at is not None and state.revoked_at <= now:
            return Deny(401, "API key revoked", **who)
        if state.expires_at <= now:
            return Deny(401, f"API key expired on {state.expires_at:%Y-%m-%d}", **who)
        if model == "":
            return Deny(403, "the request names no model", **who)
        if model is not None:
            try:
                required = self.requirements(model)
            except (RegistryUnavailable, GateConfigError) as e:
                log.warning("deny %s: %s", model, e)
                return Deny(503, f"cannot tell which agreement model {model!r} requires; try again later", **who)
            if required is None:
                return Deny(403, f"model {model!r} is not offered through this gate", **who)
            agreement_id, min_version = required
            if agreement_id != state.agreement_id:
                return Deny(403, f"this key's agreement ({state.agreement_id}) does not cover model {model!r}; "
                                 f"accept {agreement_id} at /agreements/{agreement_id}", **who)
            if state.agreement_version < min_version:
                return Deny(403, f"model {model!r} requires {agreement_id} version {min_version} or later; this key "
                                 f"accepted version {state.agreement_version}: accept the new version at "
                                 f"/agreements/{agreement_id}", **who)
        if state.requests_this_minute + self.ledger.requests(state.id, minute_of(now)) >= state.requests_per_minute:
            return Deny(429, f"rate limit: {state.requests_per_minute} requests per minute", **who)
        if state.tokens_today + self.ledger.tokens(state.id, day_of(now)) >= state.tokens_per_day:
            return Deny(429, f"token quota: {state.tokens_per_day} tokens per day used", **who)
        return Allow(state.id, prefix, state.owner, f"{state.agreement_id}@{state.agreement_version}", model)

    def check(self, key: str | None, model: str | None, endpoint: str, door: str,
              now: datetime | None = None) -> tuple[Decision, dict]:
        """`decide`, then queue its audit record; returns the decision and that record (for token counts later)."""
        now = now or utcnow()
        decision = self.decide(key, model, endpoint, now)
        allowed = isinstance(decision, Allow)
        event = dict(at=now, key_prefix=decision.prefix, owner=decision.owner, model=model[:256] if model else None,
                     endpoint=endpoint[:512], door=door, outcome="allow" if allowed else "deny",
                     status=decision.status, reason="ok" if allowed else decision.reason[:512],
                     prompt_tokens=None, completion_tokens=None)
        if self.ledger.decision(event, decision.key_id if allowed else None, minute_of(now)):
            self.ledger.flush()
        return decision, event

    def record_usage(self, decision: Allow, prompt_tokens: int, completion_tokens: int, event: dict | None) -> None:
        """Queue the tokens a response reported for `decision` (and its audit record `event`)."""
        if self.ledger.usage(decision.key_id, decision.model or "", day_of(utcnow()), prompt_tokens,
                             completion_tokens, event):
            self.ledger.flush()
