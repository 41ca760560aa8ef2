"""Conformance checks: the history of versions, newest first by page, oldest first by range."""

from __future__ import annotations

from policystore.testing._harness import BackendFactory, Session, document, entry, expect_equal

__all__ = ["check_entries_between_versions_are_oldest_first", "check_history_is_newest_first_and_pages_by_before"]

_VERSIONS = 5


async def check_history_is_newest_first_and_pages_by_before(factory: BackendFactory) -> None:
    """history(limit, before) returns the newest entries older than ``before``, newest first, as committed."""
    async with Session(factory) as session:
        backend = await session.open()
        entries = [entry(version) for version in range(1, _VERSIONS + 1)]
        for item in entries:
            await backend.commit(document(item.version), item)
        newest_first = entries[::-1]
        reader = await session.open()
        expect_equal(newest_first, await reader.history(10), "history(10): every entry, newest first, as committed")
        expect_equal(newest_first[:2], await reader.history(2), "history(2)")
        expect_equal(newest_first[:3], await reader.history(3, before=None), "history(3, before=None)")
        expect_equal([entries[2], entries[1]], await reader.history(2, before=4), "history(2, before=4)")
        expect_equal([entries[0]], await reader.history(10, before=2), "history(10, before=2)")
        expect_equal([], await reader.history(10, before=1), "history(10, before=1)")
        expect_equal(newest_first[:3], await reader.history(3, before=99), "history(3, before=99)")
        pages: list[int] = []
        before: int | None = None
        while page := await reader.history(2, before=before):
            pages += [item.version for item in page]
            before = page[-1].version
        expect_equal(list(range(_VERSIONS, 0, -1)), pages, "the versions of history read in pages of 2 by before")


async def check_entries_between_versions_are_oldest_first(factory: BackendFactory) -> None:
    """entries(after, upto) returns the entries with after < version <= upto, oldest first, as committed.

    Only versions that exist are asked for, as the store does: a back end may
    take an entry missing from that range for damage and raise.
    """
    async with Session(factory) as session:
        backend = await session.open()
        entries = [entry(version, marker=1) for version in range(1, _VERSIONS + 1)]
        for item in entries:
            await backend.commit(document(item.version, marker=1), item)
        reader = await session.open()
        expect_equal(entries, await reader.entries(0, _VERSIONS), f"entries(0, {_VERSIONS})")
        expect_equal(entries[1:3], await reader.entries(1, 3), "entries(1, 3)")
        expect_equal([entries[3]], await reader.entries(3, 4), "entries(3, 4)")
        expect_equal([], await reader.entries(3, 3), "entries(3, 3)")
        expect_equal([entries[4]], await reader.entries(4, _VERSIONS), f"entries(4, {_VERSIONS})")
