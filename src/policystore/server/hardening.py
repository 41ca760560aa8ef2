"""What every HTTP request passes through before the routes: security headers, the body limit, JSON 500s.

One ASGI middleware, :class:`Hardening`, does the three jobs, because each
layer of middleware costs every request a coroutine call and every response
message one more wrapper to pass through: on the busiest read those layers
cost as much as the route itself.

* Every response carries :data:`SECURITY_HEADERS` (done here rather than per
  route so that every page, ``/``, the static files and error pages among
  them, is covered, including ones added later).
* A request body over the limit is refused with 413 before the application
  reads it, whether it declares its length or comes in chunks.
* An unexpected exception is answered with a JSON 500 in the error shape
  (:class:`~policystore.errors.InternalError`), logged here with its
  traceback, never with a traceback or Starlette's plain-text page.

Refusals made here (the 413, the 500) carry the security headers too.
Starlette's own ServerErrorMiddleware sits outside every middleware the app
adds, so a 500 it wrote would go out without them: this middleware answers
first.
"""

from __future__ import annotations

import logging
from typing import Final

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from policystore.errors import InternalError, PayloadTooLargeError
from policystore.server.errors import error_body, status_for
from policystore.server.health import ServerMetrics

__all__ = ["SECURITY_HEADERS", "Hardening"]

log = logging.getLogger("policystore.server")

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


class Hardening:
    """ASGI middleware: security headers on every response, a body limit, and a JSON 500 for any failure.

    Args:
        app: the application to wrap.
        metrics: where to count the requests refused here.
        max_body: largest request body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with the headers added to its response; refuse or answer what goes wrong."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_hardened(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # Raw header pairs rather than MutableHeaders: this runs on every response.
                kept = [pair for pair in message.get("headers", ()) if pair[0].lower() not in _SECURITY_NAMES]
                message["headers"] = kept + _SECURITY_PAIRS
            await send(message)

        try:
            declared, chunked = _framing(scope)
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                await self._refuse(send_hardened)
            elif not chunked and (declared is None or declared.isdigit()):
                # The server reads exactly the declared length (none: no body), now known to be within the limit.
                await self.app(scope, receive, send_hardened)
            else:
                await self._read_body_first(scope, receive, send_hardened)
        except Exception:
            if started:
                raise  # too late for a body of ours: the server logs it and drops the connection
            method, path = str(scope.get("method", "?")), str(scope.get("path", "?"))
            error = InternalError(method, path)
            log.exception("Unexpected error while answering %s %s; answered %d", method, path, status_for(error))
            self.metrics.count_refusal(error)
            await JSONResponse(error_body(error), status_code=status_for(error))(scope, _nothing, send_hardened)

    async def _read_body_first(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body (it is small by the limit) before passing it on, so chunked uploads are held to it too."""
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
            if size > self.max_body:
                await self._refuse(send)
                return
            more = message.get("more_body", False)
        await self.app(
            scope, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive), send
        )

    async def _refuse(self, send: Send) -> None:
        error = PayloadTooLargeError(self.max_body)
        response = JSONResponse(error_body(error), status_code=status_for(error))
        await response({"type": "http"}, _nothing, send)


def _framing(scope: Scope) -> tuple[bytes | None, bool]:
    """Return the request's Content-Length (None when it has none) and whether it is sent chunked."""
    declared: bytes | None = None
    chunked = False
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            declared = value
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


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
