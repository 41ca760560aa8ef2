"""How a store follows its back end: catch up, notice a store that went back, follow change notices.

Reads never wait on this: a new version is installed by replacing the read
state whole (see :class:`~policystore.store.local_copy.LocalCopy`). A store
that follows changes runs two loops: one on the back end's notifications,
taking each notice's fast path (:class:`~policystore.store.notices.NoticeInstaller`)
or reading the store, and a periodic version check as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from policystore.backends.base import Backend, Published
from policystore.errors import PolicyStoreError, StoreUnavailableError, VersionConflictError
from policystore.model.changes import apply_patch, diff_policies
from policystore.model.history import HistoryEntry
from policystore.model.policy import Policy
from policystore.model.roles import Actor, Role
from policystore.store.keeper import CopyKeeper
from policystore.store.local_copy import LocalCopy
from policystore.store.notices import NoticeInstaller
from policystore.store.outbox import Outbox
from policystore.store.sources import Source
from policystore.store.writer import Writer, load_latest

__all__ = ["Follower"]

log = logging.getLogger("policystore")

#: Who the store writes as when it stops trading by itself.
_SELF = Actor("policystore", Role.OPERATOR)


class Follower:
    """Keeps a store's read state current with its back end.

    Args:
        backend: the store's back end.
        copy: the store's read state.
        writer: turns the kill switch on after the store went back.
        lock: the store's lock, held while a version is installed.
        outbox: delivers the events of installed versions.
        keeper: saves the version of a store that went back at once.
        clock: returns the current UTC time.
        watch: follow changes made by other processes (run the loops, and halt a
            store that went back); off for one-shot tools.
        refresh_interval: seconds between safety-net version checks.
        closed: tells whether the store is closing, which ends the loops.
    """

    def __init__(
        self,
        backend: Backend,
        copy: LocalCopy,
        *,
        writer: Writer,
        lock: asyncio.Lock,
        outbox: Outbox,
        keeper: CopyKeeper,
        clock: Callable[[], datetime],
        watch: bool,
        refresh_interval: float,
        closed: Callable[[], bool],
        connect: Callable[[], Awaitable[None]],
    ) -> None:
        self._backend = backend
        #: Connects the back end if the store was opened while it could not be reached.
        self._connect = connect
        self._copy = copy
        self._writer = writer
        self._lock = lock
        self._outbox = outbox
        self._keeper = keeper
        self._clock = clock
        self._watch = watch
        self._refresh_interval = refresh_interval
        self._closed = closed
        self.notices = NoticeInstaller(backend, copy, lock=lock, outbox=outbox)
        #: A rewound version whose kill switch this process is to turn on, or -1.
        self._halt_pending = -1
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start following changes made elsewhere, if this store follows them."""
        if self._watch:
            self._tasks.append(asyncio.create_task(self._follow_notifications(), name="policystore-notify"))
            self._tasks.append(asyncio.create_task(self._safety_net(), name="policystore-refresh"))

    async def stop(self) -> None:
        """Stop the loops and wait until they have ended."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def refresh(self, *, deep: bool, notified: bool = False) -> Policy:
        """Catch up with the store and deliver the events; ``deep`` also compares the content of an equal version.

        ``notified``: the back end said the store changed just now, so the next
        version, if that is what is found, arrived as soon as it was written
        (its time tells how this process's clock compares with its writer's).

        Returns:
            The policy this process now holds.

        Raises:
            StoreUnavailableError: the store cannot be reached (reads go stale).
        """
        try:
            await self._connect()
            await self._catch_up(deep=deep, notified=notified)
        except StoreUnavailableError as exc:
            self._copy.mark_unreachable(exc)
            raise
        finally:
            await self._outbox.deliver()
        if self._halt_pending >= 0:
            await self._halt_after_rewind()
        return self._copy.state.policy

    async def _catch_up(self, *, deep: bool, notified: bool = False) -> None:
        """Install the store's newest version if it differs from ours, with its events."""
        async with self._lock:
            state = self._copy.state
            live = state.source is Source.STORE
            current = await self._backend.current_version()
            if live and current == state.policy.version and not deep:
                return
            try:
                policy = await load_latest(self._backend)
            except StoreUnavailableError as exc:
                self._copy.refuse(exc, current)
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
            self._copy.install(policy, entries, after)
            if live and notified and policy.version == held.version + 1:
                # The next version, read on its change notice: it arrived as soon as it was written.
                self._copy.observe_arrival(policy)

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
        self._copy.install(policy, [entry], held.version, rewound_to=policy.version)
        self._keeper.save(policy, force=True)
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
            await self._writer.write(
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

    async def _follow_notifications(self) -> None:
        while not self._closed():
            try:
                async for hint in self._backend.notifications():
                    if isinstance(hint, Published):
                        if not await self.notices.install(hint):
                            held = self._copy.state.policy.version
                            await self.refresh(deep=hint.version == held, notified=True)
                    elif hint == 0 or hint != self._copy.state.policy.version or self._copy.state.stale:
                        await self.refresh(deep=hint == 0, notified=True)
            except StoreUnavailableError as exc:
                # Raised by refresh(), which marked the copy stale already, or by the back end's
                # listener itself: either way the store is gone, so answers are stale from now
                # (a no-op when already stale); the safety net and the retry below reconnect.
                self._copy.mark_unreachable(exc)
            except Exception:
                log.exception("Following policy changes failed; retrying")
            await asyncio.sleep(0.2)

    async def _safety_net(self) -> None:
        while not self._closed():
            # While stale, retry often so every process reconverges soon after the store returns.
            delay = min(self._refresh_interval, 0.5) if self._copy.state.stale else self._refresh_interval
            await asyncio.sleep(delay)
            with contextlib.suppress(StoreUnavailableError):
                await self.refresh(deep=True)


def _written_at(document: Mapping[str, Any]) -> datetime | None:
    """When a stored document was written, or None when it does not say."""
    value = document.get("updated_at")
    try:
        written = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return written.astimezone(UTC) if written is not None and written.tzinfo is not None else None
