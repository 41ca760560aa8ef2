"""Previews in the model: the effective values a change moves, its risk, the role and approvals it needs."""

from __future__ import annotations

import pytest

from policystore import Actor, ApprovalRequiredError, PermissionDeniedError, Role
from policystore.model.changes import apply_patch
from policystore.model.policy import default_policy
from policystore.model.previews import preview_change
from policystore.model.roles import authorize_change

ADMIN = Actor("ada", Role.ADMIN)
OPERATOR = Actor("otto", Role.OPERATOR)


def _changes(preview: object) -> dict[str, tuple[object, object]]:
    return {c.path: (c.old, c.new) for c in preview.changes}  # type: ignore[attr-defined]


class TestEffectiveChanges:
    """What readers would see change, not only the stored fields."""

    def test_mode_switch_lists_active_limits_and_every_strategy_that_follows_the_mode(self) -> None:
        """A switch to DEFENSIVE moves risk.*, ai.* and strategies' effective values; history records only the mode."""
        base = default_policy()

        preview = preview_change(OPERATOR, base, apply_patch(base, {"active_mode": "DEFENSIVE"}), action="switching")

        changes = _changes(preview)
        assert (5.0, 3.0) == changes["risk.max_leverage"]
        assert (True, False) == changes["ai.enable_clm"]
        assert (5.0, 3.0) == changes["strategies.aggressive.max_leverage"]
        assert ["active_mode"] == [c.path for c in preview.stored_changes]

    def test_default_instrument_limit_changes_every_instrument_that_falls_back_to_it(self) -> None:
        """A limit set on instruments.default shows on an instrument whose own entry does not set that field."""
        base = apply_patch(default_policy(), {"instruments.BTC.max_order_quantity": 2.0})

        preview = preview_change(
            OPERATOR, base, apply_patch(base, {"instruments.default.max_order_notional": 5000.0}), action="this"
        )

        changes = _changes(preview)
        assert (None, 5000.0) == changes["instruments.default.max_order_notional"]
        assert (None, 5000.0) == changes["instruments.BTC.max_order_notional"]
        assert preview.raises_risk == ()

    def test_change_that_holds_what_is_held_changes_nothing(self) -> None:
        """Setting a value to what it is makes no version: the preview says so."""
        base = default_policy()

        preview = preview_change(ADMIN, base, apply_patch(base, {"modes.NORMAL.max_leverage": 5.0}), action="this")

        assert (False, ()) == (preview.changed, preview.changes)


class TestVerdict:
    """Role, approvals and the refusal are the write's own rule."""

    def test_tightening_needs_an_operator_and_no_approval(self) -> None:
        """An operator may tighten at once, whatever approvals_required is."""
        base = apply_patch(default_policy(), {"change_control.approvals_required": 3})

        preview = preview_change(OPERATOR, base, apply_patch(base, {"modes.NORMAL.max_leverage": 4.0}), action="this")

        assert (Role.OPERATOR, 0, True, None, False) == (
            preview.required_role,
            preview.approvals_required,
            preview.allowed,
            preview.refusal,
            preview.proposal_required,
        )

    @pytest.mark.parametrize("actor", [ADMIN, OPERATOR])
    def test_loosening_under_two_approvals_needs_a_proposal_and_says_the_writes_refusal(self, actor: Actor) -> None:
        """The refusal is the sentence the write itself would raise; the preview counts the admins needed."""
        base = apply_patch(default_policy(), {"change_control.approvals_required": 2})
        result = apply_patch(base, {"modes.NORMAL.max_leverage": 6.0})

        preview = preview_change(actor, base, result, action="this change")

        with pytest.raises(ApprovalRequiredError) as caught:
            authorize_change(actor, base, result, "this change")
        assert (Role.ADMIN, 2, False, True) == (
            preview.required_role,
            preview.approvals_required,
            preview.allowed,
            preview.proposal_required,
        )
        assert str(caught.value) == preview.refusal
        assert "modes.NORMAL.max_leverage" in preview.raises_risk

    def test_rollback_needs_an_admin_even_when_it_only_tightens(self) -> None:
        """admin_only: one admin, whatever the change; an operator's preview is refused for its role."""
        base = default_policy()
        result = apply_patch(base, {"active_mode": "DEFENSIVE"})

        admin = preview_change(ADMIN, base, result, action="rolling back", admin_only=True)
        operator = preview_change(OPERATOR, base, result, action="rolling back", admin_only=True)

        assert (Role.ADMIN, 1, True) == (admin.required_role, admin.approvals_required, admin.allowed)
        assert not operator.allowed
        assert str(PermissionDeniedError("otto", "operator", "admin", "rolling back")) == operator.refusal

    def test_to_dict_is_json_ready_and_leaves_the_policies_out(self) -> None:
        """The dict form names every fact the CLI and HTTP answers carry, without the two policies."""
        base = default_policy()
        data = preview_change(ADMIN, base, apply_patch(base, {"active_mode": "DEFENSIVE"}), action="x").to_dict()

        assert {
            "dry_run",
            "action",
            "base_version",
            "changed",
            "changes",
            "stored_changes",
            "raises_risk",
            "required_role",
            "approvals_required",
            "proposal_required",
            "allowed",
            "refusal",
            "stale",
            "decisions",
        } == set(data)
        assert "operator" == data["required_role"]
