"""The HTTP server: A1111's `/sdapi/v1` API, sd1kit's own job API for the web page, and the page itself.
Handlers never run generation: they enqueue a job and await its future.

The routes live in `routes_generate` (txt2img / img2img, the job API), `routes_status` (png-info, progress,
interrupt, skip, the page) and `routes_models` (listings, options, memory); the state they share, in `state`."""

from __future__ import annotations

import base64
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sd1kit import __version__
from sd1kit.errors import Sd1kitError
from sd1kit.server import routes_generate, routes_models, routes_status
from sd1kit.server.jobs import JobQueue, QueueFull
from sd1kit.server.routes_generate import _body_schema, generation_job  # noqa: F401  (re-exported)
from sd1kit.server.state import (  # noqa: F401  (re-exported: tests and the CLI import them from here)
    BUILTIN_TITLE, MAX_BODY, MODEL_SUFFIXES, ServerConfig, ServerState, find_checkpoint, list_checkpoints, safe_name)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def create_app(config: ServerConfig) -> FastAPI:
    app = FastAPI(title="sd1kit", version=__version__,
                  description="An A1111-compatible API for SD1-family models (sd1kit)")
    state = ServerState(config, JobQueue(config.queue_size))
    app.state.sd1kit = state
    app.middleware("http")(guard)
    app.add_exception_handler(Sd1kitError, sd1kit_error)
    app.add_exception_handler(QueueFull, queue_full)
    if config.model:
        state.model_title = find_checkpoint(state, config.model)["title"]
    for router in (routes_generate.router, routes_status.router, routes_models.router,
                   routes_generate.jobs_router, routes_status.page_router):
        app.include_router(router)
    return app


async def guard(request: Request, call_next):
    """Basic auth (when configured), then the body size limit."""
    auth = request.app.state.sd1kit.config.auth
    if auth is not None and not _authorized(request, auth):
        return JSONResponse({"error": "authentication required"}, status_code=401,
                            headers={"WWW-Authenticate": 'Basic realm="sd1kit"'})
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        return JSONResponse({"error": f"request body over {MAX_BODY >> 20} MB"}, status_code=413)
    return await call_next(request)


async def sd1kit_error(request: Request, e: Sd1kitError):
    return JSONResponse({"error": str(e), "detail": str(e)}, status_code=400)


async def queue_full(request: Request, e: QueueFull):
    return JSONResponse({"error": str(e), "detail": str(e)}, status_code=429)


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
