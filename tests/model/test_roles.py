"""Roles: who may write, who may raise risk."""

from __future__ import annotations

import pytest

from policystore import Actor, PermissionDeniedError, Role
from policystore.model.changes import apply_patch
from policystore.model.policy import default_policy
from policystore.model.roles import authorize_change

BASE = default_policy()
TIGHTER = apply_patch(BASE, {"modes.NORMAL.max_leverage": 4.0})
LOOSER = apply_patch(BASE, {"modes.NORMAL.max_leverage": 6.0})


class TestAuthorizeChange:
    """authorize_change for each role and direction."""

    def test_authorize_change_viewer_any_write_denied(self) -> None:
        """A viewer may not write at all, even to lower risk."""
        with pytest.raises(PermissionDeniedError) as caught:
            authorize_change(Actor("v", Role.VIEWER), BASE, TIGHTER, "this change")
        assert ("v", "viewer", "operator") == (caught.value.actor, caught.value.role, caught.value.required_role)

    def test_authorize_change_operator_lower_allowed(self) -> None:
        """An operator may lower risk."""
        authorize_change(Actor("o", Role.OPERATOR), BASE, TIGHTER, "this change")

    def test_authorize_change_operator_raise_denied(self) -> None:
        """An operator may not raise risk; the error names the raised path."""
        with pytest.raises(PermissionDeniedError) as caught:
            authorize_change(Actor("o", Role.OPERATOR), BASE, LOOSER, "this change")
        assert "admin" == caught.value.required_role
        assert "modes.NORMAL.max_leverage" in str(caught.value)

    def test_authorize_change_admin_raise_allowed(self) -> None:
        """An admin may raise risk."""
        authorize_change(Actor("a", Role.ADMIN), BASE, LOOSER, "this change")

    def test_role_rank_ordered(self) -> None:
        """viewer < operator < admin."""
        assert [0, 1, 2] == [Role.VIEWER.rank, Role.OPERATOR.rank, Role.ADMIN.rank]
