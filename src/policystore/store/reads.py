"""The reads of a store: its read state, every answer made from it, never any I/O.

The read state (:class:`~policystore.store.sources.ReadState`) is built once per
version and holds the path table ``get`` looks values up in: one dict lookup on
an attribute of the store itself. It is replaced whole, one assignment of the
state and one of its table, so a reader sees the old version or the new, never a
mix; the store's parts replace it only through :meth:`Reads._set_state`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Final

from policystore.errors import PolicyStoreError, UnknownPathError
from policystore.model.paths import suggest
from policystore.model.policy import Policy
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
    """

    def __init__(self, state: ReadState) -> None:
        #: The last error met reaching the store; None once a version is installed.
        self.last_error: PolicyStoreError | None = None
        self._set_state(state)

    # The store's parts read and replace the read state, and record errors, only through these.
    def _read_state(self) -> ReadState:
        return self._state

    def _set_state(self, state: ReadState) -> None:
        # One assignment each: a reader sees the old table or the new, never a mix.
        self._state = state
        self._values = state.values

    def _set_error(self, error: PolicyStoreError | None) -> None:
        self.last_error = error

    def get(self, path: str, default: Any = MISSING) -> Any:
        """Return the value at ``path`` from this process's snapshot; never does I/O.

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
        """Return the whole policy as this process sees it now (immutable)."""
        return self._state.policy

    def explain(self, path: str) -> Explanation:
        """Tell which source answers ``path``, with the value, version and staleness.

        Raises:
            UnknownPathError: no such path.
        """
        state = self._state
        if path not in state.values:
            raise UnknownPathError(path, suggest(path, list(state.values)))
        return state.explain(path)

    def paths(self) -> list[str]:
        """Return every readable path, sorted."""
        return sorted(self._values)

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
        Never does I/O.
        """
        return self._state.gate

    async def can_open_new_trades(self) -> bool:
        """Return whether a new trade may be opened now: ``gate().allowed`` (see :meth:`gate`)."""
        return self._state.gate.allowed
