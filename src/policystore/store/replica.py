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
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from policystore.backends.base import Backend, Published
from policystore.errors import (
    FieldError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
    VersionConflictError,
)
from policystore.model.changes import apply_patch, diff_policies, stamp_emergency, unchanged
from policystore.model.document_text import canonical_lines, member_lines, policy_from_changed_lines
from policystore.model.events import EventType, PolicyChanged, events_for
from policystore.model.history import HistoryEntry, record_errors, record_text_problem
from policystore.model.numbers import short_repr
from policystore.model.paths import reflatten
from policystore.model.policy import Policy, default_policy
from policystore.model.roles import Actor, Role, authorize_change
from policystore.model.validation import build_policy, build_policy_json
from policystore.store.bus import EventBus, ExternalEventBus
from policystore.store.env import overlay_environment
from policystore.store.lkg import LKG_SAVE_INTERVAL, CopySaver, LastKnownGood
from policystore.store.notices import NoticeDirection, confirms
from policystore.store.sources import ReadState, Source, StaleTradingRule

__all__ = ["LKG_SAVE_INTERVAL", "Replica"]

log = logging.getLogger("policystore")

#: How often a write re-applies its change after losing a compare-and-set race.
_MAX_WRITE_ATTEMPTS = 50
#: Seconds ``close()`` waits for subscribers to take the events still queued.
_CLOSE_DELIVERY_SECONDS = 5.0
#: Who the store writes as when it stops trading by itself.
_SELF = Actor("policystore", Role.OPERATOR)


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
    _watch: bool
    _actor: Actor
    _clock: Callable[[], datetime]
    _stale_rule: StaleTradingRule
    last_error: PolicyStoreError | None
    # A newer version refused as invalid, and a store that went back, are facts of the read
    # state (ReadState.refused_version and rewound_to), so the trading gate and the policy
    # it judges are swapped in together.
    #: A rewound version whose kill switch this process is to turn on, or -1.
    _halt_pending: int = -1
    #: Events waiting to be delivered, in version order (see ``_deliver``).
    _outbox: deque[PolicyChanged]
    _delivering: bool = False
    _delivery: asyncio.Task[None] | None = None
    #: Saves the last-known-good copy (made on first use).
    _saver: CopySaver | None = None
    #: The policy installed from a notice, the member lines of its text (for the next
    #: notice to be compared with, see policystore.model.document_text), and the paths
    #: that follow the active mode by mode name, for its sections (see reflatten).
    _held_lines: tuple[Policy, tuple[bytes, ...], dict[str, dict[str, Any]]] | None = None
    #: Which notices loosen what is held (made on first use; see policystore.store.notices).
    _directions: NoticeDirection | None = None

    async def refresh(self) -> Policy:
        """Check the store now and load its newest version if it differs from the one held.

        Returns:
            The policy this process now holds.

        Raises:
            StoreUnavailableError: the store cannot be reached (reads go stale).
        """
        return await self._refresh(deep=True)

    async def _refresh(self, *, deep: bool) -> Policy:
        """Catch up with the store; ``deep`` also compares the content of an equal version."""
        try:
            await self._catch_up(deep=deep)
        except StoreUnavailableError as exc:
            self._mark_unreachable(exc)
            raise
        finally:
            await self._deliver()
        if self._halt_pending >= 0:
            await self._halt_after_rewind()
        return self._state.policy

    async def _deliver(self) -> None:
        """Hand queued events to subscribers, outside the lock and in version order.

        Events are queued under the lock and delivered after it is released, so a
        subscriber may itself write to the store. Only one delivery runs at a
        time: a write made by a subscriber queues its events behind the one being
        delivered, and the running delivery hands them on when the subscriber
        returns.
        """
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._outbox:
                # Taken off the queue only once delivered: a delivery cancelled half way
                # is repeated whole by the next one (each event carries an event_id).
                await self._bus.publish(self._outbox[0])
                self._outbox.popleft()
        finally:
            self._delivering = False
            if self._outbox and not self._closed:
                # Cancelled with events left: hand them to a task of their own.
                self._delivery = asyncio.create_task(self._deliver(), name="policystore-deliver")

    async def _deliver_all(self) -> None:
        """Wait for a delivery in progress, then deliver what is left (used on close).

        Bounded, so a subscriber that never returns cannot hang ``close()``.
        """
        try:
            async with asyncio.timeout(_CLOSE_DELIVERY_SECONDS):
                while self._outbox or self._delivering:
                    if self._delivering:
                        await asyncio.sleep(0.01)
                    else:
                        await self._deliver()
        except TimeoutError:
            log.error("Closing with %d change events undelivered: a subscriber did not return", len(self._outbox))  # noqa: TRY400 - stated in full

    def _set_state(self, state: ReadState) -> None:
        # One assignment each: a reader sees the old table or the new, never a mix.
        self._state = state
        self._values = state.values

    def _fallback_state(self) -> ReadState:
        saved = self._lkg.read() if self._lkg is not None else None
        if saved is not None:
            return ReadState.last_known_good(saved, rule=self._stale_rule)
        return ReadState.fallback(overlay_environment(default_policy(), self._environ), rule=self._stale_rule)

    def _mark_unreachable(self, exc: StoreUnavailableError) -> None:
        self.last_error = exc
        state = self._state
        if state.source is Source.STORE:
            log.warning("%s Answering from the last-known-good copy (version %d).", exc, state.policy.version)
            # A refused version or a rewind still holds trading shut while stale.
            facts = {"refused_version": state.refused_version, "rewound_to": state.rewound_to}
            self._set_state(ReadState.last_known_good(state.policy, rule=self._stale_rule, **facts))

    async def _seed(self) -> None:
        now = self._clock()
        first = dataclasses.replace(
            default_policy(), version=1, updated_at=now, updated_by="policystore", reason="initial policy"
        )
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

    async def _load_base(self, *, replaces_whole: bool) -> Policy:
        """Load the version a write builds on.

        A write that replaces the whole document (a rollback or an import) does
        not need the stored content, so it also works when the newest stored
        version is invalid: that is how an operator repairs such a store. Its
        history then records the change from the last valid version this
        process held.
        """
        try:
            return await self._load_latest()
        except StoreUnavailableError as exc:
            if not (replaces_whole and isinstance(exc.__cause__, ValueError)):
                raise
            current = await self._backend.current_version()
            log.warning("Writing over invalid version %d of the store: %s", current, exc)
            return dataclasses.replace(self._state.policy, version=current)

    async def _catch_up(self, *, deep: bool) -> None:
        """Install the store's newest version if it differs from ours, with its events."""
        async with self._lock:
            state = self._state
            live = state.source is Source.STORE
            current = await self._backend.current_version()
            if live and current == state.policy.version and not deep:
                return
            try:
                policy = await self._load_latest()
            except StoreUnavailableError as exc:
                self._announce_rejection(exc, current)
                raise
            held = state.policy
            known = state.source in {Source.STORE, Source.LAST_KNOWN_GOOD}
            if known and not await self._store_still_has(held, policy, deep=deep):
                self._follow_rewound_store(policy, held)
                return
            if live and policy.version == held.version:
                return
            # Replay the versions we missed as events, in order. With nothing known
            # before (environment and defaults answered) there is nothing to replay.
            after = state.policy.version if known else policy.version
            entries = await self._backend.entries(after, policy.version) if after < policy.version else []
            self._install(policy, entries, after)

    async def _store_still_has(self, held: Policy, newest: Policy, *, deep: bool) -> bool:
        """Whether the version held here is still part of the store's history.

        It is not when the store's newest version is older, or is the same
        number written at another time; with ``deep``, when a newer store no
        longer holds that version as it was written (a restore followed by new
        writes). Versions are compared by when they were written.
        """
        if newest.version < held.version:
            return False
        if newest.version == held.version:
            return newest.updated_at == held.updated_at
        if not deep or held.version < 1:
            return True
        stored = await self._backend.load(held.version)
        return stored is not None and _written_at(stored) == held.updated_at

    def _follow_rewound_store(self, policy: Policy, held: Policy) -> None:
        """Follow a store whose history no longer contains the version held here; fail closed.

        The store went back: restored from a backup, re-created, or failed over
        to a replica that had not received the newest writes. It is the source of
        truth, so its version is installed, announced as one change from the
        version held, and saved as the last-known-good copy. A write that was
        lost may have been the one that stopped trading, so no new trade may be
        opened: at once in this process, and for every process, present and
        future, by turning the kill switch on in the store (see
        :meth:`_halt_after_rewind`; processes that follow changes do this),
        which only an admin can turn off.
        """
        log.error(
            "The store is at version %d (written %s), but version %d (written %s) was held here: its history "
            "was replaced (a restore, or a failover that lost writes). Following the store; no new trades until "
            "the next write confirms the policy.",
            policy.version,
            policy.updated_at.isoformat(),
            held.version,
            held.updated_at.isoformat(),
        )
        reason = "the store's history was replaced (a restore, or a failover that lost writes); following the store"
        entry = HistoryEntry(policy.version, self._clock(), "policystore", reason, diff_policies(held, policy))
        # Installed with the rewind in the same read state: no reader sees the older version without it.
        self._install(policy, [entry], held.version, rewound_to=policy.version)
        self._save_last_known_good(policy, force=True)
        # Processes that follow the store (servers, traders) halt it; a one-shot tool
        # (watch=False, such as a command line read) only refuses trades itself.
        if self._watch and not policy.emergency.active:
            self._halt_pending = policy.version

    async def _halt_after_rewind(self) -> None:
        """Turn the kill switch on after the store went back, unless another process did first."""
        version, self._halt_pending = self._halt_pending, -1
        if version < 0:
            return
        reason = (
            f"the store went back to version {version} (a restore, or a failover that lost writes); "
            "trading stopped until an admin confirms the policy"
        )
        try:
            await self._write(
                lambda base: apply_patch(base, {"emergency.active": True, "emergency.reason": reason}),
                "turning the kill switch on",
                None,
                reason,
                version,
                _SELF,
            )
        except VersionConflictError:
            pass  # the store moved on: another process halted it, or someone wrote already
        except PolicyStoreError as exc:
            # This process still refuses new trades (see can_open_new_trades) until a later version.
            log.error("Could not turn the kill switch on after the store went back: %s", exc)  # noqa: TRY400 - stated in full

    def _announce_rejection(self, exc: StoreUnavailableError, version: int) -> None:
        """Queue one ``policy.rejected`` event per refused version, so operators hear of it."""
        if not isinstance(exc.__cause__, ValueError) or version == self._state.refused_version:
            return
        self._set_state(self._state.with_facts(refused_version=version))
        log.error("Refused version %d from the store: %s", version, exc)
        self._outbox.append(
            PolicyChanged(
                type=EventType.REJECTED,
                version=version,
                previous_version=self._state.policy.version,
                at=self._clock(),
                by="policystore",
                reason=str(exc),
                changes=(),
            )
        )

    def _install(
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
        ``rewound_to`` marks a store that went back (see :meth:`_follow_rewound_store`).
        A refused version stays in force until one as new is installed, a rewind
        until a later version is.
        """
        self.last_error = None
        before = self._state
        refused = before.refused_version if policy.version < before.refused_version else -1
        if rewound_to is None:
            rewound_to = before.rewound_to if policy.version <= before.rewound_to else -1
        facts = {"rule": self._stale_rule, "refused_version": refused, "rewound_to": rewound_to}
        self._set_state(ReadState.live(policy, values, **facts))
        if self._lkg is not None and (before.source is not Source.STORE or before.policy.version != policy.version):
            # A kill switch turned on is saved at once: a crash must not leave a copy that allows trading.
            urgent = _stops_trading(policy) and not _stops_trading(before.policy)
            self._save_last_known_good(policy, urgent=urgent)
        if not self._bus.listening:
            return  # events are made only for someone to receive them: most processes only read
        for entry in entries:
            self._outbox.extend(events_for(entry, previous))
            previous = entry.version

    def _save_last_known_good(self, policy: Policy, *, force: bool = False, urgent: bool = False) -> None:
        """Save ``policy`` as the last-known-good copy soon (see :class:`CopySaver`)."""
        if self._lkg is not None and not self._closed:
            self._copy_saver(self._lkg).save(policy, force=force, urgent=urgent)

    def _copy_saver(self, lkg: LastKnownGood) -> CopySaver:
        if self._saver is None:
            self._saver = CopySaver(lkg)
        return self._saver

    async def _save_durably(self, policy: Policy) -> None:
        """Save ``policy`` and flush it before returning: a write of this process that stops trading."""
        if self._lkg is not None:
            await self._copy_saver(self._lkg).save_now(policy)

    async def _flush_last_known_good(self) -> None:
        """Save the newest version seen now and wait until it is on disk (used on close)."""
        if self._saver is not None:
            await self._saver.close()

    async def _write(  # noqa: PLR0917 - internal; every write passes the same six facts in this order
        self,
        change: Callable[[Policy], Policy],
        action: str,
        updated_by: str | None,
        reason: str,
        expected_version: int | None,
        actor: Actor | None,
        *,
        replaces_whole: bool = False,
    ) -> Policy:
        """Apply ``change`` to the newest version and commit the result as the next one.

        A result equal to the version it was based on (see
        :func:`~policystore.model.changes.unchanged`) writes nothing and returns
        that version: no new version, no history entry, no event. The actor's
        authority is checked first, so a no-op write is refused to whoever may
        not write at all.
        """
        who = actor or self._actor
        author = who.name if actor is not None or not updated_by else updated_by
        _refuse_unfit_record(reason, author, expected_version)
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            base, stored = await self._write_base(replaces_whole=replaces_whole)
            if expected_version is not None and base.version != expected_version:
                raise VersionConflictError(expected_version, base.version)
            now = self._clock()
            candidate = stamp_emergency(base, change(base), now, author)
            authorize_change(who, base, candidate, action)
            if stored and unchanged(base, candidate):
                await self._hold(base)
                return base
            _refuse_unfit_kill_switch_reason(base, candidate)
            new = dataclasses.replace(
                candidate, version=base.version + 1, updated_at=now, updated_by=author, reason=reason
            )
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
            await self._after_commit(base, new, entry)
            if _stops_trading(new):
                await self._save_durably(new)
            return new
        current = await self._backend.current_version()
        raise VersionConflictError(current - 1, current)

    async def _hold(self, base: Policy) -> None:
        """After a write that changed nothing, hold the version it found, durably if it stops trading.

        The caller is told that version is the store's: this process must not go
        on answering from an older one (a kill switch turned on elsewhere, which
        this write found already on, stops trading here too, at once).
        """
        state = self._state
        if state.source is not Source.STORE or (state.policy.version, state.policy.updated_at) != (
            base.version,
            base.updated_at,
        ):
            with contextlib.suppress(StoreUnavailableError):  # marked stale; the write changed nothing
                await self._refresh(deep=True)
        if _stops_trading(base):
            await self._save_durably(base)

    async def _write_base(self, *, replaces_whole: bool) -> tuple[Policy, bool]:
        """Load the version a write builds on, and whether it is the stored version itself.

        It is not when a rollback or an import writes over an invalid newest
        version (see :meth:`_load_base`): such a write must commit even when it
        restores what this process held, since that repairs the store.
        """
        try:
            try:
                return await self._load_latest(), True
            except StoreUnavailableError as exc:
                if not (replaces_whole and isinstance(exc.__cause__, ValueError)):
                    raise
            return await self._load_base(replaces_whole=True), False
        except StoreUnavailableError as exc:
            self._mark_unreachable(exc)
            raise

    async def _after_commit(self, base: Policy, new: Policy, entry: HistoryEntry) -> None:
        async with self._lock:
            held = self._state.policy
            live = self._state.source is Source.STORE
            # Versions are told apart by number and time of writing: after a restore or a
            # failover the same number can stand for another write.
            direct = live and (held.version, held.updated_at) == (base.version, base.updated_at)
            installed = live and (held.version, held.updated_at) == (new.version, new.updated_at)
            if direct:
                self._install(new, [entry], held.version)
        await self._deliver()
        if not installed and not direct:
            # Versions were missed in between, or the held one left the store's history:
            # load them, so events stay in order and a rewind is noticed.
            with contextlib.suppress(StoreUnavailableError):
                await self._refresh(deep=True)
        if self._external is not None:
            for event in events_for(entry, new.version - 1):
                try:
                    result = self._external.publish(event.type.value, event.to_dict())
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("The external event bus failed to publish %s", event.event_id)

    async def _install_published(self, published: Published) -> bool:
        """Install a version from its notification, without reading the store back if it only tightens.

        Only the version right after the one held qualifies: anything else (a
        gap, a stale copy, a document that fails validation) returns False and
        the caller re-reads, which replays missed versions and refuses invalid
        ones loudly. A notice is not the store (anyone who may publish on the
        channel can send one), so a version that loosens what is held, or that
        would open a gate a refused or rewound version holds shut, is installed
        only once the store's newest document is found to be exactly it (one
        read); otherwise the caller re-reads. See :mod:`policystore.store.notices`.

        Returns:
            True when this process now holds ``published.version`` or newer.
        """
        async with self._lock:
            state = self._state
            held = state.policy
            # Only the next version, or the one held (whose content is checked: after a
            # failover the same number can stand for another write); anything else re-reads.
            if state.source is not Source.STORE or published.version not in {held.version, held.version + 1}:
                return False
            read = self._read_published(published, held)
            if read is None:
                return False
            policy, lines, sections_kept = read
            if policy.version == held.version:
                return policy.updated_at == held.updated_at
            if self._loosens(state, policy, lines) and not await self._confirmed(published):
                return False
            try:
                # The entry is read only for an event (see _install).
                entries = [published.entry] if self._bus.listening else []
            except (ValueError, TypeError, KeyError):
                return False  # a malformed entry: read the version back, entry and all
            # While versions keep the sections, the paths of each mode are built once.
            tables = self._held_lines[2] if sections_kept and self._held_lines is not None else {}
            values = reflatten(state.values, held, policy, tables) if sections_kept else None
            self._install(policy, entries, held.version, values)
            self._held_lines = (policy, lines, tables)
        if self._outbox:
            await self._deliver()
        return True

    def _loosens(self, state: ReadState, policy: Policy, lines: tuple[bytes, ...]) -> bool:
        """Whether installing ``policy`` in place of ``state`` could let more risk be taken."""
        if state.refused_version >= 0 or state.rewound_to >= 0:
            return True  # a later version would lift the fact that holds trading shut
        if self._directions is None:
            self._directions = NoticeDirection()
        held_lines = (
            self._held_lines[1] if self._held_lines is not None and self._held_lines[0] is state.policy else None
        )
        return self._directions.loosens(state.policy, held_lines, policy, lines)

    async def _confirmed(self, published: Published) -> bool:
        """Whether the store's newest document is the notice's (one read); False also when it cannot be read."""
        try:
            stored = await self._backend.load()
        except StoreUnavailableError:
            return False  # the caller re-reads, and goes stale if the store is gone
        if confirms(stored, published):
            return True
        newest = stored.get("version") if stored is not None else None
        if not (isinstance(newest, int) and newest > published.version):  # not merely overtaken by a later write
            log.warning(
                "A change notice for version %d does not match the store's newest document (forged, or lost "
                "since); it was not installed, and the store is read instead.",
                published.version,
            )
        return False

    def _read_published(self, published: Published, held: Policy) -> tuple[Policy, tuple[bytes, ...], bool] | None:
        """Validate a notice's document, or return None to re-read.

        Returns:
            The policy, its text's member lines, and whether it keeps every section of
            ``held`` (it changes only its own record and perhaps the active mode).
        """
        document = published.document
        lines = member_lines(document) if isinstance(document, bytes) else None
        if lines is not None and self._held_lines is not None and self._held_lines[0] is held:
            # Most versions change only their own record and perhaps the mode: check just that.
            policy = policy_from_changed_lines(held, self._held_lines[1], lines)
            if policy is not None:
                return (policy, lines, True) if policy.version == published.version else None
        try:
            policy = build_policy_json(document) if isinstance(document, bytes) else build_policy(document)
        except PolicyValidationError:
            return None
        if policy.version != published.version:
            return None
        # The lines the next notice is compared with describe this policy exactly, whatever
        # the layout of the text it came in (nested members, repeated keys).
        return policy, canonical_lines(policy), False

    async def _follow_notifications(self) -> None:
        while not self._closed:
            try:
                async for hint in self._backend.notifications():
                    if isinstance(hint, Published):
                        if not await self._install_published(hint):
                            await self._refresh(deep=hint.version == self._state.policy.version)
                    elif hint == 0 or hint != self._state.policy.version or self._state.stale:
                        await self._refresh(deep=hint == 0)
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


def _stops_trading(policy: Policy) -> bool:
    """Whether ``policy`` allows no new trade by itself (the kill switch), so its copy must be durable at once."""
    return policy.emergency.active


def _written_at(document: Mapping[str, Any]) -> datetime | None:
    """When a stored document was written, or None when it does not say."""
    value = document.get("updated_at")
    try:
        written = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return written.astimezone(UTC) if written is not None and written.tzinfo is not None else None


def _refuse_unfit_record(reason: Any, author: Any, expected_version: Any) -> None:
    """Refuse a write whose record is unfit, before anything is read; every failure is listed."""
    errors = record_errors(reason, author)
    if expected_version is not None and (isinstance(expected_version, bool) or not isinstance(expected_version, int)):
        # True == 1 in Python: a boolean would be taken as version 1.
        message = f"must be a version number or None (got {short_repr(expected_version)})"
        errors.append(FieldError("expected_version", message))
    if errors:
        raise PolicyValidationError(errors)


def _refuse_unfit_kill_switch_reason(base: Policy, new: Policy) -> None:
    """Refuse a kill-switch reason unfit for the record, when the write sets one."""
    reason = new.emergency.reason
    if reason is not None and reason != base.emergency.reason and (problem := record_text_problem(reason)):
        raise PolicyValidationError([FieldError("emergency.reason", problem)])
