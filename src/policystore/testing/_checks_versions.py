"""Conformance checks: versions, compare-and-set, and committers that race."""

from __future__ import annotations

import asyncio
import random

from policystore import VersionConflictError
from policystore.backends.base import Backend
from policystore.testing._harness import BackendFactory, ConformanceError, Session, document, entry, expect_equal

__all__ = [
    "check_commits_make_contiguous_versions",
    "check_concurrent_committers_one_wins_per_version",
    "check_empty_store_reads_as_version_zero",
    "check_off_by_one_commit_conflicts_and_changes_nothing",
    "check_retrying_committers_leave_no_gap",
]

#: Back ends that race in the concurrency checks, as so many processes.
_WRITERS = 4
#: Versions they race for.
_ROUNDS = 5


async def check_empty_store_reads_as_version_zero(factory: BackendFactory) -> None:
    """A store nothing was committed to is version 0, with no document and no history."""
    async with Session(factory) as session:
        backend = await session.open()
        expect_equal(0, await backend.current_version(), "current_version() of an empty store")
        expect_equal(None, await backend.load(), "load() of an empty store")
        expect_equal(None, await backend.load(1), "load(1) of an empty store")
        expect_equal([], await backend.history(10), "history(10) of an empty store")
        expect_equal([], await backend.entries(0, 0), "entries(0, 0) of an empty store")


async def check_commits_make_contiguous_versions(factory: BackendFactory) -> None:
    """Each commit makes the next version; each version loads as committed, the newest by default."""
    async with Session(factory) as session:
        backend = await session.open()
        for version in (1, 2, 3):
            await backend.commit(document(version), entry(version))
            expect_equal(version, await backend.current_version(), f"current_version() after committing {version}")
            expect_equal(document(version), await backend.load(), f"load() after committing {version}")
        other = await session.open()
        expect_equal(3, await other.current_version(), "current_version() from another back end on the store")
        for version in (1, 2, 3):
            expect_equal(document(version), await other.load(version), f"load({version}) from another back end")
        expect_equal(None, await other.load(4), "load() of a version not yet committed")


async def check_off_by_one_commit_conflicts_and_changes_nothing(factory: BackendFactory) -> None:
    """A commit whose version is not the current one plus one raises VersionConflictError and writes nothing."""
    async with Session(factory) as session:
        backend = await session.open()
        behind = await session.open()  # connected while the store was empty: its writers' view goes stale
        for version in (1, 2):
            await backend.commit(document(version), entry(version))
        for writer, version in ((backend, 1), (backend, 2), (backend, 4), (behind, 1), (behind, 2)):
            try:
                await writer.commit(document(version, marker=9), entry(version, marker=9))
            except VersionConflictError as exc:
                expect_equal(2, exc.current_version, f"the conflict's current_version, committing version {version}")
            else:
                raise ConformanceError(f"committing version {version} over version 2 raised no VersionConflictError")
        expect_equal(2, await backend.current_version(), "current_version() after refused commits")
        expect_equal(document(2), await backend.load(), "load() after refused commits")
        expect_equal([entry(2), entry(1)], await backend.history(10), "history(10) after refused commits")


async def check_concurrent_committers_one_wins_per_version(factory: BackendFactory) -> None:
    """Committers racing for one version: exactly one wins it, every other gets VersionConflictError."""
    async with Session(factory) as session:
        writers = [await session.open() for _ in range(_WRITERS)]
        for version in range(1, _ROUNDS + 1):
            outcomes = await asyncio.gather(
                *(w.commit(document(version, i), entry(version, i)) for i, w in enumerate(writers)),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if outcome is not None and not isinstance(outcome, VersionConflictError):
                    raise ConformanceError(f"a committer racing for version {version} failed with {outcome!r}")
            winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
            expect_equal(1, len(winners), f"how many of {_WRITERS} committers racing for version {version} won")
            winner = winners[0]
            expect_equal(document(version, winner), await writers[-1].load(version), f"the winner's version {version}")
            expect_equal([entry(version, winner)], await writers[-1].history(1), f"the entry of version {version}")
        expect_equal(_ROUNDS, await writers[0].current_version(), "current_version() after the races")


async def check_retrying_committers_leave_no_gap(factory: BackendFactory) -> None:
    """Committers that retry on conflict, as stores do, land every commit once and leave no gap in the versions."""
    commits = 5
    async with Session(factory) as session:
        writers = [await session.open() for _ in range(_WRITERS)]
        landed = await asyncio.gather(*(_commit_until_landed(w, marker, commits) for marker, w in enumerate(writers)))
        total = _WRITERS * commits
        expect_equal(total, await writers[0].current_version(), "current_version() after every commit landed")
        expect_equal(total, len({v for versions in landed for v in versions}), "distinct versions the commits made")
        history = await writers[0].history(total + 10)
        expect_equal(list(range(total, 0, -1)), [e.version for e in history], "the versions history lists")
        for marker, versions in enumerate(landed):
            for version in versions:
                expect_equal(entry(version, marker), history[total - version], f"the entry of version {version}")
                expect_equal(document(version, marker), await writers[0].load(version), f"version {version}")


async def _commit_until_landed(writer: Backend, marker: int, commits: int) -> list[int]:
    """Commit ``commits`` versions through ``writer``, reading the version again after each conflict."""
    landed: list[int] = []
    while len(landed) < commits:
        version = await writer.current_version() + 1
        try:
            await writer.commit(document(version, marker), entry(version, marker))
        except VersionConflictError:
            await asyncio.sleep(random.uniform(0, 0.005))  # noqa: S311 - jitter, not crypto
        else:
            landed.append(version)
    return landed
