"""Dry runs of a store's writes: the write's own steps up to the commit, answered as a preview.

A preview is made on the newest stored version in force, exactly as the write
would be made (its lifetime, its kill-switch stamp, its authority now and at
every end of an expiring change); when the store cannot be reached, on the
version this process holds, marked stale.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Protocol

from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.expiry import in_force
from policystore.model.overrides import lifetime_seconds
from policystore.model.policy import Policy
from policystore.model.previews import Preview, preview_change
from policystore.model.roles import Actor
from policystore.store.write_checks import refuse_unfit_kill_switch_reason, write_candidate

__all__ = ["WritePreviews"]


class _Load(Protocol):
    """Loads the version a write builds on, and whether it is the stored version itself."""

    def __call__(self, *, replaces_whole: bool) -> Awaitable[tuple[Policy, bool]]:
        """Load it; raise StoreUnavailableError when the store cannot be reached."""


class WritePreviews:
    """Previews the writes of one store.

    Args:
        load: loads the version a write builds on (the write loop's own).
        held: returns the version this process holds.
        clock: returns the current UTC time.
        actor: returns who writes when a write names no one.
    """

    def __init__(
        self,
        load: _Load,
        *,
        held: Callable[[], Policy],
        clock: Callable[[], datetime],
        actor: Callable[[], Actor],
    ) -> None:
        self._load = load
        self._held = held
        self._clock = clock
        self._actor = actor

    async def preview(
        self,
        change: Callable[[Policy], Policy],
        action: str,
        updated_by: str | None,
        expected_version: int | None,
        actor: Actor | None,
        *,
        replaces_whole: bool = False,
        keys: Collection[str] = (),
        expires_in: float | timedelta | None = None,
        admin_only: bool = False,
        approvals: int | None = None,
    ) -> Preview:
        """Return what :meth:`Writer.write <policystore.store.writer.Writer.write>` would do, writing nothing.

        The change is made on the newest stored version in force, as the write
        would make it (with its lifetime, and an expiring change past its end
        already returned); when the store cannot be reached, on this process's
        copy, and the preview says it is stale (the write itself would be refused).

        Args:
            change: builds the new policy from the version it is based on.
            action: what the write does ("switching to mode X").
            updated_by: the author, as for ``Writer.write`` (the kill switch's stamp names it).
            expected_version: refuse, as the write would, unless the store is at this version.
            actor: who would write; the store's own actor by default.
            replaces_whole: as for ``Writer.write``.
            keys: as for ``Writer.write``.
            expires_in: as for ``Writer.write``.
            admin_only: the write needs an admin whatever it changes (a rollback).
            approvals: how many admins agreed (a proposal's); by default the actor's own write.

        Returns:
            The preview.

        Raises:
            VersionConflictError: ``expected_version`` is not the version previewed.
            UnknownPathError, PolicyValidationError: the change is invalid, as the write would be.
        """
        who = actor or self._actor()
        author = who.name if actor is not None or not updated_by else updated_by
        lifetime = lifetime_seconds(expires_in) if expires_in is not None else None
        stale, now = False, self._clock()
        try:
            stored, _ = await self._load(replaces_whole=replaces_whole)
        except StoreUnavailableError:
            # What the write would do to the version this process holds; the write itself is refused now.
            stored, stale = self._held(), True
        if expected_version is not None and stored.version != expected_version:
            raise VersionConflictError(expected_version, stored.version)
        base = in_force(stored, now)
        candidate = write_candidate(base, change, now, author, "", keys, lifetime, replaces_whole=replaces_whole)
        refuse_unfit_kill_switch_reason(base, candidate)
        return preview_change(
            who, base, candidate, action=action, approvals=approvals, admin_only=admin_only, stale=stale
        )
