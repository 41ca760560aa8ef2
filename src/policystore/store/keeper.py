"""The keeper of a store's last-known-good copy: read when the store opens, saved as versions are installed.

A store may keep no copy (``lkg_path=None``); then every call here does
nothing. The saves themselves, spaced, coalesced and flushed to disk when they
must be, are :class:`~policystore.store.lkg.CopySaver`'s.

Which versions must reach the disk before a write returns is decided here:
one that turns the kill switch on or makes a trading state stricter at any
scope (:func:`tightens_trading`). A process killed the moment such a write is
acknowledged, with the store unreadable after, must not leave a copy that
allows what the write stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from policystore.model.controls import instrument_rules
from policystore.model.policy import Policy
from policystore.model.trading import DEFAULT_INSTRUMENT, InstrumentLimits, TradingState
from policystore.store.lkg import CopySaver, LastKnownGood

__all__ = ["CopyKeeper", "restricts_trading", "stops_trading", "tightens_trading"]

_ACTIVE: Final = TradingState.ACTIVE
_NO_LIMITS: Final = InstrumentLimits()


def stops_trading(policy: Policy) -> bool:
    """Whether ``policy`` allows no new trade by itself (the kill switch), so its copy must be durable at once."""
    return policy.emergency.active


def restricts_trading(policy: Policy) -> bool:
    """Whether ``policy`` holds trading back anywhere: the kill switch on, or a state not ``active`` at any scope.

    A write that changes nothing on such a policy found it already restricted;
    the copy must hold it on disk before that write returns, as if the write
    had made the restriction itself.
    """
    return (
        policy.emergency.active
        or policy.trading.state is not _ACTIVE
        or any(settings.state is not _ACTIVE for settings in policy.strategies.values())
        or any(entry.state not in {None, _ACTIVE} for entry in policy.instruments.values())
    )


def _stricter(old: TradingState | None, new: TradingState | None) -> bool:
    """Whether a state went stricter (None, a state not set, counts as ``active``)."""
    return (0 if new is None else new.rank) > (0 if old is None else old.rank)


def tightens_trading(old: Policy, new: Policy) -> bool:
    """Whether ``new`` holds trading back further than ``old``: its copy must be on disk before the write returns.

    True when the kill switch turns on, or any trading state goes stricter:
    firm-wide (``trading.state``), a strategy's (a strategy added with a state
    other than ``active`` counts: unknown before, it had none), or an
    instrument's, as stored or in force (``instruments.default.state`` made
    stricter tightens every instrument that falls back to it).

    Args:
        old: the version the write was based on (or the one held before).
        new: the version written (or installed).

    Returns:
        True when some order allowed under ``old`` may be refused under ``new`` for its state.
    """
    if (
        new.emergency is old.emergency
        and new.trading is old.trading
        and new.strategies is old.strategies
        and new.instruments is old.instruments
    ):
        # The very sections every state is read from: a version installed from its notice that
        # switches the mode or changes a limit shares them with the one held. Nothing to compare.
        return False
    if (new.emergency.active and not old.emergency.active) or _stricter(old.trading.state, new.trading.state):
        return True
    for name, settings in new.strategies.items():
        before = old.strategies.get(name)
        if _stricter(None if before is None else before.state, settings.state):
            return True
    for key in {DEFAULT_INSTRUMENT} | old.instruments.keys() | new.instruments.keys():
        if _stricter(old.instruments.get(key, _NO_LIMITS).state, new.instruments.get(key, _NO_LIMITS).state):
            return True
        if _stricter(instrument_rules(old, key).state.state, instrument_rules(new, key).state.state):
            return True
    return False


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
        """Save ``policy`` and flush it before returning: a write of this process that holds trading back."""
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
