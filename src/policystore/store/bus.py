"""In-process fan-out of change events to ``subscribe()`` callbacks and ``watch()`` iterators."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from policystore.model.events import PolicyChanged

__all__ = ["EventBus", "ExternalEventBus", "Subscriber"]

log = logging.getLogger("policystore.events")

Subscriber = Callable[[PolicyChanged], Awaitable[None] | None]


class ExternalEventBus(Protocol):
    """A system-wide bus the store also publishes its own writes to."""

    def publish(self, topic: str, payload: dict[str, Any]) -> Any:
        """Publish ``payload`` under ``topic``; may return an awaitable."""


class EventBus:
    """Delivers each event to every subscriber; one failing subscriber harms no other."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._queues: set[asyncio.Queue[PolicyChanged | None]] = set()

    @property
    def listening(self) -> bool:
        """Whether any subscriber or watch() iterator would receive an event now."""
        return bool(self._subscribers or self._queues)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` (sync or async) with every event; return an unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def watch(self) -> AsyncIterator[PolicyChanged]:
        """Yield every event from the call on, in version order, until the store closes."""
        # Registered now, not at the first iteration: no event between the two is missed.
        queue: asyncio.Queue[PolicyChanged | None] = asyncio.Queue()
        self._queues.add(queue)

        async def follow() -> AsyncIterator[PolicyChanged]:
            try:
                while (event := await queue.get()) is not None:
                    yield event
            finally:
                self._queues.discard(queue)

        return follow()

    async def publish(self, event: PolicyChanged) -> None:
        """Deliver ``event``; subscriber errors are logged with the event, never raised."""
        for queue in self._queues:
            queue.put_nowait(event)
        for callback in list(self._subscribers):
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("Subscriber %r failed on %s (version %d)", callback, event.type, event.version)

    def close(self) -> None:
        """End every watch() iterator."""
        for queue in self._queues:
            queue.put_nowait(None)
