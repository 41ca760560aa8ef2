"""One decision at a time, first come first served: an :class:`asyncio.Lock` that costs nothing when nobody waits.

An executor decides signals one after another (each sees the positions the
ones before it opened). With :class:`asyncio.Lock` every decision awaits
``acquire()``, a coroutine of its own even when the lock is free, and that is a
measurable part of a decision. :class:`Turns` takes a free turn with one
attribute test and store; only a caller that finds the turn taken awaits, in
order of arrival, and the turn passes straight to it when the holder gives it
back, so no later caller can slip in between.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

__all__ = ["Turns"]


class Turns:
    """Mutual exclusion for one event loop's coroutines, in order of arrival.

    Use::

        if not turns.take():
            await turns.wait()
        try:
            ...  # the one holder
        finally:
            turns.give()
    """

    __slots__ = ("_held", "_waiting")

    def __init__(self) -> None:
        self._held = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def held(self) -> bool:
        """True while a caller holds the turn (or it is being handed to a waiter)."""
        return self._held

    def take(self) -> bool:
        """Take the turn if it is free; return False when it is not (then await :meth:`wait`)."""
        if self._held:
            return False
        self._held = True
        return True

    async def wait(self) -> None:
        """Wait until the turn is handed to this caller, after every caller that waited before it.

        Raises:
            asyncio.CancelledError: the caller was cancelled while waiting; it does not hold
                the turn (a turn handed to it meanwhile passes on to the next waiter).
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed the turn just as it was cancelled: pass it on
            else:
                # A give() in between may have passed over it already (it was done).
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
            raise

    def give(self) -> None:
        """Give the turn back: to the first caller still waiting, else free it."""
        waiting = self._waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn stays held: it is this waiter's now
                return
        self._held = False
