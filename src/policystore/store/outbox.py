"""The outbox: change events queued under the store's lock, handed to subscribers after it, in version order."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable

from policystore.model.events import PolicyChanged
from policystore.store.bus import EventBus

__all__ = ["Outbox"]

log = logging.getLogger("policystore")

#: Seconds ``close()`` waits for subscribers to take the events still queued.
_CLOSE_DELIVERY_SECONDS = 5.0


class Outbox:
    """Events waiting to be delivered, in version order.

    Events are queued under the store's lock and delivered after it is
    released, so a subscriber may itself write to the store. Only one delivery
    runs at a time: a write made by a subscriber queues its events behind the
    one being delivered, and the running delivery hands them on when the
    subscriber returns.

    Args:
        bus: the subscribers and ``watch()`` iterators to deliver to.
        closed: tells whether the store is closing; a delivery cancelled then
            is not resumed by a task of its own (``close()`` delivers the rest).
    """

    def __init__(self, bus: EventBus, *, closed: Callable[[], bool]) -> None:
        self._bus = bus
        self._closed = closed
        self._queue: deque[PolicyChanged] = deque()
        self._delivering = False
        #: A delivery resumed after a cancelled one, held so that it is not collected.
        self._delivery: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        """Whether anyone would receive an event now: events are made only for someone to receive them."""
        return self._bus.listening

    @property
    def pending(self) -> bool:
        """Whether events wait to be delivered."""
        return bool(self._queue)

    def add(self, events: Iterable[PolicyChanged]) -> None:
        """Queue ``events`` behind those waiting; called with the store's lock held."""
        self._queue.extend(events)

    async def deliver(self) -> None:
        """Hand queued events to subscribers, outside the lock and in version order."""
        if self._delivering:
            return
        self._delivering = True
        handed = False
        try:
            while self._queue:
                # Taken off the queue only once delivered: a delivery cancelled half way
                # is repeated whole by the next one (each event carries an event_id).
                handed = await self._bus.publish(self._queue[0]) or handed
                self._queue.popleft()
            if handed:
                # Let the watch() iterators take their events now, before whatever this task
                # does next: the next notice, already received, would otherwise go first.
                await asyncio.sleep(0)
        finally:
            self._delivering = False
            if self._queue and not self._closed():
                # Cancelled with events left: hand them to a task of their own.
                self._delivery = asyncio.create_task(self.deliver(), name="policystore-deliver")

    async def deliver_all(self) -> None:
        """Wait for a delivery in progress, then deliver what is left (used on close).

        Bounded, so a subscriber that never returns cannot hang ``close()``.
        """
        try:
            async with asyncio.timeout(_CLOSE_DELIVERY_SECONDS):
                while self._queue or self._delivering:
                    if self._delivering:
                        await asyncio.sleep(0.01)
                    else:
                        await self.deliver()
        except TimeoutError:
            log.error("Closing with %d change events undelivered: a subscriber did not return", len(self._queue))  # noqa: TRY400 - stated in full
