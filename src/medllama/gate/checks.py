"""The gate as an external authorizer: Envoy/Istio ext_authz (HTTP service) and nginx `auth_request`.

Envoy calls `/check/envoy` + the original path with the original method and headers, and the body
(Istio `includeRequestBodyInCheck`): the model comes from the path (KServe V1/V2) or the body's
`model` (OpenAI routes). Allow = 200 with identity headers; deny = the status and reason for the client.
nginx's `auth_request` only understands 2xx/401/403, so its endpoint answers 401 or 403 and carries
the real status in `x-gate-status`; nginx's `error_page` then asks `/check/nginx/denied` to answer
the client with that status (see `nginx.conf.example`). Token quotas here come from metered usage.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from medllama.gate import keys
from medllama.gate.decide import Allow, Deny, Gate
from medllama.gate.doors import allow_headers, deny_response, model_of, parse_json

router = APIRouter(prefix="/check", include_in_schema=False)

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@router.api_route("/envoy/{path:path}", methods=_METHODS)
async def envoy(path: str, request: Request) -> Response:
    gate: Gate = request.app.state.gate  # not a dependency: these run on every model call, keep them lean
    body = await request.body()
    original = "/" + path
    # not a client header: ext_authz runs before the route's header rules, so a client could set it
    model = model_of(request.method, original, parse_json(body))
    key = keys.bearer(request.headers.get("authorization"))
    decision, _ = await gate.run(gate.check, key, model, f"{request.method} {original}", "ext_authz")
    if isinstance(decision, Allow):
        return Response(status_code=200, headers=allow_headers(decision))
    return deny_response(decision)


@router.get("/nginx")
async def nginx(request: Request) -> Response:
    gate: Gate = request.app.state.gate
    h = request.headers
    method, uri = h.get("x-original-method", "GET"), h.get("x-original-uri", "/")
    model = model_of(method, uri.split("?", 1)[0], None, h.get("x-gate-model"))
    decision, _ = await gate.run(gate.check, keys.bearer(h.get("authorization")), model,
                                          f"{method} {uri}", "nginx")
    if isinstance(decision, Allow):
        return Response(status_code=200, headers=allow_headers(decision))
    return deny_response(decision, 401 if decision.status == 401 else 403, {"x-gate-status": str(decision.status)})


@router.api_route("/nginx/denied", methods=_METHODS)
async def nginx_denied(request: Request) -> Response:
    """The client's answer after a denial: status and reason as the check gave them to nginx."""
    status = request.headers.get("x-gate-status", "403")
    reason = request.headers.get("x-gate-reason") or "denied by the gate"
    return deny_response(Deny(int(status) if status in ("401", "403", "429", "503") else 403, reason))
