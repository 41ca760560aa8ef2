"""The writes that replace the whole document, rollback and import, and the one path every write takes.

Both work even when the newest stored version is invalid: that is how a
damaged store is repaired. Every write of the store, these and those of
:mod:`~policystore.store.writes`, goes through :meth:`Restores._write`: the
write itself, or with ``dry_run`` (or inside
:func:`~policystore.store.previewing.previewing`) its preview.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from typing import Any, Literal, overload

from policystore.model.policy import RECORD_FIELDS, Policy
from policystore.model.previews import Preview
from policystore.model.roles import Actor, Role
from policystore.model.validation import build_policy
from policystore.store.audit import Audit, check_number
from policystore.store.previewing import Previewed, is_previewing

__all__ = ["Restores"]


class Restores(Audit):
    """Rollback and import of :class:`~policystore.store.store.PolicyStore`, and the path of every write.

    Args:
        writer: the store's write loop.
    """

    async def _write(  # noqa: PLR0917 - the facts every write passes, in Writer.write's order
        self,
        change: Callable[[Policy], Policy],
        action: str,
        updated_by: str | None,
        reason: str,
        expected_version: int | None,
        actor: Actor | None,
        *,
        dry_run: bool,
        replaces_whole: bool = False,
        admin_only: bool = False,
        keys: Collection[str] = (),
        expires_in: float | timedelta | None = None,
    ) -> Policy | Preview:
        """Make the write, or with ``dry_run`` answer its preview (inside ``previewing()``, raise it)."""
        if dry_run or is_previewing():
            preview = await self._writer.preview(
                change,
                action,
                updated_by,
                expected_version,
                actor,
                replaces_whole=replaces_whole,
                keys=keys,
                expires_in=expires_in,
                admin_only=admin_only,
            )
            if not dry_run:
                raise Previewed(preview)
            return preview
        return await self._writer.write(
            change,
            action,
            updated_by,
            reason,
            expected_version,
            actor,
            replaces_whole=replaces_whole,
            keys=keys,
            expires_in=expires_in,
        )

    @overload
    async def rollback(
        self,
        version: int,
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        dry_run: Literal[False] = ...,
    ) -> Policy: ...
    @overload
    async def rollback(
        self,
        version: int,
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        dry_run: Literal[True],
    ) -> Preview: ...
    @overload
    async def rollback(
        self,
        version: int,
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        dry_run: bool,
    ) -> Policy | Preview: ...
    async def rollback(
        self,
        version: int,
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> Policy | Preview:
        """Write a new version equal in content to ``version``. Admins only.

        Works even when the newest stored version is invalid, so a corrupted
        store can be repaired by rolling back to a good version.

        Args:
            version: the version whose content to restore.
            updated_by: the author to record when no ``actor`` is given.
            reason: why; required.
            expected_version: fail unless the store is at this version.
            actor: who writes, with which role.
            dry_run: write nothing; return what the write would do (and whether this actor may).

        Returns:
            The new policy; the current one, its version unchanged, when the write changes nothing;
            with ``dry_run``, the preview.

        Raises:
            PermissionDeniedError: the actor is no admin.
            PolicyValidationError: no such version, or an empty reason.
            VersionConflictError: ``expected_version`` is not the current version.
            StoreUnavailableError: the store cannot be reached; nothing changed.
        """
        if not (dry_run or is_previewing()):  # a preview says who may, rather than refuse
            (actor or self._writer.actor).require(Role.ADMIN, "rolling back")
        check_number("version", version)
        target = await self.version_at(version)
        return await self._write(
            lambda base: dataclasses.replace(target, version=base.version),
            f"rolling back to version {version}",
            updated_by,
            reason,
            expected_version,
            actor,
            dry_run=dry_run,
            replaces_whole=True,
            admin_only=True,
        )

    @overload
    async def replace_policy(
        self,
        document: Mapping[str, Any],
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        dry_run: Literal[False] = ...,
    ) -> Policy: ...
    @overload
    async def replace_policy(
        self,
        document: Mapping[str, Any],
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        dry_run: Literal[True],
    ) -> Preview: ...
    @overload
    async def replace_policy(
        self,
        document: Mapping[str, Any],
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        dry_run: bool,
    ) -> Policy | Preview: ...
    async def replace_policy(
        self,
        document: Mapping[str, Any],
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> Policy | Preview:
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
        return await self._write(
            lambda base: dataclasses.replace(imported, version=base.version),
            "importing a policy",
            updated_by,
            reason,
            expected_version,
            actor,
            dry_run=dry_run,
            replaces_whole=True,
        )
