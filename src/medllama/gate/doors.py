"""What the three doors share: which model a request names, and how a denial looks on the wire."""

from __future__ import annotations

import json
import re

from fastapi.responses import JSONResponse

from medllama.gate.decide import Allow, Deny

# KServe V1 `/v1/models/NAME:predict` and V2 `/v2/models/NAME/infer`: the model is in the path
_MODEL_IN_PATH = re.compile(r"^/v[12]/models/([^/:]+)")


def parse_json(data: bytes) -> object:
    """The JSON value of `data`; None when it is empty or not JSON."""
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def model_of(method: str, path: str, payload: object = None, header: str | None = None) -> str | None:
    """The model a request is for: a route-set header, the path, else the JSON body's `model` (`payload`, parsed).

    None for reads that name none (GET /openai/v1/models); "" for a call that should name one and does not.
    """
    if header:
        return header
    m = _MODEL_IN_PATH.match(path)
    if m:
        return m.group(1)
    if isinstance(payload, dict) and isinstance(payload.get("model"), str):
        return payload["model"]
    return None if method in ("GET", "HEAD") else ""


def allow_headers(decision: Allow) -> dict[str, str]:
    """Identity headers the model server may log (never the key itself)."""
    return {"x-gate-user": decision.owner, "x-gate-key": decision.prefix, "x-gate-agreement": decision.agreement}


def deny_response(decision: Deny, status: int | None = None, extra: dict[str, str] | None = None) -> JSONResponse:
    """An OpenAI-shaped error body with the reason; `x-gate-reason` carries it for proxies that drop bodies."""
    header_safe = decision.reason.encode("ascii", "backslashreplace").decode().replace("\r", " ").replace("\n", " ")
    headers = {"x-gate-reason": header_safe, **(extra or {})}
    if decision.status == 401:
        headers["www-authenticate"] = "Bearer"
    kind = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(decision.status, "error")
    return JSONResponse({"error": {"message": decision.reason, "type": kind, "code": decision.status}},
                        status_code=status or decision.status, headers=headers)
