"""The return of an expiring change, recorded as a version by the store itself, once.

When an expiring change ends, every process reads the values from before it
at once, by its own clock (see :mod:`~policystore.store.expiry`). The store
also records the return as a version of its own (author ``policystore``), so
that history says when the values came back and processes whose clocks are
behind see them come back: the first process that can write and sees the end
commits it with compare-and-set on the version, so of several that see it at
once exactly one does, and the others find the version moved. A write that
finds a change past its end records the return first (:meth:`Returns.first`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

from policystore.backends.base import Backend
from policystore.errors import PolicyValidationError, StoreUnavailableError, VersionConflictError
from policystore.model.changes import diff_policies, unchanged
from policystore.model.expiry import ended, in_force, return_reason
from policystore.model.history import HistoryEntry
from policystore.model.policy import Policy
from policystore.model.validation import build_policy
from policystore.store.local_copy import LocalCopy

__all__ = ["CLOCK_TOLERANCE", "RETURN_AUTHOR", "Returns"]

log = logging.getLogger("policystore")

#: Who the history names as the author of the return of an expiring change.
RETURN_AUTHOR: Final = "policystore"
#: How far ahead of the clocks of the store's other writers this process's clock may seem and
#: still record a return (see ``LocalCopy.clock_ahead``): further ahead, it would end every
#: process's change early, so it leaves the recording to the others.
CLOCK_TOLERANCE: Final = timedelta(seconds=5)


class Returns:
    """Records the returns of a store's expiring changes.

    Args:
        backend: the store's back end.
        copy: the store's read state (it says how this clock compares with the writers').
        load: loads and validates the newest stored version.
        commit: commits a version on the one it was built on and installs it;
            False when another writer got in first.
        clock: returns the current UTC time.
    """

    def __init__(
        self,
        backend: Backend,
        copy: LocalCopy,
        *,
        load: Callable[[Backend], Awaitable[Policy]],
        commit: Callable[[Policy, Policy, HistoryEntry], Awaitable[bool]],
        clock: Callable[[], datetime],
    ) -> None:
        self._backend = backend
        self._copy = copy
        self._load = load
        self._commit = commit
        self._clock = clock

    async def record_returns(self) -> Policy | None:
        """Record the return of the newest version's expiring changes whose end has come, as the store itself.

        Nobody's authority is needed: the return brings back the values in
        force before each change, authorised when the change was written.

        Returns:
            The return version; None when there was nothing to return, another
            process was first, or this clock seems ahead of the other writers'
            (see :data:`CLOCK_TOLERANCE`).

        Raises:
            StoreUnavailableError: the store cannot be reached (reads go stale).
        """
        try:
            stored = await self._load(self._backend)
        except StoreUnavailableError as exc:
            self._copy.mark_unreachable(exc)
            raise
        try:
            return await self.record(stored, self._clock())
        except VersionConflictError:
            return None

    async def first(self, stored: Policy, now: datetime, expected: int | None) -> tuple[bool, int | None]:
        """Before a write, record the return ``stored`` is due.

        Returns:
            Whether the store moved on (the write loads it again), and the
            version the write expects now: the return, which holds the
            expected version as it is in force now, when this process recorded it.
        """
        try:
            recorded = await self.record(stored, now)
        except VersionConflictError:
            return True, expected  # another process was first: load again (an expected version is checked then)
        if recorded is None:
            return False, expected
        return True, recorded.version if expected is not None else None

    async def record(self, stored: Policy, now: datetime) -> Policy | None:
        """Commit ``stored`` with its ended changes returned as the next version; None when refused here.

        Raises:
            VersionConflictError: the store is no longer at ``stored``'s version.
            StoreUnavailableError: the store cannot be reached.
        """
        gone = ended(stored, now)
        if not gone:
            return None
        ahead = self._copy.clock_ahead
        if ahead > CLOCK_TOLERANCE:
            log.warning(
                "Not recording the return of the expiring change of version %d: this process's clock seems %.1f s "
                "ahead of the store's other writers (their last version arrived that late by it); a process whose "
                "clock agrees with theirs records it. Reads here follow this clock all the same.",
                gone[0].version,
                ahead.total_seconds(),
            )
            return None
        reason = return_reason(gone)
        new = dataclasses.replace(
            in_force(stored, now), version=stored.version + 1, updated_at=now, updated_by=RETURN_AUTHOR, reason=reason
        )
        entry = HistoryEntry(new.version, now, RETURN_AUTHOR, reason, diff_policies(stored, new))
        if not await self._commit(stored, new, entry):
            raise VersionConflictError(stored.version, stored.version + 1)
        return new

    async def expected(self, expected: int, stored: Policy, now: datetime) -> int:
        """Check a write's expected version against the newest, ``stored``; return the version to expect.

        The store may have moved from ``expected`` only by the return of an
        expiring change, recorded by another process: that version holds
        exactly what ``expected`` holds in force now (what the write's author
        saw), so the write may be made on it.

        Raises:
            VersionConflictError: the store moved on otherwise.
        """
        if stored.version == expected + 1 and stored.updated_by == RETURN_AUTHOR:
            document = await self._backend.load(expected)
            try:
                earlier = build_policy(document) if document is not None else None
            except PolicyValidationError:
                earlier = None
            if earlier is not None and earlier.overrides and unchanged(in_force(earlier, now), stored):
                return stored.version
        raise VersionConflictError(expected, stored.version)
