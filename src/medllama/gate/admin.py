"""Admin API (bearer admin token): requests, keys, quotas, usage, audit, and usage reported from outside."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from medllama.gate.db import utcnow
from medllama.gate.decide import Gate
from medllama.gate.deps import RequestId, get_gate, require_admin, require_meter

router = APIRouter(prefix="/admin/api", tags=["admin"], dependencies=[Depends(require_admin)])
# usage reports: what model servers send (`medllama serve --usage-url`) with the meter token, which opens nothing else
meter_router = APIRouter(prefix="/admin/api", tags=["metering"], dependencies=[Depends(require_meter)])

_PREFIX = r"^[a-z0-9]{12}$"


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RequestOut(_Out):
    id: int
    agreement_id: str
    agreement_version: int
    email: str
    fields: dict[str, str]
    status: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None


class KeyOut(_Out):
    prefix: str
    request_id: int
    owner: str
    agreement_id: str
    agreement_version: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    requests_per_minute: int
    tokens_per_day: int


class Decision(BaseModel):
    reason: str = Field("", max_length=2000)


class Quota(BaseModel):
    requests_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    tokens_per_day: int | None = Field(None, ge=1, le=10**12)


class MeteredUsage(BaseModel):
    """Tokens a response used, reported by whatever sees responses when the gate does not (ext_authz modes)."""

    key_prefix: str = Field(..., pattern=_PREFIX)
    model: str = Field(..., min_length=1, max_length=256)
    prompt_tokens: int = Field(..., ge=0, le=10**9)
    completion_tokens: int = Field(..., ge=0, le=10**9)


@router.get("/requests", response_model=list[RequestOut])
def list_requests(status: str | None = Query(None, pattern="^(pending|approved|rejected)$"),
                  gate: Gate = Depends(get_gate)):
    return gate.repo.list_requests(status)


@router.post("/requests/{request_id}/approve", response_model=RequestOut)
def approve(request_id: RequestId, body: Decision | None = None, gate: Gate = Depends(get_gate),
            actor: str = Depends(require_admin)):
    return gate.repo.decide_request(request_id, True, actor, utcnow(), body.reason if body else "")


@router.post("/requests/{request_id}/reject", response_model=RequestOut)
def reject(request_id: RequestId, body: Decision | None = None, gate: Gate = Depends(get_gate),
           actor: str = Depends(require_admin)):
    return gate.repo.decide_request(request_id, False, actor, utcnow(), body.reason if body else "")


@router.get("/keys", response_model=list[KeyOut])
def list_keys(gate: Gate = Depends(get_gate)):
    return gate.repo.list_keys()


@router.post("/keys/{prefix}/revoke", response_model=KeyOut)
def revoke(prefix: str, gate: Gate = Depends(get_gate)):
    return gate.repo.revoke(prefix, utcnow())


@router.put("/keys/{prefix}/quota", response_model=KeyOut)
def set_quota(prefix: str, quota: Quota, gate: Gate = Depends(get_gate)):
    return gate.repo.set_quota(prefix, quota.requests_per_minute, quota.tokens_per_day)


@router.get("/usage")
def usage(key: str | None = Query(None, pattern=_PREFIX), day: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$"),
          gate: Gate = Depends(get_gate)) -> list[dict]:
    gate.ledger.flush()  # this process's pending usage included
    return gate.repo.usage(key, day)


@meter_router.post("/usage", status_code=204)
def report_usage(metered: MeteredUsage, gate: Gate = Depends(get_gate)) -> None:
    key = gate.repo.get_key(metered.key_prefix)
    gate.repo.record_usage(key.id, metered.model, utcnow(), metered.prompt_tokens, metered.completion_tokens)


@router.get("/audit")
def audit(key: str | None = Query(None, pattern=_PREFIX), limit: int = Query(100, ge=1, le=10_000),
          gate: Gate = Depends(get_gate)) -> list[dict]:
    gate.ledger.flush()  # this process's pending decisions included
    return gate.repo.audit_events(key, limit)
