"""Expiring changes in the model: what is in force at a moment, the section's checks, and who may write one."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from policystore import Actor, PermissionDeniedError, Policy, PolicyValidationError, Role
from policystore.model.changes import apply_patch, diff_policies, unchanged
from policystore.model.expiry import authorize_timeline, in_force, next_end, overrides_for, with_lifetime
from policystore.model.overrides import lifetime_seconds
from policystore.model.paths import flatten
from policystore.model.policy import default_policy
from policystore.model.validation import build_policy, build_policy_json

NOW = datetime(2025, 3, 12, 12, 30, tzinfo=UTC)
HOUR = 3600.0
OPERATOR = Actor("otto", Role.OPERATOR)
ADMIN = Actor("ada", Role.ADMIN)


def base(version: int = 3, **patch: Any) -> Policy:
    """The built-in policy as version ``version``, with ``patch`` applied (dots written as __)."""
    policy = dataclasses.replace(default_policy(), version=version)
    changes = {key.replace("__", "."): value for key, value in patch.items()}
    return apply_patch(policy, changes) if changes else policy


def timed(
    policy: Policy, patch: dict[str, Any], seconds: float | None, *, at: datetime = NOW, by: str = "ada"
) -> Policy:
    """``patch`` written on ``policy`` as a store writes it: with ``seconds`` of lifetime (None: for good)."""
    plain = dataclasses.replace(policy, overrides=())
    candidate = apply_patch(plain, patch)
    result = with_lifetime(policy, candidate, keys=list(patch), expires_in=seconds, at=at, by=by, reason="why")
    return dataclasses.replace(result, version=policy.version + 1)


class TestInForce:
    """The policy in force is the stored one with every change past its end returned; nothing is written."""

    def test_values_return_at_the_end_and_not_before(self) -> None:
        """Until the end the new value is in force; at the end, exactly, the value it replaced."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        end = NOW + timedelta(hours=1)
        assert policy is in_force(policy, end - timedelta(microseconds=1))
        returned = in_force(policy, end)
        assert (8.0, 5.0) == (policy.risk.max_leverage, returned.risk.max_leverage)
        assert () == returned.overrides
        assert (policy.version, policy.updated_at) == (returned.version, returned.updated_at)

    def test_a_mode_added_for_a_while_is_removed_at_the_end(self) -> None:
        """A whole mode added with a lifetime is gone after its end; one removed for a while comes back whole."""
        event = dataclasses.asdict(default_policy().modes["NORMAL"])
        added = timed(base(), {"modes.EVENT": event}, HOUR)
        assert "EVENT" in added.modes
        assert "EVENT" not in in_force(added, NOW + timedelta(hours=2)).modes
        with_event = apply_patch(base(), {"modes.EVENT": event})
        removed = timed(with_event, {"modes.EVENT": None}, HOUR)
        assert "EVENT" not in removed.modes
        assert with_event.modes["EVENT"] == in_force(removed, NOW + timedelta(hours=2)).modes["EVENT"]

    def test_changes_end_in_turn(self) -> None:
        """Two changes with different ends: the first end returns only its own values."""
        first = timed(base(), {"modes.NORMAL.max_leverage": 6.0}, HOUR)
        both = timed(first, {"active_mode": "DEFENSIVE"}, 2 * HOUR, at=NOW + timedelta(minutes=1))
        middle = in_force(both, NOW + timedelta(minutes=90))
        assert ("DEFENSIVE", 5.0) == (middle.active_mode, middle.modes["NORMAL"].max_leverage)
        after = in_force(both, NOW + timedelta(hours=3))
        assert ("NORMAL", 5.0) == (after.active_mode, after.modes["NORMAL"].max_leverage)
        assert NOW + timedelta(hours=1) == next_end(both)
        assert NOW + timedelta(minutes=121) == next_end(middle)

    def test_overrides_path_lists_the_changes_in_force(self) -> None:
        """``overrides`` is a readable path answering the changes the policy holds."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        listed = flatten(policy)["overrides"]
        assert [(4, {"modes.NORMAL.max_leverage": 8.0}, {"modes.NORMAL.max_leverage": 5.0})] == [
            (change.version, dict(change.values), dict(change.replaced)) for change in listed
        ]
        assert () == flatten(in_force(policy, NOW + timedelta(hours=1)))["overrides"]

    def test_risk_paths_name_the_change_that_set_them(self) -> None:
        """``risk.max_leverage`` answers from the active mode: a change to that mode, or to the mode, sets it."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        assert [4] == [c.version for c in overrides_for(policy, "risk.max_leverage")]
        assert [4] == [c.version for c in overrides_for(policy, "strategies.aggressive.max_leverage")]
        assert () == overrides_for(policy, "risk.max_positions")


class TestTheSection:
    """The overrides section is validated like the rest of the document."""

    def test_a_document_without_the_section_has_none_and_none_is_written(self) -> None:
        """Stored documents from before the section read as holding none, and a policy with none leaves it out."""
        document = base().document()
        assert "overrides" not in document
        assert () == build_policy(document).overrides
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        assert policy == build_policy_json(json.dumps(policy.document()))

    def test_a_change_whose_value_the_document_does_not_hold_is_refused(self) -> None:
        """A forged section naming a value the policy does not hold (it would return the wrong thing) is refused."""
        document = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR).document()
        document["overrides"][0]["values"]["modes.NORMAL.max_leverage"] = 9.0
        with pytest.raises(PolicyValidationError) as caught:
            build_policy(document)
        assert ["overrides.0.values.modes.NORMAL.max_leverage"] == list(caught.value.paths)

    @pytest.mark.parametrize(
        ("field", "value", "path"),
        [
            ("values", {"risk.max_leverage": 8.0}, "overrides.0.values.'risk.max_leverage'"),
            ("until", "2025-06-12T12:30:00+00:00", "overrides.0.until"),
            ("until", "2025-03-12T12:00:00+00:00", "overrides.0.until"),
        ],
    )
    def test_a_change_of_no_stored_path_or_an_end_out_of_bounds_is_refused(
        self, field: str, value: Any, path: str
    ) -> None:
        """A read-only path, an end more than 31 days after the write or before it: refused, naming where."""
        document = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR).document()
        document["overrides"][0][field] = value
        if field == "values":
            document["overrides"][0]["replaced"] = {"risk.max_leverage": 5.0}
        with pytest.raises(PolicyValidationError) as caught:
            build_policy(document)
        assert path in caught.value.paths

    def test_a_return_that_would_break_a_cap_is_refused_when_written(self) -> None:
        """A limit set on top of a cap raised for a while is refused: it would be invalid once the cap returns."""
        raised = timed(base(), {"hard_limits.max_leverage": 12.0}, HOUR)
        with pytest.raises(PolicyValidationError) as caught:
            timed(raised, {"modes.NORMAL.max_leverage": 11.0}, None)
        assert ["modes.NORMAL.max_leverage"] == list(caught.value.paths)
        assert "once the expiring change of version 4 ends" in str(caught.value)
        timed(raised, {"modes.NORMAL.max_leverage": 11.0}, HOUR / 2)  # ends first: fine


class TestWritesOnTheSamePaths:
    """A later write to a path an expiring change holds replaces it there."""

    def test_a_write_for_good_replaces_the_expiring_change(self) -> None:
        """Written again for good, even to the same value, the value no longer returns."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        kept = timed(policy, {"modes.NORMAL.max_leverage": 8.0}, None)
        assert () == kept.overrides
        assert 8.0 == in_force(kept, NOW + timedelta(days=1)).risk.max_leverage
        assert not unchanged(policy, kept)
        assert ["overrides.4"] == [c.path for c in diff_policies(policy, kept)]

    def test_a_write_to_another_path_keeps_it(self) -> None:
        """A write to other paths leaves the expiring change as it was."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        other = timed(policy, {"modes.NORMAL.max_positions": 20}, None)
        assert policy.overrides == other.overrides

    def test_a_timed_write_returns_to_the_value_for_good(self) -> None:
        """A timed write on a timed write returns to the value from before both, at its own end."""
        first = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        second = timed(first, {"modes.NORMAL.max_leverage": 7.0}, HOUR / 2, by="otto")
        assert [(5, {"modes.NORMAL.max_leverage": 5.0})] == [(c.version, dict(c.replaced)) for c in second.overrides]
        assert 5.0 == in_force(second, NOW + timedelta(minutes=30)).risk.max_leverage

    def test_a_timed_write_of_the_value_in_force_for_good_makes_no_change(self) -> None:
        """Writing the value already in force for good, with a lifetime, changes nothing."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 5.0}, HOUR)
        assert () == policy.overrides
        assert unchanged(base(), policy)


class TestAuthority:
    """A loosening needs an admin with a lifetime as without; the end of a tightening needs nobody."""

    def test_an_operator_cannot_loosen_for_an_hour_and_an_admin_can(self) -> None:
        """Raising leverage for an hour is a loosening: an operator is refused, an admin is not."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        with pytest.raises(PermissionDeniedError) as caught:
            authorize_timeline(OPERATOR, base(), policy, "this change")
        assert "modes.NORMAL.max_leverage" in str(caught.value)
        authorize_timeline(ADMIN, base(), policy, "this change")

    def test_an_operator_may_tighten_for_a_while(self) -> None:
        """A switch to a stricter mode for 30 minutes: its end brings back the mode in force before."""
        policy = timed(base(), {"active_mode": "DEFENSIVE"}, HOUR / 2, by="otto")
        authorize_timeline(OPERATOR, base(), policy, "switching to mode DEFENSIVE")

    def test_the_end_of_a_loosening_needs_nobody(self) -> None:
        """Returning from a temporary loosening is a tightening: no role is asked for it."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        authorize_timeline(Actor("nobody", Role.OPERATOR), policy, in_force(policy, NOW + timedelta(hours=1)), "end")

    def test_an_operator_cannot_make_a_temporary_loosening_last(self) -> None:
        """Writing the loosened value for good, or for longer, loosens what the end would have tightened."""
        policy = timed(base(), {"modes.NORMAL.max_leverage": 8.0}, HOUR)
        for seconds in (None, 2 * HOUR):
            lasting = timed(policy, {"modes.NORMAL.max_leverage": 7.0}, seconds, by="otto")
            with pytest.raises(PermissionDeniedError) as caught:
                authorize_timeline(OPERATOR, policy, lasting, "this change")
            assert "when an expiring change ends" in str(caught.value)
        shorter = timed(policy, {"modes.NORMAL.max_leverage": 7.0}, HOUR / 2, by="otto")
        authorize_timeline(OPERATOR, policy, shorter, "this change")

    def test_a_kill_switch_on_for_a_while_needs_an_admin(self) -> None:
        """Its end turns the kill switch off, which only an admin may do; for good, an operator may."""
        patch = {"emergency.active": True, "emergency.reason": "exchange outage"}
        for_a_while = timed(base(), patch, HOUR, by="otto")
        with pytest.raises(PermissionDeniedError) as caught:
            authorize_timeline(OPERATOR, base(), for_a_while, "turning the kill switch on")
        assert "its end turns it off" in str(caught.value)
        authorize_timeline(ADMIN, base(), for_a_while, "turning the kill switch on")
        authorize_timeline(OPERATOR, base(), timed(base(), patch, None, by="otto"), "turning the kill switch on")
        assert not in_force(for_a_while, NOW + timedelta(hours=1)).emergency.active


class TestLifetimes:
    """A lifetime is a number of seconds above 0 and at most 31 days."""

    @pytest.mark.parametrize("value", [90, 1.5, Decimal(30), timedelta(hours=2), 31 * 86400])
    def test_numbers_and_timedeltas_are_taken(self, value: Any) -> None:
        """Ints, floats, Decimals and timedeltas within the bounds are seconds."""
        seconds = lifetime_seconds(value)
        assert seconds == (value.total_seconds() if isinstance(value, timedelta) else float(value))

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            (0, "above 0"),
            (-5, "above 0"),
            (timedelta(0), "above 0"),
            (31 * 86400 + 1, "at most"),
            (math.inf, "number of seconds"),
            (math.nan, "number of seconds"),
            (True, "number of seconds"),
            ("3600", "number of seconds"),
            (10**400, "number of seconds"),
        ],
    )
    def test_anything_else_is_refused_naming_the_argument(self, value: Any, problem: str) -> None:
        """Non-positive, too long, not finite, a boolean or text: refused, with expires_in named."""
        with pytest.raises(PolicyValidationError) as caught:
            lifetime_seconds(value)
        assert ("expires_in",) == caught.value.paths
        assert problem in str(caught.value)
