"""``create_app(store)``: the FastAPI application serving the API, the stream and the dashboard.

The app does not own the store: whoever opened it closes it (see
:func:`policystore.cli.server_commands.serve`). CORS is closed unless origins
are given; request bodies over ``max_body`` bytes are refused with 413.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from policystore import __version__
from policystore.errors import (
    FieldError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
    VersionConflictError,
)
from policystore.server import health, routes, stream
from policystore.server.errors import (
    MalformedRequestError,
    PayloadTooLargeError,
    error_body,
    refusal_reason,
    status_for,
)
from policystore.server.health import ServerMetrics
from policystore.server.stream import StreamHub
from policystore.server.tokens import TokenStore
from policystore.store.store import PolicyStore

__all__ = ["DASHBOARD_DIR", "create_app"]

log = logging.getLogger("policystore.server")

#: Where the dashboard's files live (package data; no build step).
DASHBOARD_DIR: Final = Path(__file__).parent / "dashboard"
#: The dashboard loads only its own files and talks only to this server.
_CSP: Final = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
               "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def create_app(
    store: PolicyStore,
    *,
    tokens: TokenStore | None = None,
    cors_origins: Sequence[str] = (),
    max_body: int = 64 * 1024,
    heartbeat: float = 15.0,
    queue_size: int = 1000,
) -> FastAPI:
    """Build the application serving ``store``.

    Args:
        store: an initialised store; the app reads its snapshot and writes through it.
        tokens: the token table (default: the store back end's ``tokens`` table).
        cors_origins: origins allowed to call the API from a browser; none by default.
        max_body: largest request body accepted, in bytes.
        heartbeat: seconds between stream heartbeats.
        queue_size: events a stream client may have waiting before it is dropped.

    Returns:
        The FastAPI application.
    """
    metrics = ServerMetrics()
    hub = StreamHub(store, metrics, queue_size=queue_size, heartbeat=heartbeat)
    token_store = tokens or TokenStore(store.backend)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Load the tokens now, so that reads keep working if the store goes away later.
        with contextlib.suppress(StoreUnavailableError):
            await token_store.load()
        hub.start()
        try:
            yield
        finally:
            hub.stop()

    app = FastAPI(
        title="policystore",
        version=__version__,
        summary="The trading risk policy: read, change and audit it; follow every change.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.tokens = token_store
    app.state.metrics = metrics
    app.state.hub = hub
    _add_error_handlers(app, metrics)
    app.include_router(routes.router)
    app.include_router(stream.router)
    app.include_router(health.router)
    _add_dashboard(app)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST", "PATCH"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, limit=max_body)
    return app


def _add_dashboard(app: FastAPI) -> None:
    headers = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD_DIR / "index.html", headers=headers)

    app.mount("/static", StaticFiles(directory=DASHBOARD_DIR), name="static")


def _add_error_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    def refuse(exc: PolicyStoreError) -> JSONResponse:
        metrics.refusals.labels(refusal_reason(exc)).inc()
        if isinstance(exc, VersionConflictError):
            metrics.conflicts.inc()
        return JSONResponse(error_body(exc), status_code=status_for(exc))

    async def on_policystore_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PolicyStoreError)  # noqa: S101 - registered for this class only
        return refuse(exc)

    async def on_invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class only
        problems: list[Any] = list(exc.errors())
        for problem in problems:
            if problem.get("type") == "json_invalid":
                return refuse(MalformedRequestError(str(problem.get("ctx", {}).get("error", "cannot parse"))))
        fields = [FieldError(".".join(str(p) for p in problem.get("loc", ())), str(problem.get("msg", "invalid")))
                  for problem in problems]
        return refuse(PolicyValidationError(fields or [FieldError("request", "is invalid")]))

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this class only
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:  # noqa: PLR2004 - the status is the point
            detail = "No such route; the API lives under /v1 (see /openapi.json)."
        return JSONResponse({"error": name, "detail": detail}, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(PolicyStoreError, on_policystore_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(HTTPException, on_http_error)


class BodyLimit:
    """ASGI middleware refusing request bodies larger than ``limit`` bytes with 413.

    Args:
        app: the application to wrap.
        limit: largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an over-long body before the application reads it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        # Read the body now (it is small by the limit) so chunked uploads are held to it too.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(send)
                return
            more = message.get("more_body", False)
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}],
                                      receive), send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(error_body(PayloadTooLargeError(self.limit)), status_code=413)
        await response({"type": "http"}, _nothing, send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
