"""The keeper of a store's last-known-good copy: read when the store opens, saved as versions are installed.

A store may keep no copy (``lkg_path=None``); then every call here does
nothing. The saves themselves, spaced, coalesced and flushed to disk when they
must be, are :class:`~policystore.store.lkg.CopySaver`'s.
"""

from __future__ import annotations

from collections.abc import Callable

from policystore.model.policy import Policy
from policystore.store.lkg import CopySaver, LastKnownGood

__all__ = ["CopyKeeper", "stops_trading"]


def stops_trading(policy: Policy) -> bool:
    """Whether ``policy`` allows no new trade by itself (the kill switch), so its copy must be durable at once."""
    return policy.emergency.active


class CopyKeeper:
    """Saves the versions a store installs to its last-known-good copy, if it keeps one.

    Args:
        copy: the last-known-good file, or None for a store that keeps none.
        closed: tells whether the store is closing; routine saves asked for
            then are dropped (:meth:`flush` saves the newest one seen).
    """

    def __init__(self, copy: LastKnownGood | None, *, closed: Callable[[], bool]) -> None:
        self._copy = copy
        self._closed = closed
        #: Saves the copy; made on first use.
        self._saver: CopySaver | None = None

    @property
    def keeps(self) -> bool:
        """Whether this store keeps a last-known-good copy."""
        return self._copy is not None

    def read(self) -> Policy | None:
        """Return the saved policy, or None when there is no usable copy (see :meth:`LastKnownGood.read`)."""
        return self._copy.read() if self._copy is not None else None

    def save(self, policy: Policy, *, force: bool = False, urgent: bool = False) -> None:
        """Save ``policy`` soon (see :meth:`CopySaver.save` for ``force`` and ``urgent``)."""
        if self._copy is not None and not self._closed():
            self._copy_saver(self._copy).save(policy, force=force, urgent=urgent)

    async def save_durably(self, policy: Policy) -> None:
        """Save ``policy`` and flush it before returning: a write of this process that stops trading."""
        if self._copy is not None:
            await self._copy_saver(self._copy).save_now(policy)

    async def flush(self) -> None:
        """Save the newest version seen now and wait until it is on disk (used on close)."""
        if self._saver is not None:
            await self._saver.close()

    def _copy_saver(self, copy: LastKnownGood) -> CopySaver:
        if self._saver is None:
            self._saver = CopySaver(copy)
        return self._saver
