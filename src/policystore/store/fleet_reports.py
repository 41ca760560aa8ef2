"""This process's reports as a member of its store's fleet.

A store that follows changes (``watch=True``) is a member of its store's fleet:
a :class:`FleetReporter` keeps its record in the back end's ``fleet`` collection
(see :mod:`policystore.model.fleet` for the record and the notes on clocks). It
runs as a task of its own: installing a version only sets an event, so no read,
write or decision ever waits on a report, and a version reaches ``watch()``
before its report is made. A version is reported at once when the last report
is :data:`REPORT_GAP` seconds old or more; versions that come faster are
reported by the newest of them when the gap ends, so a member rewrites its
record at most that often however fast versions come (with every member
reporting every version, a burst of writes would otherwise be members times
versions writes to the store). A process that waits on the fleet asks for
reports of its version (:class:`~policystore.backends.base.ReportRequests`):
a member answers at once, or as soon as it holds that version, but only for a
version it has not reported yet, so a forged request makes no report that a
version would not have made anyway. The record is rewritten at least once a
second; where the back end offers it
(:class:`~policystore.backends.base.UnloggedRecords`), only a report made a
second or more after the last logged one is logged, the others are written
without the durability of a commit (each member reports up to 20 times a second, and on
Redis with ``appendfsync always`` each logged report would be an fsync in the
way of the next commit). A report that fails is logged once per outage and
kept as :attr:`FleetReporter.error` (the store's ``fleet_error``) until one
succeeds. Closing the store deletes its record: it leaves the fleet at once.
The reads of every member's record are in :mod:`policystore.store.fleet`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from policystore.backends.base import RecordStore, UnloggedRecords
from policystore.errors import PolicyStoreError
from policystore.model.fleet import (
    DROP_AFTER,
    FLEET_COLLECTION,
    LOST_AFTER,
    MAX_NAME,
    REPORT_EVERY,
    FleetMember,
    FleetStatus,
    check_member_name,
    member_from_record,
)
from policystore.store.sources import ReadState

__all__ = [
    "REPORT_GAP",
    "FleetReporter",
    "check_name",
    "default_member_name",
    "member_record",
    "member_status",
    "sweep",
]

log = logging.getLogger("policystore.fleet")

#: Reports between two sweeps of records whose members were dropped (a minute at one report a second).
_SWEEP_EVERY: Final = 60
#: Seconds ``close()`` waits for a report in flight before it deletes the record.
_LEAVE_WAIT: Final = 2.0
#: The least time between two reports of the versions a member applies (see the module's notes).
REPORT_GAP: Final = 0.05
#: Requests for versions not held yet, kept until held: a few at most (the smallest are kept).
_WANTED_MOST: Final = 16


def default_member_name() -> str:
    """Return the program's name: ``sys.argv[0]`` without its folder, or the module run with ``python -m``.

    ``python`` when there is neither (an interactive session, ``python -c``).
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        program = str(spec.name).removesuffix(".__main__")
    else:
        program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if not program or program in {"-c", "-m", "-"} or not program.isprintable():
        return "python"
    return program[:MAX_NAME]


def member_record(
    member_id: str, name: str, host: str, state: ReadState, *, reported_at: float, started_at: float
) -> dict[str, Any]:
    """Return the record a member keeps in the ``fleet`` collection.

    Args:
        member_id: the member's key.
        name: its name.
        host: its host name.
        state: its read state now: the version applied, and whether it is stale.
        reported_at: now, by the member's clock, in seconds since the epoch.
        started_at: when the member joined, likewise.

    Returns:
        The record (JSON-ready).
    """
    return {
        "member_id": member_id,
        "name": name,
        "host": host,
        "pid": os.getpid(),
        "version": state.policy.version,
        "stale": state.stale,
        "reported_at": reported_at,
        "started_at": started_at,
    }


class FleetReporter:
    """Reports one store as a member of its fleet, in a task of its own.

    Args:
        records: the back end's records.
        state: returns the store's read state now.
        name: the member's name.
        url: the store's URL, safe to show, for the log.
        clock: returns the time in seconds since the epoch (``time.time``).
    """

    def __init__(
        self,
        records: RecordStore,
        state: Callable[[], ReadState],
        *,
        name: str,
        url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.member_id = uuid.uuid4().hex
        self.name = name
        self.host = socket.gethostname() or "unknown"
        self._records = records
        self._state = state
        self._url = url
        self._clock = clock
        self._started = clock()
        #: Writes a report without logging it, where the back end can (see the module's notes).
        self._unlogged = records.put_unlogged if isinstance(records, UnloggedRecords) else None
        #: When the last logged report was made, by ``clock``.
        self._logged_at = -math.inf
        #: Why the last report failed; None once one succeeds.
        self.error: PolicyStoreError | None = None
        #: When the last report succeeded (None before the first), by this process's clock.
        self.reported_at: float | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        #: The loop the reports run on, once started; the heartbeat that asks for a report a
        #: second after the last one; and when that one was made, by the loop's clock.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._last = 0.0
        #: The report due when the gap since the last one ends, if one is waiting.
        self._trailing: asyncio.TimerHandle | None = None
        #: The version the last report that succeeded held; versions asked for and not held yet.
        self._reported_version = -1
        self._wanted: set[int] = set()

    def applied(self) -> None:
        """Ask for a report: a version was installed, or the state went stale. Never waits.

        Made on the next turn of the loop when the last report is :data:`REPORT_GAP`
        seconds old or a waiter asked for this version, else when the gap ends. The
        task that installed a version hands its event to the ``watch()`` iterators
        first, so they take it before the report.
        """
        loop = self._loop
        if self._stopping:
            return
        if loop is None:
            self._wake.set()
            return
        held = self._state().policy.version
        if self._wanted and min(self._wanted) <= held:
            self._wanted = {version for version in self._wanted if version > held}
            loop.call_soon(self._wake.set)
            return
        wait = self._last + REPORT_GAP - loop.time()
        if wait <= 0:
            loop.call_soon(self._wake.set)
        elif self._trailing is None:
            self._trailing = loop.call_later(wait, self._trail)

    def requested(self, version: int) -> None:
        """A waiter asked for reports of ``version`` or a newer one: report it at once, or once it is held.

        Only a version this member has not reported yet is reported for a request.
        """
        if self._stopping or version <= self._reported_version:
            return
        if self._state().policy.version >= version:
            if self._loop is not None:
                self._loop.call_soon(self._wake.set)
            return
        self._wanted.add(version)
        if len(self._wanted) > _WANTED_MOST:
            self._wanted.discard(max(self._wanted))

    def _trail(self) -> None:
        self._trailing = None
        self._wake.set()

    async def start(self, *, report_now: bool) -> None:
        """Start reporting: on every version applied and every :data:`REPORT_EVERY` seconds.

        Args:
            report_now: make the first report before returning, so the member is
                listed before its store is handed to the program that opened it
                (a write's wait then counts it); otherwise the first is made in the
                background (the store could not be reached at opening).
        """
        if self._task is not None:
            return
        # Known from here on: a version applied before the task first runs is paced like any other.
        loop = self._loop = asyncio.get_running_loop()
        if report_now:
            self._wake.clear()
            await self._report()
        else:
            self._wake.set()
        self._last = loop.time()
        self._beat = loop.call_at(self._last + REPORT_EVERY, self._heartbeat)
        self._task = asyncio.create_task(self._run(), name="policystore-fleet")

    async def leave(self) -> None:
        """Stop reporting and delete this member's record: the store leaves the fleet at once.

        A report in flight is given a moment to end first, so it cannot write the
        record again after the delete. A delete that fails (the store is out of
        reach) leaves the record to be judged lost, then dropped.
        """
        self._stopping = True
        self._wake.set()
        for timer in (self._beat, self._trailing):
            if timer is not None:
                timer.cancel()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            async with asyncio.timeout(_LEAVE_WAIT):
                await task
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self._records.delete(FLEET_COLLECTION, self.member_id)
        except PolicyStoreError as exc:
            log.info("Could not remove this process from the fleet of %s (%s); it will show as lost.", self._url, exc)

    def own_member(self, *, now: float, current_version: int) -> FleetMember:
        """Return this member as it stands here: its local version, and when it was last heard by the store.

        Args:
            now: the reader's time, in seconds since the epoch.
            current_version: the version to measure the lag against.
        """
        state = self._state()
        heard = self.reported_at if self.reported_at is not None else self._started
        age = max(now - heard, 0.0)
        return FleetMember(
            member_id=self.member_id,
            name=self.name,
            host=self.host,
            pid=os.getpid(),
            version=state.policy.version,
            stale=state.stale,
            last_heard=datetime.fromtimestamp(heard, UTC),
            lag_versions=max(current_version - state.policy.version, 0),
            lag_seconds=age,
            status=member_status(age),
            error=None if self.error is None else str(self.error),
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        reports = 0
        while True:
            await self._wake.wait()
            if self._stopping:
                return
            # Cleared before the state is read: a version installed during the report wakes the next one.
            self._wake.clear()
            if self._trailing is not None:  # this report holds what it would have
                self._trailing.cancel()
                self._trailing = None
            await self._report()
            self._last = loop.time()
            reports += 1
            if reports % _SWEEP_EVERY == 0:
                await sweep(self._records, self._clock())

    def _heartbeat(self) -> None:
        """Ask for a report when none was made for :data:`REPORT_EVERY` seconds; then look again when the next is due.

        One timer a second, rather than one made and cancelled for each version reported.
        """
        loop = self._loop
        if loop is None or self._stopping:
            return
        due = self._last + REPORT_EVERY
        if loop.time() >= due:
            self._wake.set()
            due = loop.time() + REPORT_EVERY
        self._beat = loop.call_at(due, self._heartbeat)

    async def _report(self) -> None:
        now = self._clock()
        state = self._state()
        record = member_record(self.member_id, self.name, self.host, state, reported_at=now, started_at=self._started)
        # Logged once a second at least, so that a restart or a failover finds a record at most
        # about that old (and logged at once if the clock stepped back).
        unlogged = self._unlogged if 0 <= now - self._logged_at < REPORT_EVERY else None
        try:
            if unlogged is None:
                await self._records.put(FLEET_COLLECTION, self.member_id, record)
                self._logged_at = now
            else:
                await unlogged(FLEET_COLLECTION, self.member_id, record)
        except Exception as exc:
            # A bug must not end the reports for good either: like an outage, it is logged once
            # (with its traceback), kept as fleet_error for health checks, and the next report tries again.
            failure = exc if isinstance(exc, PolicyStoreError) else _unexpected_failure(exc)
            if self.error is None:
                log.warning(
                    "This process (%s, member %s) cannot report to the fleet of %s: %s Waits for the fleet "
                    "count it lost after 5 s; retrying every second.",
                    self.name,
                    self.member_id,
                    self._url,
                    failure,
                    exc_info=failure is not exc,
                )
            self.error = failure
            return
        if self.error is not None:
            log.warning("This process (%s) reports to the fleet of %s again.", self.name, self._url)
        self.error = None
        self.reported_at = now
        self._reported_version = state.policy.version


def _unexpected_failure(exc: Exception) -> PolicyStoreError:
    """Return the error a report that failed for no known reason is kept as: it names the exception, caused by it."""
    failure = PolicyStoreError(f"The report failed unexpectedly ({type(exc).__name__}: {exc}).")
    failure.__cause__ = exc
    return failure


def member_status(age: float) -> FleetStatus:
    """Return the status of a member last heard ``age`` seconds ago."""
    return FleetStatus.LIVE if age < LOST_AFTER else FleetStatus.LOST


async def sweep(records: RecordStore, now: float) -> None:
    """Delete the records of members not heard for :data:`DROP_AFTER` seconds; errors are left for next time."""
    with contextlib.suppress(PolicyStoreError):
        for key, record in (await records.all(FLEET_COLLECTION)).items():
            member = member_from_record(record, now=now, current_version=0)
            if member is not None and member.lag_seconds >= DROP_AFTER:
                await records.delete(FLEET_COLLECTION, key)


def check_name(name: str | None) -> str:
    """Return the member name a store was given, or the program's name when none was.

    Raises:
        PolicyValidationError: the name is not 1 to 100 printable characters.
    """
    return default_member_name() if name is None else check_member_name(name)
