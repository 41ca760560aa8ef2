"""``WS /v1/stream``: the snapshot on connect, then every change event in version order.

The token comes in an ``Authorization: Bearer`` header or as the first message,
the JSON text ``{"token": "..."}`` (never in the URL, where logs would keep it).
A first message of any other kind (a binary frame, text that is not JSON, a
bare token, JSON of another shape) gets one ``{"type": "error", ...}`` message
saying what to send, and close code 1007 (invalid payload); a token that is
refused gets one error message and close code 1008 (policy violation).

One message per change: each version's ``policy.updated`` event (which
carries every changed value) and ``policy.rejected`` notices, never the
``policy.mode.changed`` / ``policy.emergency`` events of the same version.
A version that moves a trading state (at any scope) is also sent as its
``policy.trading`` event, right after its ``policy.updated``, so that a client
following trading states alone can watch for that type.

Each client has a bounded queue. The store's event callback only puts events
on the queues, so writers never wait for a client; a client whose queue is
full is closed with code 1013 (try again later) and reconnects to a fresh
snapshot. Heartbeats (``{"type": "heartbeat"}``) keep idle connections alive
and tell clients the server is still there.

At every heartbeat the client's token is checked again: a connection whose
token was revoked gets one error message and close code 1008, so revoking a
token also cuts off the changes it was following.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from policystore.errors import PolicyStoreError, StoreUnavailableError
from policystore.model.events import EventType, PolicyChanged
from policystore.model.roles import Actor
from policystore.server.auth import authenticate, token_from_header
from policystore.server.errors import AuthenticationError, StreamMessageError, error_body
from policystore.server.health import ServerMetrics
from policystore.server.previews import effective_values
from policystore.server.tokens import TokenStore
from policystore.store.store import PolicyStore

__all__ = ["CLOSE_AUTH", "CLOSE_INTERNAL", "CLOSE_PAYLOAD", "CLOSE_SLOW", "STREAMED", "StreamHub", "router"]

log = logging.getLogger("policystore.server")

#: Close code for a refused token (policy violation).
CLOSE_AUTH: Final = 1008
#: Close code for a first message that is not the token message (invalid payload data).
CLOSE_PAYLOAD: Final = 1007
#: Close code for a failure of the server itself.
CLOSE_INTERNAL: Final = 1011
#: The longest first message read as a token message; longer ones are refused unread. The same as
#: the largest message ``policystore serve`` lets uvicorn accept, so a token message with padding
#: that the connection admits is still read (nesting too deep for the parser is refused by itself).
MAX_TOKEN_MESSAGE: Final = 64 * 1024
#: The events the stream sends: one per change, a trading state's change once more as itself, and
#: the notices that are not changes.
STREAMED: Final = frozenset({EventType.UPDATED, EventType.TRADING, EventType.REJECTED})
#: Close code for a client that fell too far behind (try again later).
CLOSE_SLOW: Final = 1013

router = APIRouter()


@dataclass(eq=False)
class _Client:
    queue: asyncio.Queue[dict[str, Any]]
    dropped: bool = field(default=False)

    def offer(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True


class StreamHub:
    """Fans the store's change events out to every connected stream client.

    Args:
        store: the store whose events to send.
        metrics: where to count clients and record propagation lag.
        queue_size: events a client may have waiting before it is dropped.
        heartbeat: seconds between heartbeats on an idle connection.
        auth_timeout: seconds a client has to send its token message.
    """

    def __init__(
        self,
        store: PolicyStore,
        metrics: ServerMetrics,
        *,
        queue_size: int = 1000,
        heartbeat: float = 15.0,
        auth_timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.auth_timeout = auth_timeout
        self._clients: set[_Client] = set()
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Start receiving the store's events."""
        if self._unsubscribe is None:
            self._unsubscribe = self.store.subscribe(self._on_event, types=STREAMED)

    def stop(self) -> None:
        """Stop receiving events."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def client_count(self) -> int:
        """How many clients are connected."""
        return len(self._clients)

    def _on_event(self, event: PolicyChanged) -> None:
        if event.type not in STREAMED:
            return  # the same change as its policy.updated, which carries every changed value
        self.metrics.observe_event(event, datetime.now(UTC))
        message = event.to_dict()
        for client in self._clients:
            client.offer(message)

    async def serve(self, websocket: WebSocket, tokens: TokenStore) -> None:
        """Run one client's connection until it closes.

        Args:
            websocket: the accepted-to-be connection.
            tokens: the token table to check the client's token against.
        """
        await websocket.accept()
        try:
            await self._serve(websocket, tokens)
        except Exception:
            # Logged once here, with the traceback; the client gets a close code, not a dropped socket.
            log.exception("Unexpected error on a stream connection; closing it with %d", CLOSE_INTERNAL)
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await websocket.close(CLOSE_INTERNAL, "the server failed; reconnect for a fresh snapshot")

    async def _serve(self, websocket: WebSocket, tokens: TokenStore) -> None:
        signed_in = await self._authenticate(websocket, tokens)
        if signed_in is None:
            return
        actor, secret = signed_in
        client = _Client(asyncio.Queue(maxsize=self.queue_size))
        # Register before taking the snapshot, so no event falls between the two.
        self._clients.add(client)
        self.metrics.stream_clients.set(len(self._clients))
        try:
            snapshot = self.store.snapshot()
            await websocket.send_json(
                {
                    "type": "snapshot",
                    "version": snapshot.version,
                    "policy": snapshot.document(),
                    "effective": effective_values(snapshot),
                    "source": self.store.source.value,
                    "stale": self.store.stale,
                    "viewer": actor.name,
                    "role": actor.role.value,
                }
            )
            await self._pump(websocket, client, snapshot.version, lambda: _still_valid(tokens, secret, actor.name))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away
        finally:
            self._clients.discard(client)
            self.metrics.stream_clients.set(len(self._clients))

    async def _authenticate(self, websocket: WebSocket, tokens: TokenStore) -> tuple[Actor, str] | None:
        secret = token_from_header(websocket.headers.get("authorization"))
        try:
            if secret is None:
                async with asyncio.timeout(self.auth_timeout):
                    first = await websocket.receive()
                if first["type"] == "websocket.disconnect":
                    return None
                secret = _token_of(first)
            actor = await authenticate(tokens, secret)
        except StreamMessageError as exc:
            await _refuse(websocket, exc, 'send {"token": "<API token>"} first', code=CLOSE_PAYLOAD)
        except PolicyStoreError as exc:
            await _refuse(websocket, exc, "authentication failed")
        except TimeoutError:
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await websocket.close(CLOSE_AUTH, "no token message in time")
        except WebSocketDisconnect:
            pass
        else:
            assert secret is not None  # noqa: S101 - authenticate refuses a missing token
            return actor, secret
        return None

    async def _pump(
        self,
        websocket: WebSocket,
        client: _Client,
        after: int,
        token_valid: Callable[[], Awaitable[bool]],
    ) -> None:
        """Send the client's queued events, a heartbeat every interval, until it leaves or is closed."""
        loop = asyncio.get_running_loop()
        reader = asyncio.create_task(_drain(websocket))
        # One get task lives until it delivers: cancelling a get that has already taken an
        # event off the queue (a timeout landing in the same loop turn) would lose that event.
        get: asyncio.Task[dict[str, Any]] | None = None
        next_beat = loop.time() + self.heartbeat
        try:
            while True:
                if get is None:
                    get = asyncio.create_task(client.queue.get())
                timeout = max(0.0, next_beat - loop.time())
                done, _ = await asyncio.wait({get, reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    return
                if client.dropped:
                    self.metrics.dropped_clients.inc()
                    await websocket.close(CLOSE_SLOW, "client fell behind; reconnect for a fresh snapshot")
                    return
                if get in done:
                    message = get.result()
                    get = None
                    if _rewinds(message):
                        await websocket.close(
                            CLOSE_SLOW, "the store's history was replaced; reconnect for a fresh snapshot"
                        )
                        return
                    if message["version"] > after:  # older ones are already in the snapshot
                        await websocket.send_json(message)
                # Beat on a fixed cadence, busy or idle, so a revoked token is noticed even mid-burst.
                if loop.time() >= next_beat:
                    if not await _beat(websocket, token_valid):
                        return
                    next_beat = loop.time() + self.heartbeat
        finally:
            await _cancel(get, reader)


def _rewinds(message: dict[str, Any]) -> bool:
    """Whether a change goes back to an older version: the client's copy is of a history now replaced."""
    version, previous = int(message["version"]), int(message["previous_version"])
    return message["type"] != EventType.REJECTED.value and version <= previous


async def _beat(websocket: WebSocket, token_valid: Callable[[], Awaitable[bool]]) -> bool:
    """Send a heartbeat if the token still holds; else refuse the client. Return whether it stays."""
    if not await token_valid():
        await _refuse(websocket, AuthenticationError("the token was revoked"), "token revoked")
        return False
    await websocket.send_json({"type": "heartbeat", "at": datetime.now(UTC).isoformat()})
    return True


async def _cancel(*tasks: asyncio.Task[Any] | None) -> None:
    for task in tasks:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


async def _still_valid(tokens: TokenStore, secret: str, name: str) -> bool:
    """Whether ``secret`` still belongs to the token ``name`` (not revoked, not replaced)."""
    try:
        record = await tokens.authenticate(secret)
    except StoreUnavailableError:
        # The table was loaded when the client signed in, so this only happens if the
        # store is away and the cache is gone; keep serving, as reads do through an outage.
        return True
    return record is not None and record.name == name


async def _refuse(websocket: WebSocket, exc: PolicyStoreError, reason: str, *, code: int = CLOSE_AUTH) -> None:
    """Send ``exc`` as one error message, then close with ``code`` (1008, policy violation, by default)."""
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.send_json({"type": "error", **error_body(exc)})
        await websocket.close(code, reason)


async def _drain(websocket: WebSocket) -> None:
    """Read and ignore what the client sends, until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


_JSON_KINDS: Final = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean", type(None): "JSON null"}


def _token_of(message: Mapping[str, Any]) -> str:
    """Return the token of the first message, ``{"token": "..."}``.

    Raises:
        StreamMessageError: the message is anything else, saying what it was.
    """
    text = message.get("text")
    if not isinstance(text, str):
        raise StreamMessageError("a binary frame")
    if len(text) > MAX_TOKEN_MESSAGE:
        raise StreamMessageError(f"{len(text)} characters long, far more than a token message needs")
    try:
        data = json.loads(text)
    except RecursionError:
        raise StreamMessageError("JSON nested too deeply to read") from None
    except ValueError:
        # A bare token is the likeliest mistake: say so, without echoing it.
        bare = text.strip().startswith("ps_")
        raise StreamMessageError("a bare token, not JSON" if bare else "text that is not JSON") from None
    if not isinstance(data, dict):
        raise StreamMessageError(_JSON_KINDS.get(type(data), "a JSON number"))
    token = data.get("token")
    if not isinstance(token, str):
        raise StreamMessageError('a JSON object without a string "token" member')
    return token


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    """The change stream: authenticate, send the snapshot, then every change."""
    hub: StreamHub = websocket.app.state.hub
    await hub.serve(websocket, websocket.app.state.tokens)
