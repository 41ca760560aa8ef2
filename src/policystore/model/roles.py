"""Who may change what: roles, the acting principal, and the rule that only admins raise risk."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policystore.errors import PermissionDeniedError
from policystore.model.changes import risk_increases
from policystore.model.policy import Policy

__all__ = ["Actor", "Role", "authorize_change"]


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


def authorize_change(actor: Actor, old: Policy, new: Policy, action: str) -> None:
    """Check that ``actor`` may turn ``old`` into ``new``.

    Any write needs an operator; a write that raises risk (see
    :func:`policystore.model.changes.risk_increases`) needs an admin.

    Raises:
        PermissionDeniedError: the actor may not make this change.
    """
    actor.require(Role.OPERATOR, action)
    if actor.role.rank >= Role.ADMIN.rank:
        return  # an admin may raise risk: whether this write does needs no working out
    raised = risk_increases(old, new)
    if raised:
        more = len(raised) - _SHOWN
        shown = ", ".join(raised[:_SHOWN]) + (f" and {more} more" if more > 0 else "")
        actor.require(Role.ADMIN, f"{action} raises risk ({shown}) and")
