"""Previews: what a write would do, computed from the pure model functions without writing anything.

The dashboard's confirm dialogs ask for one before the reason is typed (every
write route takes ``"dry_run": true``). A preview applies the change to the
server's snapshot exactly as the store would (:func:`apply_patch`, the kill
switch's stamp), lists every effective value that would change, which of them
raise risk (:func:`risk_increases`), and whether the caller's role may make the
change (:func:`authorize_change`, the rule every write is checked by).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, Final

from policystore.errors import PermissionDeniedError, VersionConflictError
from policystore.model.changes import risk_increases, stamp_emergency
from policystore.model.history import FieldChange
from policystore.model.paths import METADATA_PATHS, flatten
from policystore.model.policy import STRATEGY_FIELDS, Policy
from policystore.model.roles import Actor, Role, authorize_change
from policystore.model.trading_view import in_force
from policystore.server.models import ChangeModel, PreviewResponse

__all__ = ["effective_changes", "effective_values", "preview"]

#: The record of a version (its number, time, author, reason): set by the store on every write, not a change.
_RECORD: Final = frozenset(METADATA_PATHS) - {"active_mode"}


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def effective_values(policy: Policy) -> dict[str, Any]:
    """Return what readers see that the document does not hold: each strategy's effective config, the controls in force.

    Returns:
        ``{"strategies": {name: {field: value}}}``, as ``strategies.<name>.<field>``
        answers, with ``trading`` and ``instruments``: every trading state and
        limit in force with the path that set it (see
        :func:`~policystore.model.trading_view.in_force`).
    """
    strategies = {}
    for name in policy.strategies:
        effective = policy.strategy(name)
        strategies[name] = {field: getattr(effective, field) for field in STRATEGY_FIELDS}
    return {"strategies": strategies, **in_force(policy)}


def effective_changes(old: Policy, new: Policy) -> list[FieldChange]:
    """Return every readable value that differs from ``old`` to ``new``, by path.

    Unlike :func:`~policystore.model.changes.diff_policies` (the stored fields),
    this is what a reader sees: a mode switch changes ``risk.*``, ``ai.*`` and
    every strategy's effective values, not only ``active_mode``.
    """
    before, after = flatten(old), flatten(new)
    changes = []
    for path in sorted((before.keys() | after.keys()) - _RECORD):
        a, b = _json(before.get(path)), _json(after.get(path))
        if a != b or (path in before) != (path in after):
            changes.append(FieldChange(path, a, b))
    return changes


def preview(
    actor: Actor,
    base: Policy,
    change: Callable[[Policy], Policy],
    *,
    action: str,
    now: datetime,
    stale: bool,
    expected_version: int | None = None,
    admin_only: bool = False,
) -> PreviewResponse:
    """Return what ``change`` would do to ``base`` if ``actor`` wrote it now.

    Args:
        actor: who asks; ``allowed`` answers for this actor's role.
        base: the version the change would be made on (the server's snapshot).
        change: the write's pure change, as the store applies it.
        action: what the write is, for the roles rule ("switching to mode DEFENSIVE").
        now: the time the kill switch's stamp would carry.
        stale: whether ``base`` is a fallback copy rather than the live store's version.
        expected_version: refuse, as the write would, unless ``base`` is at this version.
        admin_only: the write needs an admin whatever it changes (a rollback).

    Returns:
        The preview.

    Raises:
        VersionConflictError: ``expected_version`` is not ``base``'s version.
        UnknownPathError, PolicyValidationError: the change is invalid, as the write would be.
    """
    if expected_version is not None and expected_version != base.version:
        raise VersionConflictError(expected_version, base.version)
    candidate = stamp_emergency(base, change(base), now, actor.name)
    raised = risk_increases(base, candidate)
    required = Role.ADMIN if raised or admin_only else Role.OPERATOR
    try:
        if admin_only:
            actor.require(Role.ADMIN, action)
        authorize_change(actor, base, candidate, action)
    except PermissionDeniedError:
        allowed = False
    else:
        allowed = True
    return PreviewResponse(
        changes=[ChangeModel.of(c) for c in effective_changes(base, candidate)],
        raises_risk=raised,
        required_role="admin" if required is Role.ADMIN else "operator",
        allowed=allowed,
        base_version=base.version,
        stale=stale,
    )
