"""The write loop: a change applied to the newest version and committed as the next one, with compare-and-set.

Every write of a store goes through :meth:`Writer.write`: the record is
checked, the newest version is loaded, the change applied to it, the actor's
authority checked, and the result committed only if the store is still at the
version it was built on; a write that lost that race is applied again on the
winner's version. The committed version is installed here at once, with its
events, and one that stops trading or makes a trading state stricter is saved
durably before the write returns.

A write may carry a lifetime (see :mod:`policystore.model.expiry`). A write
that finds an expiring change past its end in the newest version first records
the return, as the store itself (:mod:`~policystore.store.returns`), so that every
version holds only changes in force by its writer's clock and each history
entry says what its author changed.

:meth:`Writer.preview` is the same up to the commit: it loads, applies and
checks, and answers a :class:`~policystore.model.previews.Preview` instead of
writing (a dry run). Inside :func:`~policystore.store.previewing.previewing`,
every write answers so, by raising
:class:`~policystore.store.previewing.Previewed`: that is how the command line gives
``--dry-run`` to every write command, whatever store method it calls. A write
that applies a proposal carries its :class:`~policystore.store.write_checks.Endorsement`:
the approvals it counts, and a check of the version it is built on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta

from policystore._callbacks import call_sync_or_async
from policystore.backends.base import Backend, NewestText
from policystore.errors import PolicyValidationError, StoreUnavailableError, VersionConflictError
from policystore.model.changes import changes_nothing, diff_policies
from policystore.model.events import PolicyChanged, events_for
from policystore.model.expiry import authorize_timeline, ended, in_force
from policystore.model.history import HistoryEntry
from policystore.model.paths import reflatten_modes
from policystore.model.policy import Policy, default_policy
from policystore.model.roles import Actor
from policystore.model.validation import build_policy, build_policy_json
from policystore.store.bus import ExternalEventBus
from policystore.store.keeper import CopyKeeper, restricts_trading, stops_trading, tightens_trading
from policystore.store.local_copy import LocalCopy
from policystore.store.outbox import Outbox
from policystore.store.previewing import Previewed, is_previewing
from policystore.store.returns import Returns
from policystore.store.sources import Source
from policystore.store.write_checks import (
    Endorsement,
    check_endorsed,
    history_entry,
    refuse_unfit_kill_switch_reason,
    refuse_unfit_record,
    write_author,
    write_candidate,
    write_lifetime,
)
from policystore.store.write_preview import WritePreviews

__all__ = ["Writer", "load_latest"]

log = logging.getLogger("policystore")

#: How often a write re-applies its change after losing a compare-and-set race.
_MAX_WRITE_ATTEMPTS = 50


async def load_latest(backend: Backend) -> Policy:
    """Load and validate the newest stored version.

    A back end that reads its newest document as stored text
    (:class:`~policystore.backends.base.NewestText`) is read that way: its
    own lighter read, and the text validated as it is, without first making
    Python data of it. Text that is absent or invalid is read again the
    general way, so every refusal is worded as before.

    Raises:
        StoreUnavailableError: the store cannot be reached, holds no policy, or
            its newest version is invalid (then caused by the ``ValueError``).
    """
    if isinstance(backend, NewestText):
        text = await backend.newest_text()
        if text is not None:
            with contextlib.suppress(PolicyValidationError):
                return build_policy_json(text)
    document = await backend.load()
    if document is None:
        raise StoreUnavailableError(backend.url, "the store holds no policy; run 'policystore init'")
    try:
        return build_policy(document)
    except PolicyValidationError as exc:
        reason = f"the stored policy is invalid and was refused ({exc})"
        raise StoreUnavailableError(backend.url, reason) from exc


class Writer:
    """Commits changes as new versions of one store and installs them in its local copy.

    Args:
        backend: the store's back end.
        copy: the store's read state.
        lock: the store's lock, held while a committed version is installed.
        outbox: delivers the events of installed versions.
        keeper: saves a version that stops trading durably.
        clock: returns the current UTC time.
        actor: who writes when a write names no one.
        external: a system bus that also receives the events of these writes, or None.
        refresh: catches up with the store (reads it in full), for a write that
            finds the version held here is not the one it built on.
    """

    def __init__(
        self,
        backend: Backend,
        copy: LocalCopy,
        *,
        lock: asyncio.Lock,
        outbox: Outbox,
        keeper: CopyKeeper,
        clock: Callable[[], datetime],
        actor: Actor,
        external: ExternalEventBus | None,
        refresh: Callable[[], Awaitable[object]],
        connect: Callable[[], Awaitable[None]],
    ) -> None:
        self.backend = backend
        self.actor = actor
        self._copy = copy
        self._lock = lock
        self._outbox = outbox
        self._keeper = keeper
        self._clock = clock
        self._external = external
        self._refresh = refresh
        self._returns = Returns(backend, copy, load=load_latest, commit=self._commit, clock=clock)
        #: What a write would do, writing nothing (see :class:`~policystore.store.write_preview.WritePreviews`).
        self.preview = WritePreviews(
            self._write_base, held=lambda: self._copy.state.policy, clock=clock, actor=lambda: self.actor
        ).preview
        #: Connects the back end if the store was opened while it could not be reached.
        self._connect = connect

    async def seed(self) -> None:
        """Write the built-in policy as version 1 of a store that holds none (unless another process did)."""
        now = self._clock()
        first = dataclasses.replace(
            default_policy(), version=1, updated_at=now, updated_by="policystore", reason="initial policy"
        )
        entry = HistoryEntry(1, now, "policystore", "initial policy", ())
        with contextlib.suppress(VersionConflictError):  # another process seeded it first
            await self.backend.commit(first.document(), entry)

    async def write(  # noqa: PLR0917 - internal; every write passes the same six facts in this order
        self,
        change: Callable[[Policy], Policy],
        action: str,
        updated_by: str | None,
        reason: str,
        expected_version: int | None,
        actor: Actor | None,
        *,
        replaces_whole: bool = False,
        keys: Collection[str] = (),
        expires_in: float | timedelta | None = None,
        endorsement: Endorsement | None = None,
    ) -> Policy:
        """Apply ``change`` to the newest version and commit the result as the next one.

        A result equal to the version it was based on (see
        :func:`~policystore.model.changes.unchanged`) writes nothing and returns
        that version: no new version, no history entry, no event. The actor's
        authority is checked first, so a no-op write is refused to whoever may
        not write at all.

        Args:
            change: builds the new policy from the version it is based on (given
                without its expiring changes: the write keeps, replaces or adds them).
            action: what the write does, for a refusal ("switching to mode X").
            updated_by: the author to record when no ``actor`` is given.
            reason: why; recorded with the version.
            expected_version: fail unless the store is at this version.
            actor: who writes, with which role; the store's own actor by default.
            replaces_whole: the change replaces the whole document (a rollback
                or an import), so it may write over an invalid newest version;
                the document's own expiring changes come with it.
            keys: the paths the write's patch names; an expiring change on any
                of them is replaced even where the value stays the same.
            expires_in: the write's lifetime (seconds or a timedelta), or None
                for a change for good.
            endorsement: the proposal the write applies, with its approvals.

        Returns:
            The new policy, or the current one when the write changes nothing.

        Raises:
            PolicyValidationError: the record, the lifetime or the result is
                invalid (a return included).
            PermissionDeniedError: the actor may not make this change; an
                :class:`~policystore.errors.ApprovalRequiredError` when it raises
                risk and more admins must agree to it.
            VersionConflictError: ``expected_version`` is not the current
                version, or the write kept losing the race to other writers.
            StoreUnavailableError: the store cannot be reached; nothing changed.
            Previewed: inside ``previewing()``: what the write would do; nothing changed.
        """
        if is_previewing():
            preview = await self.preview(
                change,
                action,
                updated_by,
                expected_version,
                actor,
                replaces_whole=replaces_whole,
                keys=keys,
                expires_in=expires_in,
            )
            raise Previewed(preview)
        who = actor or self.actor
        author, approvals = write_author(who, actor is not None, updated_by, endorsement)
        refuse_unfit_record(reason, author, expected_version)
        lifetime = write_lifetime(expires_in, action, replaces_whole=replaces_whole)
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            stored, is_stored = await self._write_base(replaces_whole=replaces_whole)
            now = self._clock()
            if expected_version is not None and stored.version != expected_version:
                expected_version = await self._returns.expected(expected_version, stored, now)
            if is_stored and ended(stored, now):
                # Record the return first, so that this write's entry holds only its own change.
                moved, expected_version = await self._returns.first(stored, now, expected_version)
                if moved:
                    continue
            await check_endorsed(stored, endorsement)
            base = in_force(stored, now) if is_stored else stored
            candidate = write_candidate(
                base, change, now, author, reason, keys, lifetime, replaces_whole=replaces_whole
            )
            authorize_timeline(who, base, candidate, action, approvals=approvals)
            # The record is no stored field, so these are also the changes of the version made below.
            changes = diff_policies(base, candidate)
            if is_stored and changes_nothing(changes):
                await self._hold(base)
                return base
            refuse_unfit_kill_switch_reason(base, candidate)
            new = dataclasses.replace(
                candidate, version=base.version + 1, updated_at=now, updated_by=author, reason=reason
            )
            if await self._commit(base, new, history_entry(new, changes, endorsement)):
                return new
            if expected_version is not None:
                raise VersionConflictError(expected_version, await self.backend.current_version())
            # Another writer got in first: apply the change again on its version.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311 - jitter, not crypto
        current = await self.backend.current_version()
        raise VersionConflictError(current - 1, current)

    async def _commit(self, base: Policy, new: Policy, entry: HistoryEntry) -> bool:
        """Commit ``new`` on ``base`` and install it; False when another writer got in first.

        Raises:
            StoreUnavailableError: the store cannot be reached; nothing changed.
        """
        try:
            await self.backend.commit(new.document(), entry)
        except VersionConflictError:
            return False
        except StoreUnavailableError as exc:
            self._copy.mark_unreachable(exc)
            raise
        await self._after_commit(base, new, entry)
        if stops_trading(new) or tightens_trading(base, new):
            await self._keeper.save_durably(new)
        return True

    async def record_returns(self) -> Policy | None:
        """Record the return of the newest version's ended changes (see :meth:`.Returns.record_returns`).

        Raises:
            StoreUnavailableError: the store cannot be reached (reads go stale).
        """
        return await self._returns.record_returns()

    def now(self) -> datetime:
        """Return the store's clock's time."""
        return self._clock()

    def held_version(self) -> int:
        """Return the version this process holds now."""
        return self._copy.state.policy.version

    async def latest(self) -> Policy:
        """Load and validate the newest stored version, as a write builds on it.

        Raises:
            StoreUnavailableError: the store cannot be reached or its newest version is invalid
                (reads go stale).
        """
        base, _ = await self._write_base(replaces_whole=False)
        return base

    async def announce(self, event: PolicyChanged) -> None:
        """Deliver an event that is no version of its own (a proposal's step) here and on the external bus."""
        if self._outbox.listening:
            async with self._lock:
                self._outbox.add((event,))
            await self._outbox.deliver()
        await self._publish(event)

    async def _publish(self, event: PolicyChanged) -> None:
        if self._external is None:
            return
        try:
            await call_sync_or_async(self._external.publish, event.type.value, event.to_dict())
        except Exception:
            log.exception("The external event bus failed to publish %s", event.event_id)

    async def _hold(self, base: Policy) -> None:
        """After a write that changed nothing, hold the version it found, durably if it holds trading back.

        The caller is told that version is the store's: this process must not go
        on answering from an older one (a kill switch turned on elsewhere, which
        this write found already on, stops trading here too, at once). A version
        with the kill switch on or any state stricter than ``active`` is saved as
        if this write had made it: the write is acknowledged as holding it.
        """
        state = self._copy.state
        if state.source is not Source.STORE or (state.policy.version, state.policy.updated_at) != (
            base.version,
            base.updated_at,
        ):
            with contextlib.suppress(StoreUnavailableError):  # marked stale; the write changed nothing
                await self._refresh()
        if restricts_trading(base):
            await self._keeper.save_durably(base)

    async def _write_base(self, *, replaces_whole: bool) -> tuple[Policy, bool]:
        """Load the version a write builds on, and whether it is the stored version itself.

        It is not when a rollback or an import writes over an invalid newest
        version (see :meth:`_load_base`): such a write must commit even when it
        restores what this process held, since that repairs the store.
        """
        try:
            await self._connect()  # the store may have been opened while its back end could not be reached
            try:
                return await load_latest(self.backend), True
            except StoreUnavailableError as exc:
                if not (replaces_whole and isinstance(exc.__cause__, ValueError)):
                    raise
            return await self._load_base(replaces_whole=True), False
        except StoreUnavailableError as exc:
            self._copy.mark_unreachable(exc)
            raise

    async def _load_base(self, *, replaces_whole: bool) -> Policy:
        """Load the version a write builds on.

        A write that replaces the whole document (a rollback or an import) does
        not need the stored content, so it also works when the newest stored
        version is invalid: that is how an operator repairs such a store. Its
        history then records the change from the last valid version this
        process held.
        """
        try:
            return await load_latest(self.backend)
        except StoreUnavailableError as exc:
            if not (replaces_whole and isinstance(exc.__cause__, ValueError)):
                raise
            current = await self.backend.current_version()
            log.warning("Writing over invalid version %d of the store: %s", current, exc)
            return dataclasses.replace(self._copy.state.policy, version=current)

    async def _after_commit(self, base: Policy, new: Policy, entry: HistoryEntry) -> None:
        """Install a committed version here, deliver its events, and publish them on the external bus."""
        async with self._lock:
            state = self._copy.state
            held = state.policy
            live = state.source is Source.STORE
            # Versions are told apart by number and time of writing: after a restore or a
            # failover the same number can stand for another write.
            direct = live and (held.version, held.updated_at) == (base.version, base.updated_at)
            installed = live and (held.version, held.updated_at) == (new.version, new.updated_at)
            if direct:
                # Built from the held table: a mode switch or a change of limits rebuilds only what it changed.
                self._copy.install(new, [entry], held.version, reflatten_modes(state.values, held, new))
        await self._outbox.deliver()
        if not installed and not direct:
            # Versions were missed in between, or the held one left the store's history:
            # load them, so events stay in order and a rewind is noticed.
            with contextlib.suppress(StoreUnavailableError):
                await self._refresh()
        if self._external is not None:
            for event in events_for(entry, new.version - 1):
                await self._publish(event)
