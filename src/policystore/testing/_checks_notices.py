"""Conformance checks: listeners hear of commits, and stop hearing at close."""

from __future__ import annotations

from collections.abc import Callable

from policystore.backends.base import Published
from policystore.testing._harness import (
    BackendFactory,
    Listener,
    Session,
    document,
    entry,
    expect_equal,
    published_document,
    within,
)

__all__ = [
    "announces",
    "check_close_ends_listeners",
    "check_commit_is_announced_to_listeners",
    "check_new_listener_is_told_to_check",
]

Hints = list[int | Published]


def announces(version: int, since: int = 0) -> Callable[[Hints], bool]:
    """Return a test of the hints heard since index ``since``: does one tell a listener of ``version``?

    A hint of 0 (check now) does; so does the version itself, as a number or
    published whole. A hint of an older version does not.
    """

    def ready(hints: Hints) -> bool:
        for hint in hints[since:]:
            if isinstance(hint, Published):
                if hint.version == version:
                    return True
            elif hint in {0, version}:
                return True
        return False

    return ready


async def check_new_listener_is_told_to_check(factory: BackendFactory) -> None:
    """A listener's first hint is 0 once it listens: a commit made just before is not missed."""
    async with Session(factory) as session:
        backend = await session.open()
        await backend.commit(document(1), entry(1))
        listener = Listener(backend, factory.timeout)
        try:
            await listener.until(bool, "first hint")
            expect_equal(0, listener.hints[0], "the first hint of a new listener")
        finally:
            await listener.stop()


async def check_commit_is_announced_to_listeners(factory: BackendFactory) -> None:
    """Each commit reaches a listener on another back end: as 0, as its version, or published whole and intact."""
    async with Session(factory) as session:
        writer = await session.open()
        listener = Listener(await session.open(), factory.timeout)
        try:
            await listener.until(bool, "first hint")
            for version in (1, 2, 3):
                heard = len(listener.hints)
                await writer.commit(document(version), entry(version))
                await listener.until(announces(version, heard), f"hint of version {version}")
            for hint in listener.hints:
                if isinstance(hint, Published):
                    what = f"the document published with version {hint.version}"
                    expect_equal(document(hint.version), published_document(hint), what)
                    expect_equal(entry(hint.version), hint.entry, f"the entry published with version {hint.version}")
        finally:
            await listener.stop()


async def check_close_ends_listeners(factory: BackendFactory) -> None:
    """close() ends every notifications() iterator of the back end, in bounded time."""
    async with Session(factory) as session:
        backend = await session.open()
        listener = Listener(backend, factory.timeout)
        try:
            await listener.until(bool, "first hint")
            await within(factory.timeout, backend.close(), "close()")
            await listener.until(lambda _hints: listener.ended, "end of notifications() after close()")
        finally:
            await listener.stop()
