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

Every write takes ``dry_run=True``: it is then checked as the write would be,
and answers a :class:`~policystore.model.previews.Preview` of what it would
do, writing nothing (see :meth:`Writer.preview
<policystore.store.writer.Writer.preview>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal, overload

from policystore.model.changes import apply_patch
from policystore.model.modes import RiskMode
from policystore.model.policy import Policy
from policystore.model.previews import Preview
from policystore.model.roles import Actor
from policystore.store.previewing import is_previewing
from policystore.store.restores import Restores

__all__ = ["Writes"]


def _mode_name(mode: RiskMode | str) -> str:
    return mode.value if isinstance(mode, RiskMode) else str(mode)


class Writes(Restores):
    """The writes of :class:`~policystore.store.store.PolicyStore` (and its restores and audit trail).

    Args:
        writer: the store's write loop.
    """

    # -- writes --------------------------------------------------------------

    @overload
    async def switch_mode(
        self,
        mode: RiskMode | str,
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: Literal[False] = ...,
    ) -> Policy: ...
    @overload
    async def switch_mode(
        self,
        mode: RiskMode | str,
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: Literal[True],
    ) -> Preview: ...
    @overload
    async def switch_mode(
        self,
        mode: RiskMode | str,
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: bool,
    ) -> Policy | Preview: ...
    async def switch_mode(
        self,
        mode: RiskMode | str,
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
        expires_in: float | timedelta | None = None,
        dry_run: bool = False,
    ) -> Policy | Preview:
        """Make ``mode`` the active mode. A looser mode needs an admin.

        With ``expires_in`` (seconds, or a timedelta), the mode is active until
        then and the mode active before returns at that moment in every process.
        With ``dry_run``, write nothing and return what the switch would do (so for every write below).

        Returns:
            The new policy; the current one, its version unchanged, when the write changes nothing;
            with ``dry_run``, the preview.

        Raises:
            PolicyValidationError: no such mode, an empty reason, or a lifetime
                that is no number of seconds above 0 and up to 31 days.
            VersionConflictError: ``expected_version`` is not the current version.
            PermissionDeniedError: the switch raises risk and the actor is no admin
                (:class:`~policystore.errors.ApprovalRequiredError` when more admins must agree).
            StoreUnavailableError: the store cannot be reached; nothing changed.
        """
        name = _mode_name(mode)
        return await self._write(
            lambda base: apply_patch(base, {"active_mode": name}),
            f"switching to mode {name}",
            updated_by,
            reason,
            expected_version,
            actor,
            dry_run=dry_run,
            keys=("active_mode",),
            expires_in=expires_in,
        )

    @overload
    async def update(
        self,
        changes: Mapping[str, Any],
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: Literal[False] = ...,
    ) -> Policy: ...
    @overload
    async def update(
        self,
        changes: Mapping[str, Any],
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: Literal[True],
    ) -> Preview: ...
    @overload
    async def update(
        self,
        changes: Mapping[str, Any],
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: bool,
    ) -> Policy | Preview: ...
    async def update(
        self,
        changes: Mapping[str, Any],
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
        expires_in: float | timedelta | None = None,
        dry_run: bool = False,
    ) -> Policy | Preview:
        """Apply path -> value ``changes`` as one new version, all or nothing.

        Without ``expected_version`` a concurrent write is not an error: the
        changes are applied again on the newer version, so neither is lost.

        With ``expires_in`` (seconds, or a timedelta) the changes are in force
        until then; from that moment every process reads the values they
        replaced, and the first that can write records the return. A write to
        a path an expiring change holds replaces it there: for good, or, with a
        lifetime of its own, returning to the value that change would have
        returned to. A loosening needs an admin with a lifetime as without one
        (and the approvals ``change_control.approvals_required`` asks for).

        Raises:
            UnknownPathError, PolicyValidationError, VersionConflictError,
            PermissionDeniedError, StoreUnavailableError: as for :meth:`switch_mode`.
        """
        patch = dict(changes)
        return await self._write(
            lambda base: apply_patch(base, patch),
            "this change",
            updated_by,
            reason,
            expected_version,
            actor,
            dry_run=dry_run,
            keys=[str(path) for path in patch],
            expires_in=expires_in,
        )

    @overload
    async def set_emergency_mode(
        self,
        active: bool,
        *,
        reason: str,
        updated_by: str | None = ...,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: Literal[False] = ...,
    ) -> Policy: ...
    @overload
    async def set_emergency_mode(
        self,
        active: bool,
        *,
        reason: str,
        updated_by: str | None = ...,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: Literal[True],
    ) -> Preview: ...
    @overload
    async def set_emergency_mode(
        self,
        active: bool,
        *,
        reason: str,
        updated_by: str | None = ...,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        expires_in: float | timedelta | None = ...,
        dry_run: bool,
    ) -> Policy | Preview: ...
    async def set_emergency_mode(
        self,
        active: bool,
        *,
        reason: str,
        updated_by: str | None = None,
        expected_version: int | None = None,
        actor: Actor | None = None,
        expires_in: float | timedelta | None = None,
        dry_run: bool = False,
    ) -> Policy | Preview:
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
            dry_run: write nothing; return what the write would do.

        Returns:
            The new policy; the current one, its version unchanged, when the write changes nothing;
            with ``dry_run``, the preview.

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
        if active and not reason and (dry_run or is_previewing()):
            patch["emergency.reason"] = "(reason to be given)"  # the reason is the kill switch's own field
        action = "turning the kill switch on" if active else "turning the kill switch off"
        return await self._write(
            lambda base: apply_patch(base, patch),
            action,
            updated_by,
            reason,
            expected_version,
            actor,
            dry_run=dry_run,
            keys=tuple(patch),
            expires_in=expires_in,
        )
