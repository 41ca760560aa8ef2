"""Who may change what: roles, the acting principal, and the rule that only admins raise risk.

A change that raises risk needs an admin, and as many distinct admins as the
policy's ``change_control.approvals_required`` says, counted as in force before
the change (so lowering that number needs the approvals it lowers). A write
carries one approval when an admin makes it; a proposal carries those of every
admin who approved it (see :mod:`policystore.model.proposals`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from policystore.errors import ApprovalRequiredError, PermissionDeniedError
from policystore.model.policy import Policy
from policystore.model.risk_direction import risk_increases

__all__ = ["Actor", "Role", "approvals_needed", "authorize_change"]


class Role(StrEnum):
    """Roles in increasing power: a viewer reads, an operator lowers risk, an admin does all."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < operator < admin."""
        return _RANK[self]


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
#: How many raised paths a refusal names before it says "and N more".
_SHOWN = 3


@dataclass(frozen=True, slots=True)
class Actor:
    """The principal a write is made for: its name goes into history as the author."""

    name: str
    role: Role = Role.ADMIN

    def require(self, role: Role, action: str) -> None:
        """Raise unless this actor has at least ``role``.

        Raises:
            PermissionDeniedError: the actor's role is lower.
        """
        if self.role.rank < role.rank:
            raise PermissionDeniedError(self.name, self.role.value, role.value, action)


def approvals_needed(old: Policy, raised: Sequence[str], *, admin_only: bool = False) -> int:
    """Return how many distinct admins must agree to a change from ``old`` that raises ``raised``.

    Args:
        old: the policy the change is made on; its approvals are the ones in force.
        raised: the paths the change raises risk in (see :func:`~policystore.model.risk_direction.risk_increases`).
        admin_only: the change needs an admin whatever it changes (a rollback).

    Returns:
        ``change_control.approvals_required`` for a change that raises risk, 1 for
        one that needs an admin only, 0 for one any operator may make.
    """
    if raised:
        return old.change_control.approvals_required
    return 1 if admin_only else 0


def authorize_change(
    actor: Actor,
    old: Policy,
    new: Policy,
    action: str,
    *,
    approvals: int | None = None,
    raised: Sequence[str] | None = None,
) -> None:
    """Check that ``actor`` may turn ``old`` into ``new``, with ``approvals`` admins agreeing.

    Any write needs an operator; a write that raises risk (see
    :func:`policystore.model.risk_direction.risk_increases`) needs an admin, and
    ``old.change_control.approvals_required`` distinct admins.

    Args:
        actor: who writes.
        old: the version the change is made on.
        new: the version it would make.
        action: what the write does, for a refusal.
        approvals: how many distinct admins agreed; by default the actor's own
            write: 1 for an admin, 0 for anyone else.
        raised: the paths ``risk_increases(old, new)`` returns, when the caller has them.

    Raises:
        PermissionDeniedError: the actor may not make this change.
        ApprovalRequiredError: the change raises risk and fewer admins agreed than
            ``change_control.approvals_required`` (a :class:`PermissionDeniedError`).
    """
    actor.require(Role.OPERATOR, action)
    needed = old.change_control.approvals_required
    if raised is None and approvals is None and needed <= 1 and actor.role.rank >= Role.ADMIN.rank:
        return  # one admin may raise risk: whether this write does needs no working out
    raised = risk_increases(old, new) if raised is None else raised
    if not raised:
        return
    given = (1 if actor.role is Role.ADMIN else 0) if approvals is None else approvals
    if needed > 1 and given < needed:
        # Before the role check: an operator may propose what it may not write.
        raise ApprovalRequiredError(actor.name, actor.role.value, action, needed, given, raised)
    more = len(raised) - _SHOWN
    shown = ", ".join(raised[:_SHOWN]) + (f" and {more} more" if more > 0 else "")
    actor.require(Role.ADMIN, f"{action} raises risk ({shown}) and")
