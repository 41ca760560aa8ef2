"""Calling a callback that may be a plain function or a coroutine function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["call_sync_or_async"]


async def call_sync_or_async(callback: Callable[..., object], *args: Any) -> None:
    """Call ``callback(*args)`` and, when it returns an awaitable, wait for it.

    Args:
        callback: a function or a coroutine function.
        *args: its arguments.
    """
    result = callback(*args)
    if inspect.isawaitable(result):
        await result
