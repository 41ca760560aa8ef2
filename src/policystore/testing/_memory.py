"""Stores in this process's memory, opened in one line."""

from __future__ import annotations

import uuid
from typing import Any

from policystore import PolicyStore, SyncPolicyStore

__all__ = ["memory_store", "memory_url", "sync_memory_store"]


def memory_url(name: str | None = None) -> str:
    """Return the ``memory://`` URL of a new store that nothing else shares, or of the store ``name`` names.

    Every store of this process opened with the same name shares one store,
    as several processes share one database.

    Args:
        name: the store's name; None for a new, unique one.

    Returns:
        A URL to pass to :meth:`PolicyStore.open` or to a test server.
    """
    return f"memory://{name if name is not None else f'test-{uuid.uuid4().hex}'}"


def _options(options: dict[str, Any]) -> dict[str, Any]:
    # A test's store leaves no file behind and starts no background task unless asked to.
    return {"lkg_path": None, "watch": False} | options


async def memory_store(name: str | None = None, **options: Any) -> PolicyStore:
    """Open a :class:`~policystore.PolicyStore` in memory, seeded with the built-in policy at version 1.

    It keeps no last-known-good file and does not follow changes made through
    other stores (``lkg_path=None, watch=False``); pass ``watch=True`` to have it
    hear the writes of another store opened on the same ``name``. Close it with
    ``await store.close()`` or ``async with``.

    Args:
        name: share the store with every store opened on this name; None for a store of its own.
        **options: the keyword arguments of :class:`~policystore.PolicyStore`; they win over the defaults above.

    Returns:
        The opened store.
    """
    return await PolicyStore.open(memory_url(name), **_options(options))


def sync_memory_store(name: str | None = None, **options: Any) -> SyncPolicyStore:
    """Open a :class:`~policystore.SyncPolicyStore` in memory, for code without an event loop.

    The same store as :func:`memory_store` gives; close it with ``store.close()``.

    Args:
        name: share the store with every store opened on this name; None for a store of its own.
        **options: the keyword arguments of :class:`~policystore.PolicyStore`; they win over the defaults.

    Returns:
        The opened store.
    """
    return SyncPolicyStore.open(memory_url(name), **_options(options))
