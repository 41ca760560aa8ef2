"""The proposals of :class:`~policystore.store.sync.SyncPolicyStore`: one line per method over the async store."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeVar, overload

from policystore.model.previews import Preview
from policystore.model.proposals import DEFAULT_LIFETIME, Proposal
from policystore.model.roles import Actor
from policystore.store.store import PolicyStore

__all__ = ["SyncProposals"]

T = TypeVar("T")


class SyncProposals:
    """The blocking proposals of the facade; it provides ``_store`` and ``_call``."""

    _store: PolicyStore

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError  # pragma: no cover - the facade runs the coroutine on its loop

    def proposals(self) -> list[Proposal]:
        """See :meth:`PolicyStore.proposals`."""
        return self._call(self._store.proposals())

    def proposal(self, proposal_id: str) -> Proposal:
        """See :meth:`PolicyStore.proposal`."""
        return self._call(self._store.proposal(proposal_id))

    @overload
    def propose(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str,
        by: str | None = ...,
        expires_in: float | timedelta | None = ...,
        lifetime: float = ...,
        actor: Actor | None = ...,
        dry_run: Literal[False] = ...,
    ) -> Proposal: ...
    @overload
    def propose(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str,
        by: str | None = ...,
        expires_in: float | timedelta | None = ...,
        lifetime: float = ...,
        actor: Actor | None = ...,
        dry_run: Literal[True],
    ) -> Preview: ...
    @overload
    def propose(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str,
        by: str | None = ...,
        expires_in: float | timedelta | None = ...,
        lifetime: float = ...,
        actor: Actor | None = ...,
        dry_run: bool,
    ) -> Proposal | Preview: ...
    def propose(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str,
        by: str | None = None,
        expires_in: float | timedelta | None = None,
        lifetime: float = DEFAULT_LIFETIME,
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> Proposal | Preview:
        """See :meth:`PolicyStore.propose`."""
        return self._call(
            self._store.propose(
                changes,
                reason=reason,
                by=by,
                expires_in=expires_in,
                lifetime=lifetime,
                actor=actor,
                dry_run=dry_run,
            )
        )

    @overload
    def approve(
        self, proposal_id: str, *, by: str | None = ..., actor: Actor | None = ..., dry_run: Literal[False] = ...
    ) -> Proposal: ...
    @overload
    def approve(
        self, proposal_id: str, *, by: str | None = ..., actor: Actor | None = ..., dry_run: Literal[True]
    ) -> Preview: ...
    @overload
    def approve(
        self, proposal_id: str, *, by: str | None = ..., actor: Actor | None = ..., dry_run: bool
    ) -> Proposal | Preview: ...
    def approve(
        self, proposal_id: str, *, by: str | None = None, actor: Actor | None = None, dry_run: bool = False
    ) -> Proposal | Preview:
        """See :meth:`PolicyStore.approve`."""
        return self._call(self._store.approve(proposal_id, by=by, actor=actor, dry_run=dry_run))

    def reject(
        self,
        proposal_id: str,
        *,
        by: str | None = None,
        reason: str,
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> Proposal:
        """See :meth:`PolicyStore.reject`."""
        return self._call(self._store.reject(proposal_id, by=by, reason=reason, actor=actor, dry_run=dry_run))
