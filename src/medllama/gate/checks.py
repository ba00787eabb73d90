"""The gate as an external authorizer: Envoy/Istio ext_authz (HTTP service) and nginx `auth_request`.

Envoy calls `/check/envoy` + the original path with the original method and headers, and the body
(Istio `includeRequestBodyInCheck`): the model comes from the path (KServe V1/V2) or the body's
`model` (OpenAI routes). Allow = 200 with identity headers; deny = the status and reason for the client.
nginx's `auth_request` only understands 2xx/401/403, so its endpoint answers 401 or 403 and carries
the real status in `x-gate-status`; nginx's `error_page` then asks `/check/nginx/denied` to answer
the client with that status (see `nginx.conf.example`). Token quotas here come from metered usage.

These doors run on every model call, so they are a plain ASGI app that `app.GateApp` calls before
FastAPI's middleware and router: no dependency injection or validation, which cost CPU on every call.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from medllama.gate import keys
from medllama.gate.decide import Allow, Deny, Gate
from medllama.gate.doors import allow_headers, deny_response, model_of, parse_json

PREFIX = "/check"


class CheckDoors:
    """ASGI app for `/check/envoy/{path}`, `/check/nginx` and `/check/nginx/denied` (paths under `PREFIX`)."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path = scope["path"]
        if path.startswith(PREFIX + "/envoy/"):
            response = await self.envoy(request, path[len(PREFIX) + len("/envoy"):])
        elif path == PREFIX + "/nginx":
            response = await self.nginx(request) if request.method == "GET" else \
                JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"allow": "GET"})
        elif path == PREFIX + "/nginx/denied":
            response = self.nginx_denied(request)
        else:
            response = JSONResponse({"detail": "Not Found"}, status_code=404)
        await response(scope, receive, send)

    async def envoy(self, request: Request, original: str) -> Response:
        body = await request.body()
        # not a client header: ext_authz runs before the route's header rules, so a client could set it
        model = model_of(request.method, original, parse_json(body))
        key = keys.bearer(request.headers.get("authorization"))
        decision, _ = await self.gate.run(self.gate.check, key, model, f"{request.method} {original}", "ext_authz")
        if isinstance(decision, Allow):
            return Response(status_code=200, headers=allow_headers(decision))
        return deny_response(decision)

    async def nginx(self, request: Request) -> Response:
        h = request.headers
        method, uri = h.get("x-original-method", "GET"), h.get("x-original-uri", "/")
        model = model_of(method, uri.split("?", 1)[0], None, h.get("x-gate-model"))
        decision, _ = await self.gate.run(self.gate.check, keys.bearer(h.get("authorization")), model,
                                          f"{method} {uri}", "nginx")
        if isinstance(decision, Allow):
            return Response(status_code=200, headers=allow_headers(decision))
        return deny_response(decision, 401 if decision.status == 401 else 403, {"x-gate-status": str(decision.status)})

    @staticmethod
    def nginx_denied(request: Request) -> Response:
        """The client's answer after a denial: status and reason as the check gave them to nginx."""
        status = request.headers.get("x-gate-status", "403")
        reason = request.headers.get("x-gate-reason") or "denied by the gate"
        return deny_response(Deny(int(status) if status in ("401", "403", "429", "503") else 403, reason))
