"""In-process fan-out of change events to ``subscribe()`` callbacks and ``watch()`` iterators.

Each listener names the kinds it wants. By default it hears each change once,
as its ``policy.updated`` event, and the ``policy.rejected`` notices (which are
not changes); ``types=`` asks for exactly the kinds listed, so a listener that
wants mode switches alone asks for ``policy.mode.changed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Final, Protocol

from policystore._callbacks import call_sync_or_async
from policystore.errors import FieldError, PolicyValidationError
from policystore.model.events import EventType, PolicyChanged

__all__ = ["DEFAULT_TYPES", "EventBus", "EventTypes", "ExternalEventBus", "Subscriber", "event_types"]

log = logging.getLogger("policystore.events")

Subscriber = Callable[[PolicyChanged], Awaitable[None] | None]
#: What ``types=`` takes: event kinds, or their string values (``"policy.mode.changed"``).
EventTypes = Iterable[EventType | str]
#: What a listener hears without ``types=``: each change once, and refused versions.
DEFAULT_TYPES: Final = frozenset({EventType.UPDATED, EventType.REJECTED})


class ExternalEventBus(Protocol):
    """A system-wide bus the store also publishes its own writes to."""

    def publish(self, topic: str, payload: dict[str, Any]) -> Any:
        """Publish ``payload`` under ``topic``; may return an awaitable."""


def event_types(types: EventTypes | EventType | str | None) -> frozenset[EventType]:
    """Return the kinds a listener asked for; None gives :data:`DEFAULT_TYPES`.

    A single kind or string counts as a list of one.

    Raises:
        PolicyValidationError: ``types`` names something that is not an event kind.
    """
    if types is None:
        return DEFAULT_TYPES
    listed: Iterable[Any] = (types,) if isinstance(types, str) else types
    kinds: set[EventType] = set()
    for kind in listed:
        try:
            kinds.add(EventType(kind))
        except ValueError:
            known = ", ".join(t.value for t in EventType)
            raise PolicyValidationError([FieldError("types", f"{kind!r} is not an event type ({known})")]) from None
    return frozenset(kinds)


class EventBus:
    """Delivers each event to every listener that asked for its kind; one failing subscriber harms no other."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, frozenset[EventType]]] = []
        self._queues: dict[asyncio.Queue[PolicyChanged | None], frozenset[EventType]] = {}

    @property
    def listening(self) -> bool:
        """Whether any subscriber or watch() iterator would receive an event now."""
        return bool(self._subscribers or self._queues)

    def subscribe(self, callback: Subscriber, *, types: EventTypes | None = None) -> Callable[[], None]:
        """Call ``callback`` (sync or async) with every event of ``types``; return an unsubscribe function.

        Raises:
            PolicyValidationError: ``types`` names something that is not an event kind.
        """
        entry = (callback, event_types(types))
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def watch(self, *, types: EventTypes | None = None) -> AsyncIterator[PolicyChanged]:
        """Yield every event of ``types`` from the call on, in version order, until the store closes.

        Raises:
            PolicyValidationError: ``types`` names something that is not an event kind.
        """
        kinds = event_types(types)
        # Registered now, not at the first iteration: no event between the two is missed.
        queue: asyncio.Queue[PolicyChanged | None] = asyncio.Queue()
        self._queues[queue] = kinds

        async def follow() -> AsyncIterator[PolicyChanged]:
            try:
                while (event := await queue.get()) is not None:
                    yield event
            finally:
                self._queues.pop(queue, None)

        return follow()

    async def publish(self, event: PolicyChanged) -> bool:
        """Deliver ``event`` to those who asked for its kind; subscriber errors are logged, never raised.

        Returns:
            Whether a ``watch()`` iterator was handed the event: it has it once its task next runs.
        """
        handed = False
        for queue, kinds in self._queues.items():
            if event.type in kinds:
                queue.put_nowait(event)
                handed = True
        for callback, kinds in list(self._subscribers):
            if event.type not in kinds:
                continue
            try:
                await call_sync_or_async(callback, event)
            except Exception:
                log.exception("Subscriber %r failed on %s (version %d)", callback, event.type, event.version)
        return handed

    def close(self) -> None:
        """End every watch() iterator."""
        for queue in self._queues:
            queue.put_nowait(None)
