"""`medllama serve`: KServe's own ModelServer with our model on its OpenAI data plane.

Three adjustments to KServe 0.21, each because a client deserves better than what it does today:
- errors come in OpenAI's shape `{"error": {"message", "type", "param", "code"}}` (KServe answers
  `{"error": "..."}` or FastAPI's `{"detail": [...]}`), so the `openai` client raises the right error;
- V1/V2 inference on an OpenAI-only model is the client's mistake (400 naming the right routes), not
  a server error (KServe raises a bare ValueError: 500);
- `/openai/v1/models` entries carry the registry name, version and `data_use_agreement` tag.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import ModelServer
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotReady
from kserve.model import InferenceModel
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.rest.openai.endpoints import OPENAI_ROUTE_PREFIX
from kserve.protocol.rest.server import RESTServer
from starlette.exceptions import HTTPException

from medllama.registry.card import AGREEMENT_TAG
from medllama.serve.openai_model import MedllamaModel
from medllama.serve.resolve import ServedModel

log = logging.getLogger(__name__)
OWNER = "medllama-ops"


def serve_model(served: ServedModel, port: int = 8080, batching: bool = True, usage_url: str | None = None) -> None:
    """Load `served` and serve it until interrupted (binds 0.0.0.0:`port`, as KServe does)."""
    model = MedllamaModel(served, batching=batching, usage_url=usage_url)
    model.load()
    from kserve.model_server import app

    # Everything loaded so far lives as long as the process: out of the collector's sight it costs no
    # full-collection pauses while serving, and no seconds-long final collection after SIGTERM.
    gc.freeze()

    app.add_api_route(f"{OPENAI_ROUTE_PREFIX}/v1/models", _models_route(model), methods=["GET"])
    log.info("serving %s as %r on port %d (batching %s)", served.ref, served.name, port, "on" if batching else "off")
    OpenAIModelServer(http_port=port, enable_grpc=False).start([model])


def model_entry(model: MedllamaModel, created: int) -> dict:
    """One `/openai/v1/models` entry: OpenAI's fields, the context length, and the registry's identity."""
    s = model.served
    return {"id": model.name, "object": "model", "created": created, "owned_by": OWNER, "root": s.ref,
            "max_model_len": model.context, "registry_name": s.name if s.version else None,
            "registry_version": s.version, "data_use_agreement": s.tags.get("data_use_agreement"),
            "agreement": s.tags.get(AGREEMENT_TAG)}


def _models_route(model: MedllamaModel):
    created = int(time.time())

    async def models() -> dict:
        return {"object": "list", "data": [model_entry(model, created)]}

    return models


class OpenAIModelServer(ModelServer):
    """ModelServer whose REST server answers errors in OpenAI's shape and V1/V2 inference with a 400."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dataplane = _OpenAIOnlyDataPlane(model_registry=self.registered_models)

    def start(self, models) -> None:
        # ModelServer.start with our REST server class (one worker, no gRPC)
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = _RESTServer(FASTAPI_APP_IMPORT_STRING, self.dataplane, self.model_repository_extension,
                                        self.http_port, grace_period=self.grace_period,
                                        timeout_keep_alive=self.timeout_keep_alive)
        self.servers.append(self._rest_server.start())
        self.setup_event_loop()
        self.register_signal_handler()
        try:
            asyncio.run(self._serve())
        finally:  # uvicorn has handled SIGTERM/SIGINT; the batching thread must end for the process to exit
            for model in models:
                model.stop()


class _OpenAIOnlyDataPlane(DataPlane):
    async def infer(self, model_name, request, headers=None):
        self._inference_model(model_name)
        return await super().infer(model_name, request, headers)

    async def explain(self, model_name, request, headers=None):
        self._inference_model(model_name)
        return await super().explain(model_name, request, headers)

    async def model_metadata(self, model_name):
        self._inference_model(model_name)
        return await super().model_metadata(model_name)

    def _inference_model(self, model_name: str) -> None:
        if not isinstance(self.get_model_from_registry(model_name), InferenceModel):
            raise InvalidInput(f"model {model_name} serves OpenAI's API only: POST {OPENAI_ROUTE_PREFIX}/v1/completions "
                               f"or {OPENAI_ROUTE_PREFIX}/v1/chat/completions")


class _RESTServer(RESTServer):
    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        for exc, status in ((ModelNotFound, HTTPStatus.NOT_FOUND), (InvalidInput, HTTPStatus.BAD_REQUEST),
                            (ModelNotReady, HTTPStatus.SERVICE_UNAVAILABLE),
                            (ServerNotReady, HTTPStatus.SERVICE_UNAVAILABLE)):
            app.add_exception_handler(exc, _openai_error(status))
        app.add_exception_handler(RequestValidationError, _validation_error)
        app.add_exception_handler(HTTPException, _http_error)


def error_body(message: str, status: int, param: str | None = None, kind: str | None = None) -> dict:
    """OpenAI's error object."""
    kind = kind or {400: "BadRequestError", 404: "NotFoundError"}.get(status, HTTPStatus(status).phrase.replace(" ", ""))
    return {"error": {"message": message, "type": kind, "param": param, "code": str(status)}}


def _openai_error(status: HTTPStatus):
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(str(exc), status.value), status_code=status.value)

    return handler


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """Malformed JSON or wrong types: 400 naming the first bad field (as OpenAI and vLLM answer)."""
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return JSONResponse(error_body(f"malformed JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", 400),
                            status_code=400)
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    message = f"{'.'.join(loc) or 'body'}: {first.get('msg', 'invalid request')}"
    return JSONResponse(error_body(message, 400, ".".join(loc) or None), status_code=400)


async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(error_body(str(exc.detail), exc.status_code), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))
