"""The reads of a store: its read state, every answer made from it, never any I/O.

The read state (:class:`~policystore.store.sources.ReadState`) is built once per
version and holds the path table ``get`` looks values up in: one dict lookup on
an attribute of the store itself. It is replaced whole, one assignment of the
state and one of its table, so a reader sees the old version or the new, never a
mix; the store's parts replace it only through :meth:`Reads._set_state`.

When an expiring change ends, the state is replaced by the one in force then:
at the moment itself by a timer on the event loop
(:class:`~policystore.store.expiry.EndTimer`), so ``get`` stays a plain lookup;
and the reads that may run while the loop is held up (``snapshot``, ``gate``,
``can_open_new_trades``, ``explain``, ``paths`` and the async reads) compare the
end with the clock themselves, so they never answer with a change past its end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, Final

from policystore.errors import PolicyStoreError, UnknownPathError
from policystore.model.paths import suggest
from policystore.model.policy import Policy
from policystore.store.expiry import EndTimer
from policystore.store.sources import Explanation, ReadState, Source, TradingGate

__all__ = ["MISSING", "Reads"]


class _Missing(Enum):
    """Tells "no default passed" apart from ``default=None``."""

    MISSING = "MISSING"


MISSING: Final = _Missing.MISSING


class Reads:
    """The local reads of :class:`~policystore.store.store.PolicyStore`, and the read state they answer from.

    Args:
        state: the read state to answer from until another is installed.
        clock: returns the current UTC time; expiring changes end by it.
    """

    def __init__(self, state: ReadState, *, clock: Callable[[], datetime]) -> None:
        #: The last error met reaching the store; None once a version is installed.
        self.last_error: PolicyStoreError | None = None
        self._clock = clock
        # Orders replacements of the state: the event loop installs versions while a reader on
        # another thread (the sync facade's caller) may end an expiring change.
        self._swap = threading.Lock()
        self._ends = EndTimer(self._read_state, self._advance, clock=clock)
        self._set_state(state)

    # The store's parts read and replace the read state, and record errors, only through these.
    def _read_state(self) -> ReadState:
        return self._state

    def _set_state(self, state: ReadState) -> None:
        with self._swap:
            # One assignment each: a reader sees the old table or the new, never a mix.
            self._state = state
            self._values = state.values
        self._ends.watch(state)

    def _now(self) -> ReadState:
        """The read state, with every expiring change whose end has come returned (see :meth:`_advance`)."""
        state = self._state
        if state.ends_at is not None and self._clock() >= state.ends_at:
            return self._advance(state)
        return state

    def _advance(self, state: ReadState) -> ReadState:
        """Replace ``state``, if it is still the store's, by the state in force now; return the store's state."""
        with self._swap:
            current = self._state
            if current is not state:
                return current  # replaced meanwhile by a version or an end
            new = state.at(self._clock())
            if new is state:
                return state
            self._state = new
            self._values = new.values
        self._ends.watch(new)
        return new

    def _set_error(self, error: PolicyStoreError | None) -> None:
        self.last_error = error

    def get(self, path: str, default: Any = MISSING) -> Any:
        """Return the value at ``path`` from this process's snapshot; never does I/O.

        One dict lookup: an expiring change's end replaces the table at the
        moment it comes, by a timer on the store's event loop (a loop held up
        past the end delays it; ``snapshot()`` and ``gate()`` check the clock).

        Raises:
            UnknownPathError: no such path and no default was given.
        """
        try:
            return self._values[path]
        except KeyError:
            if default is MISSING:
                raise UnknownPathError(path, suggest(path, list(self._values))) from None
            return default

    def snapshot(self) -> Policy:
        """Return the whole policy in force as this process sees it now (immutable).

        An expiring change whose end has come by this process's clock is
        returned already: the policy holds the values from before it.
        """
        return self._now().policy

    def explain(self, path: str) -> Explanation:
        """Tell which source answers ``path``, with the value, version and staleness.

        Until the read state changes (a version installed, the store lost or
        found again, an expiring change ended), a path's explanation is made
        once and the same object returned again.

        Raises:
            UnknownPathError: no such path.
        """
        state = self._now()
        if path not in state.values:
            raise UnknownPathError(path, suggest(path, list(state.values)))
        return state.explain(path)

    def paths(self) -> list[str]:
        """Return every readable path, sorted."""
        return sorted(self._now().values)

    @property
    def stale(self) -> bool:
        """True while answers do not come from the live store."""
        return self._state.stale

    @property
    def source(self) -> Source:
        """The layer of the fallback chain that answers now."""
        return self._state.source

    def gate(self) -> TradingGate:
        """Return the policy this process holds and whether it allows new risk, from one read state.

        The one rule for new risk; ``can_open_new_trades()`` is its verdict. A
        caller that decides by the policy (an executor) takes both from the same
        gate, so they cannot disagree: no new trade while the kill switch is on;
        while the store holds a newer version that was refused as invalid (its
        kill switch cannot be known); after the store went back to an older
        version (a restore, a replaced file, or a failover that lost writes),
        until the next write confirms the policy; and while stale, as the
        store's :class:`StaleTradingRule` says. ``refusal`` names which one.
        An expiring change whose end has come is returned first, so the
        verdict and the policy are those in force now. Never does I/O.
        """
        return self._now().gate

    async def can_open_new_trades(self) -> bool:
        """Return whether a new trade may be opened now: ``gate().allowed`` (see :meth:`gate`)."""
        return self._now().gate.allowed
