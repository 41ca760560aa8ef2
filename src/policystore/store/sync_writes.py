"""The writes, the audit trail and the proposals of :class:`~policystore.store.sync.SyncPolicyStore`.

One line per method over the async store (:class:`~policystore.store.store.PolicyStore`),
with the same parameters; a write's ``dry_run=True`` answers a
:class:`~policystore.model.previews.Preview`, as the async store's does.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeVar, overload

from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.modes import RiskMode
from policystore.model.policy import Policy
from policystore.model.previews import Preview
from policystore.model.roles import Actor
from policystore.store.store import PolicyStore

__all__ = ["SyncWrites"]

T = TypeVar("T")


class SyncWrites:
    """The blocking writes, audit and proposals of the facade; it provides ``_store`` and ``_call``."""

    _store: PolicyStore

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError  # pragma: no cover - the facade runs the coroutine on its loop

    def history(self, limit: int = 50, before: int | None = None) -> list[HistoryEntry]:
        """See :meth:`PolicyStore.history`."""
        return self._call(self._store.history(limit, before))

    def version_at(self, version: int) -> Policy:
        """See :meth:`PolicyStore.version_at`."""
        return self._call(self._store.version_at(version))

    def diff(self, v1: int, v2: int | None = None) -> list[FieldChange]:
        """See :meth:`PolicyStore.diff`."""
        return self._call(self._store.diff(v1, v2))

    @overload
    def switch_mode(
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
    def switch_mode(
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
    def switch_mode(
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
    def switch_mode(
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
        """See :meth:`PolicyStore.switch_mode`."""
        return self._call(
            self._store.switch_mode(
                mode,
                updated_by=updated_by,
                reason=reason,
                expected_version=expected_version,
                actor=actor,
                expires_in=expires_in,
                dry_run=dry_run,
            )
        )

    @overload
    def update(
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
    def update(
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
    def update(
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
    def update(
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
        """See :meth:`PolicyStore.update`."""
        return self._call(
            self._store.update(
                changes,
                updated_by=updated_by,
                reason=reason,
                expected_version=expected_version,
                actor=actor,
                expires_in=expires_in,
                dry_run=dry_run,
            )
        )

    @overload
    def set_emergency_mode(
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
    def set_emergency_mode(
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
    def set_emergency_mode(
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
    def set_emergency_mode(
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
        """See :meth:`PolicyStore.set_emergency_mode`."""
        return self._call(
            self._store.set_emergency_mode(
                active,
                reason=reason,
                updated_by=updated_by,
                expected_version=expected_version,
                actor=actor,
                expires_in=expires_in,
                dry_run=dry_run,
            )
        )

    @overload
    def rollback(
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
    def rollback(
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
    def rollback(
        self,
        version: int,
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        dry_run: bool,
    ) -> Policy | Preview: ...
    def rollback(
        self,
        version: int,
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> Policy | Preview:
        """See :meth:`PolicyStore.rollback`."""
        return self._call(
            self._store.rollback(
                version,
                updated_by=updated_by,
                reason=reason,
                expected_version=expected_version,
                actor=actor,
                dry_run=dry_run,
            )
        )

    @overload
    def replace_policy(
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
    def replace_policy(
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
    def replace_policy(
        self,
        document: Mapping[str, Any],
        *,
        updated_by: str | None = ...,
        reason: str,
        expected_version: int | None = ...,
        actor: Actor | None = ...,
        dry_run: bool,
    ) -> Policy | Preview: ...
    def replace_policy(
        self,
        document: Mapping[str, Any],
        *,
        updated_by: str | None = None,
        reason: str,
        expected_version: int | None = None,
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> Policy | Preview:
        """See :meth:`PolicyStore.replace_policy`."""
        return self._call(
            self._store.replace_policy(
                document,
                updated_by=updated_by,
                reason=reason,
                expected_version=expected_version,
                actor=actor,
                dry_run=dry_run,
            )
        )
