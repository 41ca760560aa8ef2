"""Waiting for something another task or process does, without timing it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


async def eventually(predicate: Callable[[], bool], deadline: float = 10.0) -> None:
    """Wait until ``predicate()`` holds; fail only after a generous deadline (not a timing test)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        if loop.time() > end:
            pytest.fail("the condition did not hold before the deadline")
        await asyncio.sleep(0.01)
