"""The store's fleet: ``fleet()`` and ``wait_for_fleet()`` over every member's record.

Each member keeps its record itself (:mod:`policystore.store.fleet_reports`).
:class:`FleetReads` gives the store ``fleet()`` and ``wait_for_fleet()``. A wait
first asks the members to report the version at once, where the back end
carries such requests (:class:`~policystore.backends.base.ReportRequests`;
elsewhere each member reports within
:data:`~policystore.store.fleet_reports.REPORT_GAP` of applying it), then
reads the records at a short interval that grows with the time waited (a
thousandth of a second at first, a tenth after a second), so a fleet that
confirms within milliseconds is seen to within about a millisecond, and a long
wait costs a few reads a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import Final

from policystore.backends.base import Backend, ReportRequests
from policystore.errors import FieldError, PolicyStoreError, PolicyValidationError, StoreUnavailableError
from policystore.model.fleet import (
    DROP_AFTER,
    FLEET_COLLECTION,
    FleetAck,
    FleetMember,
    FleetStatus,
    member_from_record,
)
from policystore.model.numbers import short_repr
from policystore.store.fleet_reports import FleetReporter

__all__ = ["MAX_WAIT", "FleetReads"]

#: The shortest and the longest pause between two reads of a wait.
_POLL_FIRST: Final = 0.001
_POLL_MOST: Final = 0.1
#: The longest wait accepted, in seconds.
MAX_WAIT: Final = 3600.0


class FleetReads:
    """The fleet reads of :class:`~policystore.store.store.PolicyStore`: ``fleet()`` and ``wait_for_fleet()``.

    Args:
        backend: the store's back end.
        reporter: this store's own reports, or None when it is no member (``watch=False``).
        clock: returns the time in seconds since the epoch.
    """

    def __init__(
        self, backend: Backend, reporter: FleetReporter | None, clock: Callable[[], float] = time.time
    ) -> None:
        self._fleet_backend = backend
        self._reporter = reporter
        self._fleet_clock = clock

    @property
    def member_id(self) -> str | None:
        """This store's id in its fleet; None when it follows no changes and so is no member."""
        return None if self._reporter is None else self._reporter.member_id

    @property
    def fleet_error(self) -> PolicyStoreError | None:
        """Why this store's last report to its fleet failed; None while its reports succeed (or it is no member)."""
        return None if self._reporter is None else self._reporter.error

    async def fleet(self) -> list[FleetMember]:
        """Return the members of this store's fleet: every process that follows it, with its version and lag.

        Members are sorted by name, host and pid. A member not heard from for 5
        seconds is ``lost``; one not heard from for 5 minutes is dropped, and its
        record deleted. This store itself, when it is a member, is shown as it
        stands here (with ``error`` set while its reports fail).

        Returns:
            The members.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        current = await self._fleet_backend.current_version()
        members = await self._read_members(current)
        return sorted(members.values(), key=lambda m: (m.name, m.host, m.pid, m.member_id))

    async def wait_for_fleet(self, version: int, *, timeout: float = 10.0) -> FleetAck:  # noqa: ASYNC109 - the contract's name
        """Wait until every live member has applied ``version`` or a newer one, or until ``timeout`` runs out.

        A lost member (not heard from for 5 seconds) holds up no wait, and a
        member that joins during the wait counts as any other. With no live
        member the fleet is complete at once. The members' lag in the answer is
        measured against ``version``.

        Args:
            version: the version to wait for (a write's ``policy.version``).
            timeout: the most seconds to wait (0 reads the fleet once).

        Returns:
            Who has applied it and who has not (see :class:`~policystore.model.fleet.FleetAck`).

        Raises:
            PolicyValidationError: ``version`` is no version number, or ``timeout`` no number of seconds.
            StoreUnavailableError: the store could not be read once before the time ran out.
        """
        _check_wait(version, timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        backend = self._fleet_backend
        if timeout > 0 and isinstance(backend, ReportRequests):
            # Only sooner reports hang on it: without it every member still reports within the gap.
            with contextlib.suppress(StoreUnavailableError, TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await backend.request_reports(version)
        ack: FleetAck | None = None
        failure: StoreUnavailableError | None = None
        while True:
            try:
                ack = _judge(await self._read_members(version), version, loop.time() - started)
            except StoreUnavailableError as exc:
                failure = exc  # a passing outage: try again until the time runs out
            now = loop.time()
            if (ack is not None and ack.complete) or now >= deadline:
                break
            # A short pause at first, when members are confirming; longer as the wait goes on.
            await asyncio.sleep(min(max((now - started) / 10, _POLL_FIRST), _POLL_MOST, deadline - now))
        if ack is None:
            assert failure is not None  # noqa: S101 - the loop read nothing only when every read failed
            raise failure
        return ack

    async def _read_members(self, current: int) -> dict[str, FleetMember]:
        """Read every member's record, dropping (and deleting) those not heard from for DROP_AFTER seconds."""
        records = await self._fleet_backend.records.all(FLEET_COLLECTION)
        now = self._fleet_clock()
        members: dict[str, FleetMember] = {}
        for key, record in records.items():
            member = member_from_record(record, now=now, current_version=current)
            if member is None or member.member_id != key:
                continue  # not a member's record: it holds up nothing
            if member.lag_seconds >= DROP_AFTER:
                with contextlib.suppress(PolicyStoreError):
                    await self._fleet_backend.records.delete(FLEET_COLLECTION, key)
                continue
            members[key] = member
        if self._reporter is not None:
            # This store knows its own state better than its last record says.
            members[self._reporter.member_id] = self._reporter.own_member(now=now, current_version=current)
        return members


def _judge(members: dict[str, FleetMember], version: int, waited: float) -> FleetAck:
    def order(member: FleetMember) -> tuple[str, str, int]:
        return member.name, member.host, member.pid

    live = sorted((m for m in members.values() if m.status is FleetStatus.LIVE), key=order)
    acked = tuple(m for m in live if m.version >= version)
    missing = tuple(m for m in live if m.version < version)
    lost = tuple(sorted((m for m in members.values() if m.status is FleetStatus.LOST), key=order))
    return FleetAck(version, not missing, acked, missing, lost, waited)


def _check_wait(version: object, timeout: object) -> None:
    errors = []
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        errors.append(FieldError("version", f"must be a version number of at least 1 (got {short_repr(version)})"))
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 <= timeout <= MAX_WAIT
    ):
        errors.append(FieldError("timeout", f"must be 0 to {MAX_WAIT:g} seconds (got {short_repr(timeout)})"))
    if errors:
        raise PolicyValidationError(errors)
