"""Connecting the back end, again if the first attempt failed.

A store opened while its back end cannot be reached opens all the same and
answers from the fallback chain. Its back end was then never connected, so
the next refresh (the safety net's, while stale, every half second) and the
next write connect it first: the store goes live once the back end can be
reached, whichever back end it is.
"""

from __future__ import annotations

from policystore.backends.base import Backend

__all__ = ["Connector"]


class Connector:
    """Connects one back end once, and retries while it has not connected.

    Args:
        backend: the back end to connect.
        create: create what the store needs (see :meth:`Backend.connect`).
    """

    def __init__(self, backend: Backend, *, create: bool) -> None:
        self._backend = backend
        self._create = create
        self._connected = False

    async def connect(self) -> None:
        """Connect the back end now.

        Raises:
            StoreUnavailableError: it cannot be reached; the next :meth:`ensure` tries again.
        """
        # A back end of the user's own need not know ``create``: it is passed only when False.
        await (self._backend.connect() if self._create else self._backend.connect(create=False))
        self._connected = True

    async def ensure(self) -> None:
        """Connect the back end unless it has connected already.

        Raises:
            StoreUnavailableError: it cannot be reached.
        """
        if not self._connected:
            await self.connect()
