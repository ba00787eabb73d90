"""FastAPI dependencies other routers reuse: the gate itself, a valid API key, the admin credential."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from medllama.gate.decide import Allow, Gate

# ids are 32-bit in PostgreSQL (and 64-bit in SQLite): larger ones are a 422, not a database error
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1, description="access request id")]
_bearer = HTTPBearer(auto_error=False, description="an API key issued by the gate (or the admin token)")


def get_gate(request: Request) -> Gate:
    return request.app.state.gate


async def require_api_key(request: Request, gate: Gate = Depends(get_gate),
                          credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Allow:
    """A valid, unexpired, unrevoked key within its rate (no model check); audited like every decision."""
    key = credentials.credentials if credentials else None
    if key is None and request.headers.get("authorization") is not None:
        key = ""  # a header that is not `Bearer <key>`: malformed, not missing
    decision, _ = await gate.run(gate.check, key, None, f"{request.method} {request.url.path}", "api")
    if not isinstance(decision, Allow):
        raise HTTPException(decision.status, decision.reason, headers=_challenge(decision.status))
    return decision


def require_admin(gate: Gate = Depends(get_gate),
                  credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """The admin token from $MEDLLAMA_GATE_ADMIN_TOKEN, as a bearer credential; returns the actor's name."""
    if gate.config.admin_token is None:
        raise HTTPException(403, "the admin API is off: set MEDLLAMA_GATE_ADMIN_TOKEN")
    if not _matches(credentials, gate.config.admin_token):
        raise HTTPException(401, "admin credential required", headers=_challenge(401))
    return "admin"


def require_meter(gate: Gate = Depends(get_gate),
                  credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """The meter token ($MEDLLAMA_GATE_METER_TOKEN, what model servers hold) or the admin token."""
    for actor, token in (("meter", gate.config.meter_token), ("admin", gate.config.admin_token)):
        if token is not None and _matches(credentials, token):
            return actor
    raise HTTPException(401, "meter or admin credential required", headers=_challenge(401))


def _matches(credentials: HTTPAuthorizationCredentials | None, token) -> bool:
    given = credentials.credentials if credentials else ""
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


def _challenge(status: int) -> dict[str, str] | None:
    return {"WWW-Authenticate": "Bearer"} if status == 401 else None
