"""How a store's local copy follows the back end: install versions, replay events, go stale and back.

This is the part of :class:`~policystore.store.store.PolicyStore` that keeps the
read state current. Reads never wait on it: a new version is installed by
replacing the read state whole, in one assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from policystore.backends.base import Backend
from policystore.errors import (
    FieldError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
    VersionConflictError,
)
from policystore.model.changes import diff_policies
from policystore.model.events import EventType, PolicyChanged, events_for
from policystore.model.history import HistoryEntry
from policystore.model.policy import Policy, default_policy
from policystore.model.roles import Actor, authorize_change
from policystore.model.validation import build_policy
from policystore.store.bus import EventBus, ExternalEventBus
from policystore.store.env import overlay_environment
from policystore.store.lkg import LastKnownGood
from policystore.store.sources import ReadState, Source

__all__ = ["Replica"]

log = logging.getLogger("policystore")

#: How often a write re-applies its change after losing a compare-and-set race.
_MAX_WRITE_ATTEMPTS = 50


class Replica:
    """The local copy of the policy and the machinery that keeps it current.

    Subclassed by PolicyStore, which sets these attributes in its constructor.
    """

    _backend: Backend
    _lkg: LastKnownGood | None
    _environ: Mapping[str, str]
    _bus: EventBus
    _external: ExternalEventBus | None
    _lock: asyncio.Lock
    _state: ReadState
    _values: dict[str, Any]
    _closed: bool
    _refresh_interval: float
    _actor: Actor
    _clock: Callable[[], datetime]
    last_error: PolicyStoreError | None
    _rejected_version: int = -1

    async def refresh(self) -> Policy:
        """Compare versions with the store now and load a newer one if there is one.

        Returns:
            The policy this process now holds.

        Raises:
            StoreUnavailableError: the store cannot be reached (reads go stale).
        """
        try:
            await self._catch_up()
        except StoreUnavailableError as exc:
            self._mark_unreachable(exc)
            raise
        return self._state.policy

    def _set_state(self, state: ReadState) -> None:
        # One assignment each: a reader sees the old table or the new, never a mix.
        self._state = state
        self._values = state.values

    def _fallback_state(self) -> ReadState:
        saved = self._lkg.read() if self._lkg is not None else None
        if saved is not None:
            return ReadState.last_known_good(saved)
        return ReadState.fallback(overlay_environment(default_policy(), self._environ))

    def _mark_unreachable(self, exc: StoreUnavailableError) -> None:
        self.last_error = exc
        state = self._state
        if state.source is Source.STORE:
            log.warning("%s Answering from the last-known-good copy (version %d).", exc, state.policy.version)
            self._set_state(ReadState.last_known_good(state.policy))

    async def _seed(self) -> None:
        now = self._clock()
        first = dataclasses.replace(default_policy(), version=1, updated_at=now, updated_by="policystore",
                                    reason="initial policy")
        entry = HistoryEntry(1, now, "policystore", "initial policy", ())
        with contextlib.suppress(VersionConflictError):  # another process seeded it first
            await self._backend.commit(first.document(), entry)

    async def _load_latest(self) -> Policy:
        document = await self._backend.load()
        if document is None:
            raise StoreUnavailableError(self._backend.url, "the store holds no policy; run 'policystore init'")
        try:
            return build_policy(document)
        except PolicyValidationError as exc:
            reason = f"the stored policy is invalid and was refused ({exc})"
            raise StoreUnavailableError(self._backend.url, reason) from exc

    async def _catch_up(self) -> None:
        """Install the store's newest version if it is newer than ours, with its events."""
        async with self._lock:
            state = self._state
            live = state.source is Source.STORE
            current = await self._backend.current_version()
            if live and current <= state.policy.version:
                return
            try:
                policy = await self._load_latest()
            except StoreUnavailableError as exc:
                await self._announce_rejection(exc, current)
                raise
            if live and policy.version <= state.policy.version:
                return
            # Replay the versions we missed as events, in order. With nothing known
            # before (environment and defaults answered) there is nothing to replay.
            known = state.source in {Source.STORE, Source.LAST_KNOWN_GOOD}
            after = state.policy.version if known else policy.version
            entries = await self._backend.entries(after, policy.version) if after < policy.version else []
            await self._install(policy, entries, after)

    async def _announce_rejection(self, exc: StoreUnavailableError, version: int) -> None:
        """Publish one ``policy.rejected`` event per refused version, so operators hear of it."""
        if not isinstance(exc.__cause__, ValueError) or version == self._rejected_version:
            return
        self._rejected_version = version
        log.error("Refused version %d from the store: %s", version, exc)
        await self._bus.publish(PolicyChanged(
            type=EventType.REJECTED, version=version, previous_version=self._state.policy.version,
            at=self._clock(), by="policystore", reason=str(exc), changes=(),
        ))

    async def _install(self, policy: Policy, entries: list[HistoryEntry], previous: int) -> None:
        self.last_error = None
        before = self._state
        self._set_state(ReadState.live(policy))
        if self._lkg is not None and (before.source is not Source.STORE or before.policy.version != policy.version):
            try:
                await asyncio.to_thread(self._lkg.write, policy)
            except OSError as exc:
                log.error("Could not save the last-known-good copy to %s: %s", self._lkg.path, exc)  # noqa: TRY400
        for entry in entries:
            for event in events_for(entry, previous):
                await self._bus.publish(event)
            previous = entry.version

    async def _write(  # noqa: PLR0917 - internal; every write passes the same six facts in this order
        self,
        change: Callable[[Policy], Policy],
        action: str,
        updated_by: str | None,
        reason: str,
        expected_version: int | None,
        actor: Actor | None,
    ) -> Policy:
        who = actor or self._actor
        author = who.name if actor is not None or not updated_by else updated_by
        if not isinstance(reason, str) or not reason.strip():
            raise PolicyValidationError([FieldError("reason", "is required: say why the policy changes")])
        if not author.strip():
            raise PolicyValidationError([FieldError("updated_by", "must name who makes the change")])
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            try:
                base = await self._load_latest()
            except StoreUnavailableError as exc:
                self._mark_unreachable(exc)
                raise
            if expected_version is not None and base.version != expected_version:
                raise VersionConflictError(expected_version, base.version)
            candidate = change(base)
            authorize_change(who, base, candidate, action)
            now = self._clock()
            new = dataclasses.replace(candidate, version=base.version + 1, updated_at=now, updated_by=author,
                                      reason=reason)
            entry = HistoryEntry(new.version, now, author, reason, diff_policies(base, new))
            try:
                await self._backend.commit(new.document(), entry)
            except VersionConflictError:
                if expected_version is not None:
                    raise
                # Another writer got in first: apply the change again on its version.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311 - jitter, not crypto
                continue
            except StoreUnavailableError as exc:
                self._mark_unreachable(exc)
                raise
            await self._after_commit(new, entry)
            return new
        current = await self._backend.current_version()
        raise VersionConflictError(current - 1, current)

    async def _after_commit(self, new: Policy, entry: HistoryEntry) -> None:
        async with self._lock:
            state = self._state
            live = state.source is Source.STORE
            installed = live and state.policy.version >= new.version  # a notification was first
            direct = live and state.policy.version == new.version - 1
            if direct:
                await self._install(new, [entry], state.policy.version)
        if not installed and not direct:
            # We missed versions in between: load them, so events stay in order.
            with contextlib.suppress(StoreUnavailableError):
                await self.refresh()
        if self._external is not None:
            for event in events_for(entry, new.version - 1):
                try:
                    result = self._external.publish(event.type.value, event.to_dict())
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("The external event bus failed to publish %s", event.event_id)

    async def _follow_notifications(self) -> None:
        while not self._closed:
            try:
                async for hint in self._backend.notifications():
                    if hint == 0 or hint > self._state.policy.version or self._state.stale:
                        await self.refresh()
            except StoreUnavailableError:
                pass  # marked stale by refresh(); the safety net and the retry below reconnect
            except Exception:
                log.exception("Following policy changes failed; retrying")
            await asyncio.sleep(0.2)

    async def _safety_net(self) -> None:
        while not self._closed:
            # While stale, retry often so every process reconverges soon after the store returns.
            delay = min(self._refresh_interval, 0.5) if self._state.stale else self._refresh_interval
            await asyncio.sleep(delay)
            with contextlib.suppress(StoreUnavailableError):
                await self.refresh()


