"""``create_app(store)``: the FastAPI application serving the API, the stream and the dashboard.

The app does not own the store: whoever opened it closes it (see
:func:`policystore.cli.server_commands.serve`). CORS is closed unless origins
are given; request bodies over ``max_body`` bytes are refused with 413. Every
response carries a strict Content-Security-Policy and the other browser
hardening headers (:mod:`policystore.server.hardening`); FastAPI's own /docs and /redoc pages are not served, since
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

from policystore import __version__
from policystore.errors import (
    ContentTypeError,
    FieldError,
    MalformedRequestError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
)
from policystore.server import fleet, health, proposal_routes, routes, stream, values
from policystore.server.errors import error_body, status_for
from policystore.server.hardening import SECURITY_HEADERS, Hardening
from policystore.server.health import ServerMetrics
from policystore.server.stream import StreamHub
from policystore.server.tokens import TokenStore
from policystore.store.store import PolicyStore

__all__ = ["DASHBOARD_DIR", "SECURITY_HEADERS", "create_app"]

log = logging.getLogger("policystore.server")

#: Where the dashboard's files live (package data; no build step).
DASHBOARD_DIR: Final = Path(__file__).parent / "dashboard"


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
    # Added last, so it is outermost: its headers go on every response, CORS refusals among them.
    app.add_middleware(Hardening, metrics=metrics, max_body=max_body)
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
