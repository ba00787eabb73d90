"""The gate's FastAPI app: pages, admin API, the ext_authz/nginx checks and (with an upstream) the proxy.

`create_app(config, routers=[...])` also mounts other routers (the rating pages do), which reuse
`deps.require_api_key` and `deps.require_admin`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from medllama.gate.config import GateConfig, load_config
from medllama.gate.db import make_engine
from medllama.gate.decide import Gate
from medllama.gate.repository import Conflict, NotFound, Repository, migrate


def create_app(config: GateConfig | None = None, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The gate app for `config` (default: `load_config()`); the proxy is mounted when `config.upstream` is set."""
    from medllama.gate import admin, checks, pages, proxy

    config = config or load_config()
    engine = make_engine(config.database_url)
    if config.migrate_on_start:
        migrate(engine)
    gate = Gate(config, Repository(engine))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with proxy.upstream_client(config.upstream) as client:
            app.state.upstream = client
            yield
        engine.dispose()

    app = FastAPI(title="medllama gate", version="1", lifespan=lifespan,
                  description="Data-use agreements, API keys, quotas and audit in front of the model servers.")
    app.state.gate = gate
    app.state.upstream = None

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Starlette tries routes in order: the doors, hit on every model call, go first (no prefix overlaps the pages)
    app.include_router(checks.router)
    if config.upstream:
        app.include_router(proxy.router)
    for router in (pages.router, admin.router, admin.meter_router, *routers):
        app.include_router(router)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, e: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, e: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=409)

    return app
