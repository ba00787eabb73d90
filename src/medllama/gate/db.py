"""Tables of the gate (SQLAlchemy 2 ORM) and the engine; the schema itself is made by Alembic migrations."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Naive UTC, as every timestamp is stored (SQLite keeps no zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class AccessRequest(Base):
    __tablename__ = "access_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(64))
    agreement_version: Mapped[int] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(320), index=True)
    fields: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | approved | rejected
    claim_hash: Mapped[str] = mapped_column(String(64))  # hash of the code that lets the requester see the status
    created_at: Mapped[datetime] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), unique=True)  # one key per approval
    owner: Mapped[str] = mapped_column(String(320))
    agreement_id: Mapped[str] = mapped_column(String(64))
    agreement_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    requests_per_minute: Mapped[int] = mapped_column(Integer)
    tokens_per_day: Mapped[int] = mapped_column(Integer)


class Usage(Base):
    """Tokens the model server reported, per key, model and UTC day."""

    __tablename__ = "usage"
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (UTC)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)


class RequestCount(Base):
    """Allowed requests per key and UTC minute: the rate limit's fixed window, O(1) to read at any request rate."""

    __tablename__ = "request_counts"
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # minutes since the epoch
    count: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    """One decision: who, when, which model and endpoint, through which door, the outcome and tokens. No text."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_key_at", "key_prefix", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    key_prefix: Mapped[str | None] = mapped_column(String(16), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(320), nullable=True)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(512))
    door: Mapped[str] = mapped_column(String(16))  # proxy | ext_authz | nginx | api
    outcome: Mapped[str] = mapped_column(String(8))  # allow | deny
    status: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(512))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys, and its directory is created."""
    if url.startswith("sqlite"):
        db = make_url(url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # noqa: ANN001 - DB-API connection
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the extra ships psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return create_engine(parsed, pool_size=10, max_overflow=40, pool_pre_ping=True)
