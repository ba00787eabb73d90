"""All reads and writes of the gate's tables, behind one small class; the schema comes from Alembic."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import TYPE_CHECKING

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.orm import sessionmaker

from medllama.gate import keys
from medllama.gate.config import Agreement, KeyPolicy
from medllama.gate.db import AccessRequest, ApiKey, AuditEvent, RequestCount, Usage

if TYPE_CHECKING:
    from medllama.gate.ledger import Batch


class NotFound(KeyError):
    """No such request or key."""

    def __str__(self) -> str:  # KeyError quotes its message
        return str(self.args[0])


class Conflict(ValueError):
    """The action does not fit the current state (approving a rejected request, a second key...)."""


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema with the migrations shipped in this package."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("medllama.gate") / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@dataclass(frozen=True)
class KeyState:
    """What a decision needs to know about a key, read in one round trip."""

    id: int
    prefix: str
    key_hash: str
    owner: str
    agreement_id: str
    agreement_version: int
    expires_at: datetime
    revoked_at: datetime | None
    requests_per_minute: int
    tokens_per_day: int
    requests_this_minute: int  # allowed so far in this UTC minute (a fixed window)
    tokens_today: int


# Built once: a decision runs these on every request, and building statements costs more than running them
_k, _c, _u = ApiKey.__table__.c, RequestCount.__table__.c, Usage.__table__.c
_KEY_STATE = select(
    _k.id, _k.prefix, _k.key_hash, _k.owner, _k.agreement_id, _k.agreement_version, _k.expires_at, _k.revoked_at,
    _k.requests_per_minute, _k.tokens_per_day,
    select(func.coalesce(func.sum(_c.count), 0)).where(_c.key_id == _k.id, _c.minute == bindparam("minute"))
    .scalar_subquery(),
    select(func.coalesce(func.sum(_u.prompt_tokens + _u.completion_tokens), 0))
    .where(_u.key_id == _k.id, _u.day == bindparam("day")).scalar_subquery(),
).where(_k.prefix == bindparam("prefix"))
_AUDIT_INSERT = AuditEvent.__table__.insert()
# many rows in one statement, their ids back in the order given (SQLite >= 3.35 and PostgreSQL both return them)
_AUDIT_INSERT_IDS = _AUDIT_INSERT.returning(AuditEvent.__table__.c.id, sort_by_parameter_order=True)
_a = AuditEvent.__table__.c
_AUDIT_TOKENS = update(AuditEvent.__table__).where(_a.id == bindparam("audit_id")).values(
    prompt_tokens=bindparam("prompt"), completion_tokens=bindparam("completion"))


def _add_on_conflict(dialect: str, table: Table, keys: list[str], added: list[str]) -> Insert:
    """INSERT a row, or add its `added` columns to the existing row with the same `keys` (atomic upsert)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ValueError(f"the gate supports SQLite and PostgreSQL, not {dialect}")
    stmt = insert(table).values({c: bindparam(c) for c in keys + added})
    return stmt.on_conflict_do_update(index_elements=keys, set_={c: table.c[c] + stmt.excluded[c] for c in added})


class _SQLiteVersion:
    """`PRAGMA data_version` on a connection of its own that never writes: it changes whenever any other
    connection, in this process or another, commits, and costs a few microseconds instead of a query."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn = None  # opened on first use, kept for the repository's life
        self._lock = threading.Lock()

    def current(self) -> int:
        with self._lock:
            if self._conn is None:
                self._conn = self.engine.raw_connection()
            return self._conn.execute("PRAGMA data_version").fetchone()[0]


def minute_of(now: datetime) -> int:
    return int(now.replace(tzinfo=timezone.utc).timestamp() // 60)


def day_of(now: datetime) -> str:
    return now.date().isoformat()  # YYYY-MM-DD, several times faster than strftime (it runs on every check)


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)
        dialect = engine.dialect.name
        self._count_request = _add_on_conflict(dialect, RequestCount.__table__, ["key_id", "minute"], ["count"])
        self._add_usage = _add_on_conflict(dialect, Usage.__table__, ["key_id", "model", "day"],
                                           ["requests", "prompt_tokens", "completion_tokens"])
        # (a file: each connection to an in-memory database is a database of its own)
        self._versions = _SQLiteVersion(engine) if dialect == "sqlite" and engine.url.database not in (
            None, "", ":memory:") else None
        # prefix -> ((data version, minute, day), state as read then)
        self._key_states: dict[str, tuple[tuple[int, int, str], KeyState]] = {}

    # --- access requests --------------------------------------------------------------------
    def create_request(self, agreement: Agreement, fields: dict[str, str], now: datetime) -> tuple[AccessRequest, str]:
        """A new request for `agreement`; returns it and the claim code (shown to the requester, stored hashed)."""
        claim = secrets.token_urlsafe(24)
        auto = agreement.approval == "auto"
        req = AccessRequest(agreement_id=agreement.id, agreement_version=agreement.version,
                            email=fields.get("email", ""), fields=fields, status="approved" if auto else "pending",
                            claim_hash=keys.hash_secret(claim), created_at=now, decided_at=now if auto else None,
                            decided_by="auto" if auto else None)
        with self.session.begin() as s:
            s.add(req)
        return req, claim

    def get_request(self, request_id: int) -> AccessRequest:
        with self.session() as s:
            req = s.get(AccessRequest, request_id)
        if req is None:
            raise NotFound(f"no access request {request_id}")
        return req

    def list_requests(self, status: str | None = None, limit: int = 500) -> Sequence[AccessRequest]:
        q = select(AccessRequest).order_by(AccessRequest.id).limit(limit)
        if status:
            q = q.where(AccessRequest.status == status)
        with self.session() as s:
            return s.scalars(q).all()

    def decide_request(self, request_id: int, approve: bool, by: str, now: datetime, reason: str = "") -> AccessRequest:
        """Approve or reject a pending request (the status changes once: a decided request stays decided)."""
        with self.session.begin() as s:
            done = s.execute(update(AccessRequest)
                             .where(AccessRequest.id == request_id, AccessRequest.status == "pending")
                             .values(status="approved" if approve else "rejected", decided_at=now, decided_by=by,
                                     reason=reason or None)).rowcount
        req = self.get_request(request_id)
        if not done:
            raise Conflict(f"request {request_id} is already {req.status}")
        return req

    # --- keys ---------------------------------------------------------------------------------
    def issue_key(self, request_id: int, policy: KeyPolicy, now: datetime, days: int | None = None) -> tuple[keys.NewKey, ApiKey]:
        """The one key of an approved request; the clear key is returned here and nowhere else."""
        req = self.get_request(request_id)
        if req.status != "approved":
            raise Conflict(f"request {request_id} is {req.status}, not approved")
        lifetime = min(days or policy.default_days, policy.max_days)
        new = keys.new_key()
        row = ApiKey(prefix=new.prefix, key_hash=new.key_hash, request_id=req.id, owner=req.email,
                     agreement_id=req.agreement_id, agreement_version=req.agreement_version, created_at=now,
                     expires_at=now + timedelta(days=lifetime), requests_per_minute=policy.requests_per_minute,
                     tokens_per_day=policy.tokens_per_day)
        try:
            with self.session.begin() as s:
                s.add(row)
        except IntegrityError:
            raise Conflict(f"a key was already issued for request {request_id}; it is shown only once") from None
        return new, row

    def key_for_request(self, request_id: int) -> ApiKey | None:
        with self.session() as s:
            return s.scalars(select(ApiKey).where(ApiKey.request_id == request_id)).first()

    def get_key(self, prefix: str) -> ApiKey:
        with self.session() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
        if row is None:
            raise NotFound(f"no key with prefix {prefix}")
        return row

    def list_keys(self) -> Sequence[ApiKey]:
        with self.session() as s:
            return s.scalars(select(ApiKey).order_by(ApiKey.id)).all()

    def revoke(self, prefix: str, now: datetime) -> ApiKey:
        return self._update_key(prefix, revoked_at=now)

    def set_quota(self, prefix: str, requests_per_minute: int | None = None, tokens_per_day: int | None = None) -> ApiKey:
        values = {k: v for k, v in (("requests_per_minute", requests_per_minute), ("tokens_per_day", tokens_per_day))
                  if v is not None}
        if any(v < 1 for v in values.values()):
            raise ValueError("quotas must be at least 1")
        return self._update_key(prefix, **values)

    def _update_key(self, prefix: str, **values) -> ApiKey:
        with self.session.begin() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
            if row is None:
                raise NotFound(f"no key with prefix {prefix}")
            for k, v in values.items():
                setattr(row, k, v)
        return row

    def key_state(self, prefix: str, now: datetime) -> KeyState | None:
        """The key with its requests this minute and tokens used today, in one statement.

        On SQLite the answer is kept until any connection commits (a revocation by the CLI in another process
        included): the next call then reads again, so nothing stale is ever returned."""
        minute, day = minute_of(now), day_of(now)
        version = self._versions.current() if self._versions else None
        if version is not None:
            seen = self._key_states.get(prefix)
            if seen is not None and seen[0] == (version, minute, day):
                return seen[1]
        with self.engine.connect() as conn:
            row = conn.execute(_KEY_STATE, {"prefix": prefix, "minute": minute, "day": day}).first()
        if row is None:
            return None
        state = KeyState(*row)
        if version is not None:  # read after `version`: any later commit moves the version and retires it
            if len(self._key_states) >= 10_000:
                self._key_states.clear()
            self._key_states[prefix] = ((version, minute, day), state)
        return state

    # --- audit and usage --------------------------------------------------------------------------
    def record_usage(self, key_id: int, model: str, now: datetime, prompt_tokens: int, completion_tokens: int,
                     audit_id: int | None = None) -> None:
        """Add one response's tokens to the key's usage of `model` today (and to its audit record)."""
        with self.engine.begin() as conn:
            conn.execute(self._add_usage, {"key_id": key_id, "model": model, "day": day_of(now), "requests": 1,
                                           "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})
            if audit_id is not None:
                conn.execute(_AUDIT_TOKENS,
                             {"audit_id": audit_id, "prompt": prompt_tokens, "completion": completion_tokens})

    def write_batch(self, batch: Batch) -> None:
        """A ledger batch in one transaction: audit rows, request counts, usage, audit token counts.

        Audit rows get their ids only once committed (a failed batch is retried whole)."""
        with self.engine.begin() as conn:
            ids = conn.execute(_AUDIT_INSERT_IDS, batch.events).scalars().all() if batch.events else []
            new_ids = {id(e): i for e, i in zip(batch.events, ids)}
            if batch.requests:
                conn.execute(self._count_request, [{"key_id": k, "minute": m, "count": n}
                                                   for (k, m), n in batch.requests.items()])
            if batch.usage:
                conn.execute(self._add_usage, [
                    {"key_id": k, "model": model, "day": day, "requests": n, "prompt_tokens": p, "completion_tokens": c}
                    for (k, model, day), (n, p, c) in batch.usage.items()])
            if batch.audit_tokens:
                conn.execute(_AUDIT_TOKENS, [{"audit_id": e.get("id") or new_ids[id(e)], "prompt": p, "completion": c}
                                             for e, p, c in batch.audit_tokens])
        for event, audit_id in zip(batch.events, ids):
            event["id"] = audit_id

    def usage(self, prefix: str | None = None, day: str | None = None) -> list[dict]:
        q = (select(ApiKey.prefix, ApiKey.owner, Usage.model, Usage.day, Usage.requests, Usage.prompt_tokens,
                    Usage.completion_tokens).join(ApiKey, ApiKey.id == Usage.key_id).order_by(Usage.day, ApiKey.prefix))
        if prefix:
            q = q.where(ApiKey.prefix == prefix)
        if day:
            q = q.where(Usage.day == day)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def audit_events(self, prefix: str | None = None, limit: int = 100) -> list[dict]:
        q = select(AuditEvent.__table__).order_by(AuditEvent.id.desc()).limit(limit)
        if prefix:
            q = q.where(AuditEvent.key_prefix == prefix)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
