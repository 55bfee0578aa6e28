"""The HTTP server: A1111's `/sdapi/v1` API, sd1kit's own job API for the web page, and the page itself.
Handlers never run generation: they enqueue a job and await its future.

The routes live in `routes_generate` (txt2img / img2img, the job API), `routes_status` (png-info, progress,
interrupt, skip, the page), `routes_models` (listings, options, memory), `routes_compat` (A1111's other lists
and the ControlNet extension's), `routes_extras` (the Extras upscale, ControlNet's detect) and `routes_ui` (the
page's own: option table, networks with previews, models view); their payloads' models in `payloads`, the state
they share in `state`.

Every error is one JSON shape, `{"error": kind, "detail": one line, "errors": list | null}`: A1111's
`modules/api/api.py` (`api_error` / `handle_exceptions`) answers exceptions as `{"error": type(e).__name__,
"detail": ..., "body": ..., "errors": str(e)}`; here `errors` lists each field problem (its `loc`, `msg`, `type`,
as FastAPI's validation errors do) or is null."""

from __future__ import annotations

import base64
import secrets
import sys
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from sd1kit import __version__
from sd1kit.errors import Sd1kitError
from sd1kit.server import routes_compat, routes_extras, routes_generate, routes_models, routes_status, routes_ui
from sd1kit.server.a1111 import PayloadInvalid
from sd1kit.server.jobs import JobQueue, QueueFull
from sd1kit.server.routes_generate import generation_job  # noqa: F401  (re-exported)
from sd1kit.server.state import (  # noqa: F401  (re-exported: tests and the CLI import them from here)
    BUILTIN_TITLE, MAX_BODY, MODEL_SUFFIXES, ServerConfig, ServerState, find_checkpoint, list_checkpoints, safe_name)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
RETRY_AFTER_S = 5  # the 429's Retry-After (seconds): about one small job on a CPU


def create_app(config: ServerConfig) -> FastAPI:
    app = FastAPIOffline(title="sd1kit", version=__version__,  # /docs and /redoc work offline
                         description="An A1111-compatible API for SD1-family models (sd1kit)")
    state = ServerState(config, JobQueue(config.queue_size, config.replicas if config.ray is not None else 1))
    app.state.sd1kit = state
    if config.ray is not None:
        from sd1kit.pipeline.runtime import given_runtime
        from sd1kit.server.replicas import Replicas

        state.replicas = Replicas(config.ray, config.replicas, given_runtime(config), 1,
                                  str(config.models_dir) if config.models_dir else None)
    app.middleware("http")(guard)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(CatchAll)
    for kind, handler in ((RequestValidationError, validation_error), (PayloadInvalid, payload_invalid),
                          (Sd1kitError, sd1kit_error), (QueueFull, queue_full), (HTTPException, http_error)):
        app.add_exception_handler(kind, handler)
    if config.model:
        state.model_title = find_checkpoint(state, config.model)["title"]
    for router in (routes_generate.router, routes_status.router, routes_models.router, routes_compat.router,
                   routes_extras.router, routes_ui.router,
                   routes_generate.jobs_router, routes_status.page_router):
        app.include_router(router)
    app.add_api_route("/internal/ping", ping, methods=["GET"])
    app.mount("/sd1kit-static", StaticFiles(packages=[("sd1kit.server", "static")]), name="sd1kit-static")  # the page
    return app


async def ping():
    """A1111's liveness check (`webui.py` adds `/internal/ping` answering `{}`)."""
    return {}


def error_response(status: int, kind: str, detail, errors: list | None = None, headers=None) -> JSONResponse:
    """The one error shape; `detail` made one line (and not a whole echoed payload)."""
    line = " ".join(str(detail).split())
    if len(line) > 500:
        line = line[:497] + "..."
    return JSONResponse({"error": kind, "detail": line, "errors": errors}, status_code=status, headers=headers)


def _field_errors(e: RequestValidationError) -> list[dict]:
    """FastAPI's error list without the `input` it echoes (which can be the whole body)."""
    return [{"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")),
             "type": str(err.get("type", ""))} for err in e.errors()]


async def validation_error(request: Request, e: RequestValidationError):
    errors = _field_errors(e)
    detail = "; ".join(f"{'.'.join(err['loc'])}: {err['msg']}" for err in errors[:5]) or "invalid request"
    return error_response(422, "RequestValidationError", detail, errors)


async def payload_invalid(request: Request, e: PayloadInvalid):
    return error_response(422, "RequestValidationError", str(e), e.errors)


async def sd1kit_error(request: Request, e: Sd1kitError):
    return error_response(400, type(e).__name__, str(e))


async def queue_full(request: Request, e: QueueFull):
    return error_response(429, "QueueFull", str(e), headers={"Retry-After": str(RETRY_AFTER_S)})


async def http_error(request: Request, e):
    return error_response(e.status_code, "HTTPException", e.detail, headers=getattr(e, "headers", None))


class CatchAll:
    """ASGI middleware: anything unexpected is a 500 in the error shape, with the traceback in the server's log.
    (Starlette's handler for `Exception` answers, then re-raises, and uvicorn drops the connection.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        started = False

        async def sending(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:  # noqa: BLE001 - answered, and logged
            if scope["type"] != "http" or started:
                raise
            print(f"sd1kit: error: {scope.get('method')} {scope.get('path')}:", file=sys.stderr)
            traceback.print_exception(e, file=sys.stderr)
            await error_response(500, type(e).__name__, str(e) or type(e).__name__)(scope, receive, send)


async def guard(request: Request, call_next):
    """Basic auth (when configured), then the body size limit (of a declared length; `BodyLimit` counts the
    bytes of the others)."""
    auth = request.app.state.sd1kit.config.auth
    if auth is not None and not _authorized(request, auth):
        return error_response(401, "HTTPException", "authentication required",
                              headers={"WWW-Authenticate": 'Basic realm="sd1kit"'})
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        return error_response(413, "HTTPException", f"request body over {MAX_BODY >> 20} MB")
    return await call_next(request)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: counts a request body's bytes as they arrive and stops at `limit` (a chunked body has no
    Content-Length to check first). Past it, reading the body raises; whatever the app then answers is dropped
    and a 413 in the error shape sent instead. The rest of the body is never read (uvicorn stops reading the
    socket and closes the connection after the answer)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        seen, over = 0, False

        async def counted():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                over = over or seen > self.limit
            if over:
                raise BodyTooLarge(f"request body over {self.limit >> 20} MB")
            return message

        async def sending(message):
            if not over:
                await send(message)

        try:
            await self.app(scope, counted, sending)
        except Exception:  # noqa: BLE001 - however the layers inside wrapped the reader's error
            if not over:
                raise
        if over:
            await error_response(413, "HTTPException", f"request body over {self.limit >> 20} MB")(
                scope, receive, send)


def _authorized(request: Request, auth: tuple[str, str]) -> bool:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user, auth[0]) and secrets.compare_digest(password, auth[1])


def check_bind(host: str, auth, insecure: bool) -> None:
    if host not in LOOPBACK and auth is None and not insecure:
        raise Sd1kitError("--host", f"listening on {host} needs --auth user:pass (or --insecure-no-auth, which lets "
                                    "anyone on the network run the model)")
