"""The gate's FastAPI app: pages, admin API, the ext_authz/nginx checks and (with an upstream) the proxy.

`create_app(config, routers=[...])` also mounts other routers (the rating pages do), which reuse
`deps.require_api_key` and `deps.require_admin`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import asynccontextmanager, nullcontext, suppress

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from medllama.gate.config import GateConfig, load_config
from medllama.gate.db import make_engine
from medllama.gate.decide import Gate
from medllama.gate.repository import Conflict, NotFound, Repository, migrate


class GateApp(FastAPI):
    """FastAPI with the doors in front: a model call reaches its door (a plain ASGI app) without passing
    FastAPI's middleware and router, which cost about as much CPU per call as the decision itself."""

    def __init__(self, doors: Sequence[tuple[str, ASGIApp]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.doors = tuple(doors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for prefix, door in self.doors:
                if path.startswith(prefix) and path[len(prefix):len(prefix) + 1] in ("", "/"):
                    await door(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def create_app(config: GateConfig | None = None, routers: Sequence[APIRouter] = ()) -> GateApp:
    """The gate app for `config` (default: `load_config()`); the proxy is mounted when `config.upstream` is set."""
    from medllama.gate import admin, checks, pages, proxy

    config = config or load_config()
    engine = make_engine(config.database_url)
    if config.migrate_on_start:
        migrate(engine)
    gate = Gate(config, Repository(engine))

    doors: list[tuple[str, ASGIApp]] = [(checks.PREFIX, checks.CheckDoors(gate))]
    forward = proxy.Proxy(gate, config.upstream) if config.upstream else None
    doors += [(prefix, forward) for prefix in proxy.PREFIXES] if forward else []

    async def flush_ledger() -> None:
        while True:
            await asyncio.sleep(config.flush_seconds)
            with suppress(Exception):  # logged by the ledger, and kept for the next flush
                await gate.run(gate.ledger.flush)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with forward.connected() if forward else nullcontext():
            flusher = asyncio.create_task(flush_ledger())
            try:
                yield
            finally:
                flusher.cancel()
                with suppress(asyncio.CancelledError):
                    await flusher
                gate.ledger.flush()  # a clean stop loses no audit row, count or usage
        engine.dispose()

    app = GateApp(doors, title="medllama gate", version="1", lifespan=lifespan,
                  description="Data-use agreements, API keys, quotas and audit in front of the model servers.")
    app.state.gate = gate

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in (pages.router, admin.router, admin.meter_router, *routers):
        app.include_router(router)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, e: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, e: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=409)

    return app
