"""The conformance suite itself: it passes a back end that keeps the contract and fails each that breaks it.

The broken back ends are the memory back end with one promise broken on
purpose, as a user's back end might break it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from policystore import HistoryEntry, StoreUnavailableError
from policystore.backends.base import Backend, Published
from policystore.backends.memory import MemoryBackend, MemoryRecords
from policystore.testing import CHECKS, BackendFactory, ConformanceError, run_conformance
from policystore.testing.conformance import Check, check_name


class _LastWriterWins(MemoryBackend):
    """Commits whatever it is given over the newest version: no compare-and-set."""

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        shared = self._check()
        version = len(shared.documents) + 1
        shared.documents.append({**document, "version": version})
        shared.entries.append(HistoryEntry(version, entry.at, entry.by, entry.reason, entry.changes))


class _HistoryIgnoresBefore(MemoryBackend):
    """Pages history from the newest entry whatever ``before`` says."""

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        del before
        return await super().history(limit)


class _Deaf(MemoryBackend):
    """Tells a new listener to check, then says nothing of later commits."""

    async def notifications(self) -> AsyncIterator[int | Published]:
        yield 0
        await asyncio.Event().wait()


class _Hangs(MemoryBackend):
    """A store that cannot be reached: it connects lazily, and then its calls hang instead of failing."""

    async def current_version(self) -> int:
        await asyncio.Event().wait()
        return 0


class _NeverEnds(MemoryBackend):
    """Listeners go on after close()."""

    async def notifications(self) -> AsyncIterator[int | Published]:
        yield 0
        while True:
            await asyncio.sleep(3600)
            yield 0


class _AddAlwaysStores(MemoryRecords):
    """Records whose add() writes over a record already there."""

    async def add(self, collection: str, key: str, record: dict[str, Any]) -> bool:
        await self.put(collection, key, record)
        return True


class _NoAddGuard(MemoryBackend):
    """A memory back end with records whose add() is a put."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.records = _AddAlwaysStores(self._shared.records, url=self.url)


def _factory(kind: Callable[[str], Backend], **options: Any) -> Callable[[], BackendFactory]:
    def make() -> BackendFactory:
        name = f"suite-{uuid.uuid4().hex}"
        return BackendFactory(open=lambda: kind(name), timeout=0.5, **options)

    return make


def _checks(*names: str) -> tuple[Check, ...]:
    """The checks of these names, in the suite's order."""
    return tuple(check for check in CHECKS if check_name(check) in names)


def _run(make: Callable[[], BackendFactory], *checks: Check) -> str:
    """Run ``checks`` and return the suite's failure message ('' when they pass)."""
    try:
        asyncio.run(run_conformance(make, checks))
    except ConformanceError as exc:
        return str(exc)
    return ""


class TestSuitePasses:
    """A back end that keeps the contract passes every check."""

    def test_run_conformance_memory_backend_passes_every_check(self) -> None:
        """run_conformance returns the name of each check, in order, for the memory back end."""
        passed = asyncio.run(run_conformance(_factory(MemoryBackend)))

        assert [check_name(check) for check in CHECKS] == passed

    def test_run_conformance_takes_an_async_factory(self) -> None:
        """make_factory may be a coroutine function, for a store that takes awaiting to make."""
        make = _factory(MemoryBackend)

        async def make_async() -> BackendFactory:
            await asyncio.sleep(0)
            return make()

        assert ["empty_store_reads_as_version_zero"] == asyncio.run(run_conformance(make_async, CHECKS[:1]))


class TestSuiteFails:
    """Each broken promise fails the checks that state it, and the failure says what happened."""

    def test_no_compare_and_set_fails_the_version_checks(self) -> None:
        """A back end that overwrites instead of refusing fails the conflict and the race checks."""
        failure = _run(_factory(_LastWriterWins), *CHECKS[:5])

        assert failure.startswith("2 of 5 checks failed")
        assert "off_by_one_commit_conflicts_and_changes_nothing: committing version 1" in failure
        assert "concurrent_committers_one_wins_per_version: how many of 4 committers" in failure

    def test_history_ignoring_before_fails_the_history_check(self) -> None:
        """Pages that start again from the newest entry fail the history check, naming the call."""
        checks = _checks("history_is_newest_first_and_pages_by_before", "entries_between_versions_are_oldest_first")

        failure = _run(_factory(_HistoryIgnoresBefore), *checks)

        assert failure.startswith("1 of 2 checks failed")
        assert "history_is_newest_first_and_pages_by_before: history(2, before=4)" in failure

    def test_listener_that_hears_nothing_fails_the_notification_checks(self) -> None:
        """A listener that never hears of a commit fails, after the factory's timeout, naming the version."""
        checks = _checks(
            "new_listener_is_told_to_check",
            "commit_is_announced_to_listeners",
            "listener_hears_zero_and_later_commits_through_an_outage",
        )

        failure = _run(_factory(_Deaf), *checks)

        assert failure.startswith("2 of 3 checks failed")
        assert "commit_is_announced_to_listeners: no hint of version 1 within 0.5 s" in failure
        assert (
            "listener_hears_zero_and_later_commits_through_an_outage: no hint of a commit made after the outage"
            in failure
        )

    def test_unreachable_store_that_hangs_fails_the_bounded_time_check(self) -> None:
        """Calls that hang rather than raise StoreUnavailableError fail the check, naming the call."""
        make = _factory(MemoryBackend, unreachable=lambda: _Hangs(""))

        failure = _run(make, *_checks("empty_store_reads_as_version_zero", "unreachable_store_fails_in_bounded_time"))

        assert failure.startswith("1 of 2 checks failed")
        assert "current_version() on an unreachable store did not finish within 0.5 s" in failure

    def test_listeners_that_outlive_close_fail_the_close_check(self) -> None:
        """Notifications that go on after close() fail the close check."""
        failure = _run(_factory(_NeverEnds), *_checks("close_ends_listeners"))

        assert "close_ends_listeners: no end of notifications() after close() within 0.5 s" in failure

    def test_add_that_overwrites_fails_the_records_check(self) -> None:
        """Records whose add() does not refuse a taken key fail the add check, naming the call."""
        checks = _checks("records_round_trip", "records_add_only_where_none_is_and_one_racing_add_wins")

        failure = _run(_factory(_NoAddGuard), *checks)

        assert failure.startswith("1 of 2 checks failed")
        assert "add() where a record is returned True" in failure

    def test_any_other_error_of_a_check_is_a_failure_too(self) -> None:
        """A back end that raises something else is reported with the error, among the other checks."""

        async def breaks(_factory: BackendFactory) -> None:
            raise StoreUnavailableError("memory://x", "down")

        failure = _run(_factory(MemoryBackend), CHECKS[0], breaks)

        assert failure.startswith("1 of 2 checks failed: breaks: raised StoreUnavailableError")


class TestBackendFactory:
    """A factory that cannot work is refused when made."""

    def test_stop_without_start_refused(self) -> None:
        """A real outage needs both ends: stop alone is refused, naming both."""
        with pytest.raises(ValueError, match="both stop and start"):
            BackendFactory(open=MemoryBackend, stop=lambda: None)

    def test_timeout_not_positive_refused(self) -> None:
        """A timeout of zero is refused, naming the value."""
        with pytest.raises(ValueError, match="not 0"):
            BackendFactory(open=MemoryBackend, timeout=0)
