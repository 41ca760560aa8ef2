"""The audited write API of a store: every write, and the history it leaves.

Each write is validated, checked against the actor's role, committed with
compare-and-set on the version and recorded in history (see
:meth:`Writer.write <policystore.store.writer.Writer.write>`). A write whose
result holds what the store holds already writes nothing and returns the current
policy, so ``returned.version == version_before`` says "no change".

``update``, ``switch_mode`` and ``set_emergency_mode`` take a lifetime
(``expires_in``, seconds or a :class:`~datetime.timedelta`): the change is in
force until then, and every process returns to the values from before it at
that moment, by its own clock (see :mod:`policystore.model.expiry`). A rollback
and an import write a whole document for good and take none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from policystore.errors import FieldError, PolicyValidationError
from policystore.model.changes import apply_patch, diff_policies
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.modes import RiskMode
from policystore.model.numbers import short_repr
from policystore.model.policy import RECORD_FIELDS, Policy
from policystore.model.roles import Actor, Role
from policystore.model.validation import build_policy
from policystore.store.writer import Writer, load_latest

__all__ = ["Writes"]


def _mode_name(mode: RiskMode | str) -> str:
    return mode.value if isinstance(mode, RiskMode) else str(mode)


def _check_number(name: str, value: Any, *, optional: bool = False, least: int = 0) -> None:
    """Refuse a version (or count) argument that is no integer: True is 1 to Python, not to an auditor.

    Raises:
        PolicyValidationError: ``value`` is a boolean, not an int, or below ``least``.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a version number" if name != "limit" else "a whole number"
        raise PolicyValidationError([FieldError(name, f"must be {kind} (got {short_repr(value)})")])
    if value < least:
        raise PolicyValidationError([FieldError(name, f"must be at least {least} (got {value})")])


class Writes:
    """History, diff and the writes of :class:`~policystore.store.store.PolicyStore`, over its write loop.

    Args:
        writer: the store's write loop.
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    # -- audit ---------------------------------------------------------------

    async def history(self, limit: int = 50, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` history entries, newest first (older than ``before``)."""
        _check_number("limit", limit, least=1)
        _check_number("before", before, optional=True)
        return await self._writer.backend.history(limit, before)

    async def version_at(self, version: int) -> Policy:
        """Return the policy as it was at ``version``.

        Raises:
            PolicyValidationError: there is no such version, or ``version`` is no version number.
        """
        _check_number("version", version)
        document = await self._writer.backend.load(version) if version >= 1 else None
        if document is None:
            current = await self._writer.backend.current_version()
            msg = f"there is no version {version}; versions run from 1 to {current}"
            raise PolicyValidationError([FieldError("version", msg)])
        return build_policy(document)

    async def diff(self, v1: int, v2: int | None = None) -> list[FieldChange]:
        """Return the stored fields that differ from version ``v1`` to ``v2`` (default: current).

        Raises:
            PolicyValidationError: no such version, or an argument is no version number.
        """
        _check_number("v1", v1)
        _check_number("v2", v2, optional=True)
        old = await self.version_at(v1)
        new = await self.version_at(v2) if v2 is not None else await load_latest(self._writer.backend)
        return list(diff_policies(old, new))

    # -- writes --------------------------------------------------------------

    async def switch_mode(
        self,
        mode: RiskMode | str,
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
        expires_in: float | timedelta | None = None,
    ) -> Policy:
        """Make ``mode`` the active mode. A looser mode needs an admin.

        With ``expires_in`` (seconds, or a timedelta), the mode is active until
        then and the mode active before returns at that moment in every process.

        Returns:
            The new policy; the current one, its version unchanged, when the write changes nothing.

        Raises:
            PolicyValidationError: no such mode, an empty reason, or a lifetime
                that is no number of seconds above 0 and up to 31 days.
            VersionConflictError: ``expected_version`` is not the current version.
            PermissionDeniedError: the switch raises risk and the actor is no admin.
            StoreUnavailableError: the store cannot be reached; nothing changed.
        """
        name = _mode_name(mode)
        return await self._writer.write(
            lambda base: apply_patch(base, {"active_mode": name}),
            f"switching to mode {name}",
            updated_by,
            reason,
            expected_version,
            actor,
            keys=("active_mode",),
            expires_in=expires_in,
        )

    async def update(
        self,
        changes: Mapping[str, Any],
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
        expires_in: float | timedelta | None = None,
    ) -> Policy:
        """Apply path -> value ``changes`` as one new version, all or nothing.

        Without ``expected_version`` a concurrent write is not an error: the
        changes are applied again on the newer version, so neither is lost.

        With ``expires_in`` (seconds, or a timedelta) the changes are in force
        until then; from that moment every process reads the values they
        replaced, and the first that can write records the return. A write to
        a path an expiring change holds replaces it there: for good, or, with a
        lifetime of its own, returning to the value that change would have
        returned to. A loosening needs an admin with a lifetime as without one.

        Raises:
            UnknownPathError, PolicyValidationError, VersionConflictError,
            PermissionDeniedError, StoreUnavailableError: as for :meth:`switch_mode`.
        """
        patch = dict(changes)
        return await self._writer.write(
            lambda base: apply_patch(base, patch),
            "this change",
            updated_by,
            reason,
            expected_version,
            actor,
            keys=[str(path) for path in patch],
            expires_in=expires_in,
        )

    async def set_emergency_mode(
        self,
        active: bool,
        *,
        reason: str,
        updated_by: str | None = None,
        expected_version: int | None = None,
        actor: Actor | None = None,
        expires_in: float | timedelta | None = None,
    ) -> Policy:
        """Turn the kill switch on (any operator) or off (admins only).

        The store records who turned it on and when (``emergency.activated_by``
        and ``emergency.activated_at``); turning it on again while it is on keeps
        that record and replaces the reason.

        With ``expires_in``, the kill switch returns to its earlier state at the
        end. Turning it on for a limited time needs an admin: its end turns it
        off, which only an admin may do (a kill switch that turns itself off
        must be meant). Turning it off for a limited time needs an admin, as
        turning it off does; its end turns it on again.

        Args:
            active: True to stop new trades, False to allow them again.
            reason: why; required, and kept as ``emergency.reason`` while on.
            updated_by: the author to record when no ``actor`` is given.
            expected_version: fail unless the store is at this version.
            actor: who writes, with which role.
            expires_in: the write's lifetime (seconds, or a timedelta), or None for good.

        Returns:
            The new policy; the current one, its version unchanged, when the write changes nothing.

        Raises:
            PolicyValidationError: an empty reason, or an unfit lifetime.
            VersionConflictError: ``expected_version`` is not the current version.
            PermissionDeniedError: turning it off, or on for a limited time, without the admin role.
            StoreUnavailableError: the store cannot be reached; nothing changed.
        """
        patch: dict[str, Any] = (
            {"emergency.active": True, "emergency.reason": reason}
            if active
            else {"emergency.active": False, "emergency.reason": None}
        )
        action = "turning the kill switch on" if active else "turning the kill switch off"
        return await self._writer.write(
            lambda base: apply_patch(base, patch),
            action,
            updated_by,
            reason,
            expected_version,
            actor,
            keys=tuple(patch),
            expires_in=expires_in,
        )

    async def rollback(
        self,
        version: int,
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
    ) -> Policy:
        """Write a new version equal in content to ``version``. Admins only.

        Works even when the newest stored version is invalid, so a corrupted
        store can be repaired by rolling back to a good version.

        Args:
            version: the version whose content to restore.
            updated_by: the author to record when no ``actor`` is given.
            reason: why; required.
            expected_version: fail unless the store is at this version.
            actor: who writes, with which role.

        Returns:
            The new policy; the current one, its version unchanged, when the write changes nothing.

        Raises:
            PermissionDeniedError: the actor is no admin.
            PolicyValidationError: no such version, or an empty reason.
            VersionConflictError: ``expected_version`` is not the current version.
            StoreUnavailableError: the store cannot be reached; nothing changed.
        """
        (actor or self._writer.actor).require(Role.ADMIN, "rolling back")
        _check_number("version", version)
        target = await self.version_at(version)
        return await self._writer.write(
            lambda base: dataclasses.replace(target, version=base.version),
            f"rolling back to version {version}",
            updated_by,
            reason,
            expected_version,
            actor,
            replaces_whole=True,
        )

    async def replace_policy(
        self,
        document: Mapping[str, Any],
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
    ) -> Policy:
        """Replace the whole document (an import) as one new version.

        The document is validated before anything is written. Its metadata
        (version, author, time, reason) and the kill switch's activation record
        are ignored: the store sets them. Works even when the newest stored
        version is invalid.

        Raises:
            PolicyValidationError: the document breaks a rule (every failure is
                listed), or an empty reason.
            VersionConflictError, PermissionDeniedError, StoreUnavailableError:
                as for :meth:`switch_mode`.
        """
        data = {k: v for k, v in document.items() if k not in RECORD_FIELDS}
        imported = build_policy(data)
        return await self._writer.write(
            lambda base: dataclasses.replace(imported, version=base.version),
            "importing a policy",
            updated_by,
            reason,
            expected_version,
            actor,
            replaces_whole=True,
        )
