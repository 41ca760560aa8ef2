"""Bounding a call to PostgreSQL in time, however the driver answers a cancellation.

psycopg answers a cancelled query by asking the server to cancel it and waiting
(up to seconds) for it to stop, so a call cancelled at its timeout would outlast
the timeout, against a server that has stopped answering most of all. A call is
run as a task of its own instead: past the timeout it is abandoned, cancelled and
left to end by itself; its connection goes back to the pool (or is closed) then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

from psycopg import AsyncConnection

__all__ = ["bounded"]

T = TypeVar("T")
#: Calls abandoned and still ending, and connections being closed after them: a task
#: needs a reference until it is done.
_ENDING: Final[set[asyncio.Task[Any]]] = set()


async def bounded(work: Coroutine[Any, Any, T], within: float) -> T:
    """Return what ``work`` returns within ``within`` seconds; past it, abandon it and raise TimeoutError.

    Raises:
        TimeoutError: ``work`` did not end in time.
        BaseException: whatever ``work`` raised.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=within)
    except BaseException:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise TimeoutError
    return task.result()


def _abandon(task: asyncio.Task[Any]) -> None:
    task.cancel()
    _ENDING.add(task)
    task.add_done_callback(_ended)


def _ended(task: asyncio.Task[Any]) -> None:
    """Retrieve an abandoned call's outcome, and close a connection it opened too late to be used."""
    _ENDING.discard(task)
    if task.cancelled():
        return
    result = task.exception() or task.result()
    if isinstance(result, AsyncConnection):
        closing = task.get_loop().create_task(result.close())
        _ENDING.add(closing)
        closing.add_done_callback(_ENDING.discard)
