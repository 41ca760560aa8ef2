"""``create_app(store)``: the FastAPI application serving the API, the stream and the dashboard.

The app does not own the store: whoever opened it closes it (see
:func:`policystore.cli.server_commands.serve`). CORS is closed unless origins
are given; request bodies over ``max_body`` bytes are refused with 413. Every
response carries a strict Content-Security-Policy and the other browser
hardening headers; FastAPI's own /docs and /redoc pages are not served, since
they load scripts from a CDN and run inline code that policy forbids (the
schema stays at /openapi.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
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
    ContentTypeError,
    FieldError,
    InternalError,
    MalformedRequestError,
    PayloadTooLargeError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
)
from policystore.server import fleet, health, proposal_routes, routes, stream, values
from policystore.server.errors import error_body, status_for
from policystore.server.health import ServerMetrics
from policystore.server.stream import StreamHub
from policystore.server.tokens import TokenStore
from policystore.store.store import PolicyStore

__all__ = ["DASHBOARD_DIR", "SECURITY_HEADERS", "BodyLimit", "InternalErrors", "SecurityHeaders", "create_app"]

log = logging.getLogger("policystore.server")

#: Where the dashboard's files live (package data; no build step).
DASHBOARD_DIR: Final = Path(__file__).parent / "dashboard"
#: The dashboard loads only its own files and talks only to this server. 'self' in connect-src also
#: admits ws:/wss: to the same host and port (CSP Level 3), so the stream needs no wider rule; no
#: inline script or style is allowed, so an injected string cannot run in a page holding a token.
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: Sent with every HTTP response: HTML pages need them, and on JSON they cost nothing.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "Referrer-Policy": "no-referrer",
}
_SECURITY_NAMES: Final = frozenset(name.lower().encode("latin-1") for name in SECURITY_HEADERS)
_SECURITY_PAIRS: Final = [
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS.items()
]


def create_app(
    store: PolicyStore,
    *,
    tokens: TokenStore | None = None,
    cors_origins: Sequence[str] = (),
    max_body: int = 64 * 1024,
    heartbeat: float = 15.0,
    queue_size: int = 1000,
    decisions: str | os.PathLike[str] | None = None,
) -> FastAPI:
    """Build the application serving ``store``.

    Args:
        store: an initialised store; the app reads its snapshot and writes through it.
        tokens: the token table (default: the store back end's ``tokens`` table).
        cors_origins: origins allowed to call the API from a browser; none by default.
        max_body: largest request body accepted, in bytes.
        heartbeat: seconds between stream heartbeats.
        queue_size: events a stream client may have waiting before it is dropped.
        decisions: a decision log (JSON Lines) whose newest signals every write's
            dry run decides again under the change; None for none.

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
        # Reloaded in the background, so no request waits on the store to check its token.
        refresher = asyncio.create_task(token_store.keep_fresh(), name="policystore-token-refresh")
        hub.start()
        try:
            yield
        finally:
            hub.stop()
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    app = FastAPI(
        title="policystore",
        version=__version__,
        summary="The trading risk policy: read, change and audit it; follow every change.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.tokens = token_store
    app.state.metrics = metrics
    app.state.hub = hub
    app.state.decisions = None if decisions is None else os.fspath(decisions)
    _add_error_handlers(app, metrics)
    # Before the routers: the busiest route is matched first, and once (see policystore.server.values).
    values.add_value_route(app, store)
    app.include_router(routes.router)
    app.include_router(proposal_routes.router)
    app.include_router(fleet.router)
    app.include_router(stream.router)
    app.include_router(health.router)
    _add_dashboard(app)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(InternalErrors, metrics=metrics)
    # Added last, so it is outermost and also covers refusals made by the middleware inside it,
    # the 500 of an unexpected error among them (Starlette's own ServerErrorMiddleware sits outside
    # every middleware added here, so a 500 it wrote would go out without these headers).
    app.add_middleware(SecurityHeaders)
    return app


def _add_dashboard(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=DASHBOARD_DIR), name="static")


def _add_error_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    def refuse(exc: PolicyStoreError) -> JSONResponse:
        metrics.count_refusal(exc)
        return JSONResponse(error_body(exc), status_code=status_for(exc))

    async def on_policystore_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PolicyStoreError)  # noqa: S101 - registered for this class only
        return refuse(exc)

    async def on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class only
        return refuse(_invalid_request(request, exc))

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this class only
        if exc.status_code == 400:  # noqa: PLR2004 - FastAPI's one HTTPException for a body it could not read
            return refuse(MalformedRequestError(_unreadable(exc.__cause__)))
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:  # noqa: PLR2004 - the status is the point
            detail = "No such route; the API lives under /v1 (see /openapi.json)."
        return JSONResponse({"error": name, "detail": detail}, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(PolicyStoreError, on_policystore_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(HTTPException, on_http_error)


def _invalid_request(request: Request, exc: RequestValidationError) -> PolicyStoreError:
    """Name what was wrong with a request FastAPI refused: its JSON, its Content-Type, or its fields."""
    problems: list[Any] = list(exc.errors())
    for problem in problems:
        if problem.get("type") == "json_invalid":
            return MalformedRequestError(str(problem.get("ctx", {}).get("error", "cannot parse")))
    # A body not labelled as JSON is never parsed, so its fields would all be reported as missing;
    # name the real cause instead.
    content_type = request.headers.get("content-type")
    if not _is_json(content_type) and any(tuple(p.get("loc", ()))[:1] == ("body",) for p in problems):
        return ContentTypeError(content_type)
    fields = [
        FieldError(".".join(str(p) for p in problem.get("loc", ())), str(problem.get("msg", "invalid")))
        for problem in problems
    ]
    return PolicyValidationError(fields or [FieldError("request", "is invalid")])


def _unreadable(cause: BaseException | None) -> str:
    """Say why FastAPI could not read a body it raised a bare 400 for."""
    if isinstance(cause, UnicodeDecodeError):
        return f"it is not UTF-8 text (byte {cause.object[cause.start]:#04x} at position {cause.start})"
    if isinstance(cause, RecursionError):
        return "it is nested too deeply"
    return "it could not be parsed"


def _is_json(content_type: str | None) -> bool:
    """Whether ``content_type`` is one FastAPI parses as JSON: application/json or application/*+json."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response.

    Done here rather than per route so that every page (``/``, the static
    ``/static/index.html``, error pages) is covered, including ones added later.

    Args:
        app: the application to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and add the headers to the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Raw header pairs rather than MutableHeaders: this runs on every response.
                kept = [pair for pair in message.get("headers", ()) if pair[0].lower() not in _SECURITY_NAMES]
                message["headers"] = kept + _SECURITY_PAIRS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class InternalErrors:
    """ASGI middleware answering any unexpected exception with a JSON 500 in the error shape.

    The exception is logged here, with its traceback; the client gets one
    sentence (:class:`~policystore.errors.InternalError`), never a
    traceback or Starlette's plain-text page. Placed inside
    :class:`SecurityHeaders`, so the 500 carries the security headers too.

    Args:
        app: the application to wrap.
        metrics: where to count the failure.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; turn an exception into a JSON 500 if no response has started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            if started:
                raise  # too late for a body of ours: the server logs it and drops the connection
            method, path = str(scope.get("method", "?")), str(scope.get("path", "?"))
            error = InternalError(method, path)
            log.exception("Unexpected error while answering %s %s; answered %d", method, path, status_for(error))
            self.metrics.count_refusal(error)
            await JSONResponse(error_body(error), status_code=status_for(error))(scope, _nothing, send)


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
        declared: bytes | None = None
        chunked = False
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        if not chunked and (declared is None or declared.isdigit()):
            # The server reads exactly the declared length (none: no body), now known to be within the limit.
            await self.app(scope, receive, send)
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
        await self.app(
            scope, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive), send
        )

    async def _refuse(self, send: Send) -> None:
        error = PayloadTooLargeError(self.limit)
        response = JSONResponse(error_body(error), status_code=status_for(error))
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
