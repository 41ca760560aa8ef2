"""Conformance checks: a store that cannot be reached fails fast, and a store over it rides the outage out."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from policystore import PolicyStore, Source, StoreUnavailableError
from policystore.backends.base import Backend
from policystore.testing._checks_notices import announces
from policystore.testing._harness import (
    BackendFactory,
    ConformanceError,
    Listener,
    Outage,
    Session,
    document,
    entry,
    expect,
    expect_equal,
    within,
)
from policystore.testing._switch import SwitchableBackend

__all__ = [
    "check_listener_hears_zero_and_later_commits_through_an_outage",
    "check_open_store_reads_stale_through_outage_then_reconverges",
    "check_store_opened_during_outage_reads_last_known_good_then_goes_live",
    "check_unreachable_store_fails_in_bounded_time",
]

#: The value the outage check writes, and the one written after the store returns.
_BEFORE, _AFTER = 21, 22
_PATH = "modes.NORMAL.max_positions"


async def check_unreachable_store_fails_in_bounded_time(factory: BackendFactory) -> None:
    """Every call to a store that cannot be reached raises StoreUnavailableError within the timeout."""
    async with Session(factory) as session:
        if factory.unreachable is not None:
            backend = session.adopt(factory.unreachable())
        else:
            backend = session.adopt(SwitchableBackend(factory.open(), available=False))
        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("connect()", backend.connect),
            ("current_version()", backend.current_version),
            ("load()", backend.load),
            ("load(1)", lambda: backend.load(1)),
            ("commit()", lambda: backend.commit(document(1), entry(1))),
            ("history(10)", lambda: backend.history(10)),
            ("entries(0, 1)", lambda: backend.entries(0, 1)),
            ("records.get()", lambda: backend.records.get("conformance", "k")),
            ("records.put()", lambda: backend.records.put("conformance", "k", {})),
        ]
        for name, call in calls:
            try:
                await within(factory.timeout, call(), f"{name} on an unreachable store")
            except StoreUnavailableError:
                continue
            if name != "connect()":  # a back end may connect lazily, and fail at the first call instead
                raise ConformanceError(f"{name} on an unreachable store raised no StoreUnavailableError")
        await within(factory.timeout, backend.close(), "close() of a back end whose store cannot be reached")


async def check_open_store_reads_stale_through_outage_then_reconverges(factory: BackendFactory) -> None:
    """A PolicyStore open through an outage keeps its values, marked stale, and goes live after it."""
    async with Session(factory) as session, _folder() as folder:
        outage = Outage(session)
        writer = await _open(factory, outage.backend(), None)
        keeper = await _open(factory, outage.backend(), folder / "keeper.json")
        try:
            await keeper.update({_PATH: _BEFORE}, reason="before the outage", updated_by="conformance")
            await outage.begin()
            try:
                await within(factory.timeout, keeper.refresh(), "refresh() during an outage")
            except StoreUnavailableError:
                pass
            else:
                raise ConformanceError("refresh() during an outage raised no StoreUnavailableError")
            _expect_stale(keeper, "a store open through the outage")
            await outage.end()
            await _eventually(factory, lambda: not keeper.stale, "the store live again after the outage")
            await writer.update({_PATH: _AFTER}, reason="after the outage", updated_by="conformance")
            await _eventually(factory, lambda: keeper.get(_PATH) == _AFTER, "a version written after it heard")
            expect_equal((Source.STORE, 3), (keeper.source, keeper.get("version")), "source and version after it")
        finally:
            await keeper.close()
            await writer.close()


async def check_store_opened_during_outage_reads_last_known_good_then_goes_live(factory: BackendFactory) -> None:
    """A PolicyStore opened during an outage answers from the last-known-good file, stale, and goes live after it."""
    async with Session(factory) as session, _folder() as folder:
        outage = Outage(session)
        saved = folder / "lkg.json"
        first = await _open(factory, outage.backend(), saved)
        await first.update({_PATH: _BEFORE}, reason="before the outage", updated_by="conformance")
        await first.close()  # closing saves the newest version to the last-known-good file
        writer = await _open(factory, outage.backend(), None)
        late: PolicyStore | None = None
        try:
            await outage.begin()
            late = await _open(factory, outage.backend(), saved)
            _expect_stale(late, "a store opened during the outage")
            await outage.end()
            opened = late
            await _eventually(factory, lambda: not opened.stale, "the store live after the outage")
            await writer.update({_PATH: _AFTER}, reason="after the outage", updated_by="conformance")
            await _eventually(factory, lambda: opened.get(_PATH) == _AFTER, "a version written after it heard")
            expect_equal((Source.STORE, 3), (late.source, late.get("version")), "source and version after it")
        finally:
            if late is not None:
                await late.close()
            await writer.close()


async def check_listener_hears_zero_and_later_commits_through_an_outage(factory: BackendFactory) -> None:
    """Through an outage a listener hears 0 (check now), and after it hears of new commits again.

    Whether the 0 comes as the connection is lost or once it is back (or
    both) is the back end's choice; a commit made as soon as the store is back
    must not be missed, whether the listener had reconnected by then or not.
    """
    async with Session(factory) as session:
        outage = Outage(session)
        backend = outage.backend()
        await within(factory.timeout, backend.connect(), "connect()")
        listener = Listener(backend, factory.timeout)
        try:
            await listener.until(bool, "first hint")
            before = len(listener.hints)
            await outage.begin()
            await outage.end()
            await listener.until(lambda hints: 0 in hints[before:], "0 through the outage")
            writer = outage.backend()
            await within(factory.timeout, writer.connect(), "connect() after the outage")
            heard = len(listener.hints)
            await writer.commit(document(1), entry(1))
            await listener.until(announces(1, heard), "hint of a commit made after the outage")
        finally:
            await listener.stop()


def _expect_stale(store: PolicyStore, what: str) -> None:
    explanation = store.explain(_PATH)
    expect_equal(
        (True, Source.LAST_KNOWN_GOOD, 2, _BEFORE),
        (store.stale, explanation.source, explanation.version, explanation.value),
        f"{what}: stale, source, version and value",
    )


async def _open(factory: BackendFactory, backend: Backend, saved: Path | None) -> PolicyStore:
    store = PolicyStore(backend, lkg_path=saved, environ={})
    try:
        await within(factory.timeout * 2, store.initialize(), f"opening a PolicyStore over {backend.url}")
    except BaseException:
        await store.close()
        raise
    return store


async def _eventually(factory: BackendFactory, ready: Callable[[], bool], what: str) -> None:
    # A store retries about every half second while stale: allow it the timeout and a few retries more.
    deadline = asyncio.get_running_loop().time() + factory.timeout + 2.0
    while not ready():
        expect(asyncio.get_running_loop().time() < deadline, f"not {what} within {factory.timeout + 2.0:g} s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _folder() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="policystore-conformance-") as name:
        yield Path(name)
