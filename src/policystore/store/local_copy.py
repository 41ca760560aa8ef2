"""How a store's read state changes: a version installed, the store out of reach, a version refused.

The read state is the store's own attribute, so that ``PolicyStore.get`` stays
one lookup in its path table. This part reads it, and replaces it whole,
through the functions the store gives it: a reader sees the old state or the
new, never a mix. Installing a version also saves it as the last-known-good
copy and queues its events; both are called with the store's lock held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from policystore.errors import PolicyStoreError, StoreUnavailableError
from policystore.model.events import EventType, PolicyChanged, events_for
from policystore.model.expiry import ended, in_force
from policystore.model.history import HistoryEntry
from policystore.model.policy import Policy, default_policy
from policystore.store.env import overlay_environment
from policystore.store.keeper import CopyKeeper, tightens_trading
from policystore.store.outbox import Outbox
from policystore.store.sources import ReadState, Source, StaleTradingRule

__all__ = ["LocalCopy"]

log = logging.getLogger("policystore")


class LocalCopy:
    """The changes of a store's read state, each made in one replacement of the state.

    A newer version refused as invalid, and a store that went back, are facts of
    the read state (``ReadState.refused_version`` and ``rewound_to``), so the
    trading gate and the policy it judges are swapped in together.

    Args:
        state: returns the store's read state now.
        set_state: replaces the store's read state: one assignment of the state,
            one of its path table.
        set_error: records the last error met reaching the store (None once a
            version is installed): the store's ``last_error``.
        keeper: the store's last-known-good copy.
        outbox: where the events of installed versions wait for delivery.
        rule: the stale trading rule every read state carries.
        clock: returns the current UTC time.
        applied: called, without waiting on anything, after a version is
            installed or the state goes stale: the fleet reporter's cue.
    """

    def __init__(
        self,
        state: Callable[[], ReadState],
        set_state: Callable[[ReadState], None],
        set_error: Callable[[PolicyStoreError | None], None],
        *,
        keeper: CopyKeeper,
        outbox: Outbox,
        rule: StaleTradingRule,
        clock: Callable[[], datetime],
        applied: Callable[[], None] = lambda: None,
    ) -> None:
        self._state = state
        self._set_state = set_state
        self._set_error = set_error
        self._keeper = keeper
        self._outbox = outbox
        self._rule = rule
        self._clock = clock
        self._applied = applied
        #: How far this process's clock seemed ahead of the writer of the last version another
        #: process published, as it arrived (see :meth:`observe_arrival`); zero when not ahead.
        self.clock_ahead = timedelta(0)

    @property
    def state(self) -> ReadState:
        """The store's read state now."""
        return self._state()

    def in_force(self, policy: Policy) -> Policy:
        """Return ``policy`` as it is in force now, by this store's clock (see :mod:`policystore.model.expiry`)."""
        return in_force(policy, self._clock())

    def observe_arrival(self, policy: Policy) -> None:
        """Compare this process's clock with the writer's, as a version another process wrote arrives.

        A change notice arrives within milliseconds of its commit, so by a clock
        that agrees with the writer's the version was written just now; a
        version that seems to have been written seconds ago says this clock is
        ahead by about that much. Only notices count: a version read back after
        an outage arrived late for another reason.
        """
        self.clock_ahead = max(timedelta(0), self._clock() - policy.updated_at)

    def fallback(self, environ: Mapping[str, str]) -> ReadState:
        """Return the state to answer from before the store is read: the last-known-good copy, else ``environ``."""
        saved = self._keeper.read()
        if saved is not None:
            return ReadState.last_known_good(saved, rule=self._rule).at(self._clock())
        return ReadState.fallback(overlay_environment(default_policy(), environ), rule=self._rule)

    def install(
        self,
        policy: Policy,
        entries: list[HistoryEntry],
        previous: int,
        values: dict[str, Any] | None = None,
        *,
        rewound_to: int | None = None,
    ) -> None:
        """Make ``policy`` the read state and queue its events; called with the lock held.

        ``values`` is the policy's path table when the caller built it already;
        ``rewound_to`` marks a store that went back (see
        :class:`~policystore.store.follower.Follower`). A refused version stays
        in force until one as new is installed, a rewind until a later version is.
        The state holds ``policy`` as it is in force now: an expiring change
        whose end has come by this store's clock is returned at once.
        """
        self._set_error(None)
        now = self._clock()
        gone = ended(policy, now)
        if gone:
            policy, values = in_force(policy, now), None
        before = self._state()
        refused = before.refused_version if policy.version < before.refused_version else -1
        if rewound_to is None:
            rewound_to = before.rewound_to if policy.version <= before.rewound_to else -1
        facts = {"rule": self._rule, "refused_version": refused, "rewound_to": rewound_to}
        self._set_state(ReadState.live(policy, values, ended=gone, **facts))
        self._applied()
        if self._keeper.keeps and (before.source is not Source.STORE or before.policy.version != policy.version):
            # A kill switch turned on, or a stricter state, is saved at once: a crash must not
            # leave a copy that allows what this version stops.
            urgent = tightens_trading(before.policy, policy)
            self._keeper.save(policy, urgent=urgent)
        if not self._outbox.listening:
            return  # events are made only for someone to receive them: most processes only read
        for entry in entries:
            self._outbox.add(events_for(entry, previous))
            previous = entry.version

    def mark_unreachable(self, exc: StoreUnavailableError) -> None:
        """Record that the store cannot be reached; a live state goes stale, answering from its policy."""
        self._set_error(exc)
        state = self._state()
        if state.source is Source.STORE:
            log.warning("%s Answering from the last-known-good copy (version %d).", exc, state.policy.version)
            # A refused version or a rewind still holds trading shut while stale.
            facts = {"refused_version": state.refused_version, "rewound_to": state.rewound_to, "ended": state.ended}
            self._set_state(ReadState.last_known_good(state.policy, rule=self._rule, **facts))
            self._applied()

    def refuse(self, exc: StoreUnavailableError, version: int) -> None:
        """Hold ``version`` as refused, and queue one ``policy.rejected`` event per refused version.

        Only a version refused as invalid counts (``exc`` caused by a
        ``ValueError``), not a store out of reach; operators hear of it once.
        """
        if not isinstance(exc.__cause__, ValueError) or version == self._state().refused_version:
            return
        self._set_state(self._state().with_facts(refused_version=version))
        log.error("Refused version %d from the store: %s", version, exc)
        rejected = PolicyChanged(
            type=EventType.REJECTED,
            version=version,
            previous_version=self._state().policy.version,
            at=self._clock(),
            by="policystore",
            reason=str(exc),
            changes=(),
        )
        self._outbox.add((rejected,))
