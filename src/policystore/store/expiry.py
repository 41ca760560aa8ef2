"""Expiring changes end on time in every process: a timer on the event loop, and the return recorded once.

The read state holds the policy in force (see
:func:`~policystore.model.expiry.in_force`) and when its next expiring change
ends (``ReadState.ends_at``). :class:`EndTimer` puts a timer on the store's
event loop for that moment (``loop.call_at``); when it fires, the read state is
replaced whole by the one in force then, so ``get`` stays one dict lookup and
reads the earlier values from the end on, with no write and no I/O: with the
store out of reach too, and in a process that only reads. Reads that may run
while the loop is held up (``snapshot``, ``gate``, ``explain``...) also compare
the end with the clock themselves (see :class:`~policystore.store.reads.Reads`).

A process that follows changes then records the return as a new version (see
:mod:`~policystore.store.returns`): compare-and-set on the
version lets exactly one process do it, and the others see that version arrive
and change nothing, since they read its values already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from policystore.errors import StoreUnavailableError
from policystore.store.sources import ReadState, Source

__all__ = ["EndTimer"]

log = logging.getLogger("policystore")

#: Seconds the timer waits at least before it looks again, after firing a little early.
_MIN_DELAY = 0.001


class EndTimer:
    """Ends the expiring changes of a store's read state when they end, and has their return recorded.

    Args:
        state: returns the store's read state now.
        advance: replaces ``state`` (if it is still the store's) by the one in force now,
            and returns the store's read state.
        clock: returns the current UTC time.
    """

    def __init__(
        self,
        state: Callable[[], ReadState],
        advance: Callable[[ReadState], ReadState],
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._state = state
        self._advance = advance
        self._clock = clock
        #: Records the return of ended changes; set for a store that follows changes.
        self.recorder: Callable[[], Awaitable[object]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._recording: asyncio.Task[None] | None = None
        self._stopped = False

    def watch(self, state: ReadState) -> None:
        """Time the next end of ``state``, the store's new read state, and have the returns it made recorded.

        Called on every new read state; from a thread other than the loop's, the
        work is handed to the loop. Before the store has a loop (a store made
        outside one), nothing is timed: opening the store times it.
        """
        if self._stopped:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            # Another thread (the sync facade's caller) ended a change: the loop times the next end.
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.watch, state)
            return
        self._loop = loop  # the loop the store runs on now
        if state is not self._state():
            return  # a newer state was installed since; it was watched in its turn
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if state.ends_at is not None:
            delay = (state.ends_at - self._clock()).total_seconds()
            self._timer = loop.call_at(loop.time() + max(delay, _MIN_DELAY), self._fire)
        if state.ended and state.source is Source.STORE:
            self._record(loop)

    def stop(self) -> None:
        """Cancel the timer and any recording in progress (the store is closing)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._recording is not None:
            self._recording.cancel()

    async def wait_recorded(self) -> None:
        """Wait for a recording in progress to end (used on close, and by tests)."""
        if self._recording is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recording

    def _fire(self) -> None:
        self._timer = None
        state = self._state()
        if state.ends_at is not None and self._clock() >= state.ends_at:
            self._advance(state)  # installs the state in force now, which is watched in its turn
        else:
            # Fired before the end by the wall clock (the loop's clock drifts from it), or a state
            # replaced meanwhile: time again.
            self.watch(state)

    def _record(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.recorder is None or (self._recording is not None and not self._recording.done()):
            return
        self._recording = loop.create_task(self._run_recorder(self.recorder), name="policystore-return")

    @staticmethod
    async def _run_recorder(recorder: Callable[[], Awaitable[object]]) -> None:
        try:
            await recorder()
        except StoreUnavailableError:
            pass  # the read state went stale; the return is recorded once the store is back
        except Exception:
            log.exception("Recording the return of an expiring change failed; it is tried again on the next version")
