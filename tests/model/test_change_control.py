"""Change control in the model: ``change_control.approvals_required``, its direction, and the rule that needs it.

The rule is checked over random changes with hypothesis: whatever a change
does, it is refused to a writer with fewer admins agreeing than the version
before it requires exactly when it raises risk, and a change that only
tightens is an operator's to make whatever the number.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policystore import (
    Actor,
    ApprovalRequiredError,
    PermissionDeniedError,
    PolicyValidationError,
    Role,
)
from policystore.model.change_control import APPROVALS_PATH, MAX_APPROVALS
from policystore.model.changes import apply_patch, risk_increases, writable_paths
from policystore.model.paths import flatten
from policystore.model.policy import Policy, default_policy
from policystore.model.roles import approvals_needed, authorize_change
from policystore.model.validation import build_policy

ADMIN = Actor("ada", Role.ADMIN)
OPERATOR = Actor("otto", Role.OPERATOR)
#: Mode limits with a value looser and a value stricter than the built-in NORMAL's.
LIMITS: dict[str, tuple[Any, Any]] = {
    "max_leverage": (6.0, 4.0),
    "max_risk_pct_per_trade": (0.02, 0.01),
    "max_positions": (40, 20),
    "global_min_confidence": (0.4, 0.6),
    "scaling_factor": (1.2, 0.8),
}


def _with_approvals(required: int) -> Policy:
    return apply_patch(default_policy(), {APPROVALS_PATH: required})


class TestSection:
    """The section as stored, read and validated."""

    def test_document_without_the_section_reads_as_one_approval(self) -> None:
        """A document written before change control existed holds no change_control: it reads as 1."""
        document = copy.deepcopy(default_policy().document())
        document.pop("change_control", None)

        policy = build_policy(document)

        assert 1 == policy.change_control.approvals_required

    def test_one_approval_writes_no_section_and_more_write_it(self) -> None:
        """At its default the section is left out, so a reader that predates it reads the document as before."""
        one = default_policy()
        two = apply_patch(one, {APPROVALS_PATH: 2})

        assert "change_control" not in one.document()
        assert {"approvals_required": 2} == two.document()["change_control"]
        assert "change_control" not in apply_patch(two, {APPROVALS_PATH: 1}).document()
        assert two == build_policy(two.document())

    def test_new_policy_requires_one_approval_and_path_is_readable_and_writable(self) -> None:
        """The built-in policy needs one admin; the path is in the read table and may be patched."""
        policy = default_policy()

        assert 1 == flatten(policy)[APPROVALS_PATH]
        assert APPROVALS_PATH in writable_paths(policy)
        assert 3 == apply_patch(policy, {APPROVALS_PATH: 3}).change_control.approvals_required

    @pytest.mark.parametrize("value", [0, -1, MAX_APPROVALS + 1, True, "two", 1.5, None])
    def test_out_of_range_or_non_integer_number_is_refused_naming_the_path(self, value: Any) -> None:
        """0, negatives, more than the most, booleans, words, fractions and null are no number of admins."""
        with pytest.raises(PolicyValidationError) as caught:
            apply_patch(default_policy(), {APPROVALS_PATH: value})

        assert [APPROVALS_PATH] == list(caught.value.paths)


class TestDirection:
    """More approvals required is stricter; fewer is looser."""

    @given(old=st.integers(1, MAX_APPROVALS), new=st.integers(1, MAX_APPROVALS))
    @settings(max_examples=60, deadline=None)
    def test_lowering_raises_risk_and_raising_does_not(self, old: int, new: int) -> None:
        """The path is among the raised ones exactly when the number goes down."""
        before, after = _with_approvals(old), _with_approvals(new)

        raised = risk_increases(before, after)

        assert (APPROVALS_PATH in raised) == (new < old)
        assert (raised == []) == (new >= old)

    @given(old=st.integers(1, MAX_APPROVALS), new=st.integers(1, MAX_APPROVALS))
    @settings(max_examples=60, deadline=None)
    def test_operator_may_raise_the_number_and_nobody_lowers_it_without_the_approvals_in_force(
        self, old: int, new: int
    ) -> None:
        """Raising: an operator's. Lowering: admins, as many as the number before the change."""
        before, after = _with_approvals(old), _with_approvals(new)

        if new >= old:
            authorize_change(OPERATOR, before, after, "this")
            return
        with pytest.raises(PermissionDeniedError):
            authorize_change(OPERATOR, before, after, "this")
        authorize_change(ADMIN, before, after, "this", approvals=old)
        if old > 1:
            with pytest.raises(ApprovalRequiredError) as caught:
                authorize_change(ADMIN, before, after, "this", approvals=old - 1)
            assert (old, old - 1, [APPROVALS_PATH]) == (
                caught.value.approvals_required,
                caught.value.approvals,
                list(caught.value.raises_risk),
            )


@st.composite
def mode_changes(draw: st.DrawFn) -> dict[str, Any]:
    """One to three NORMAL mode limits, each moved the loose or the strict way."""
    fields = draw(st.lists(st.sampled_from(sorted(LIMITS)), min_size=1, max_size=3, unique=True))
    return {f"modes.NORMAL.{f}": LIMITS[f][0 if draw(st.booleans()) else 1] for f in fields}


class TestApprovalsRule:
    """With 2 or more approvals required, a risk-raising change needs that many admins; tightening needs none."""

    @given(required=st.integers(1, 4), change=mode_changes(), approvals=st.integers(0, 5))
    @settings(max_examples=120, deadline=None)
    def test_change_refused_exactly_when_it_raises_risk_with_too_few_admins(
        self, required: int, change: dict[str, Any], approvals: int
    ) -> None:
        """Refused with ApprovalRequiredError iff it raises risk, 2+ are required and fewer agreed."""
        before = _with_approvals(required)
        after = apply_patch(before, change)
        raised = risk_increases(before, after)

        try:
            authorize_change(ADMIN, before, after, "this change", approvals=approvals)
        except ApprovalRequiredError:
            refused = True
        else:
            refused = False

        assert refused == bool(raised and required > 1 and approvals < required)
        assert approvals_needed(before, raised) == (required if raised else 0)

    @given(required=st.integers(2, 4), change=mode_changes())
    @settings(max_examples=60, deadline=None)
    def test_operator_gets_approval_required_for_raising_and_writes_tightening_at_once(
        self, required: int, change: dict[str, Any]
    ) -> None:
        """An operator's own write: a tightening applies; a loosening is refused and told to propose it."""
        before = _with_approvals(required)
        after = apply_patch(before, change)

        if not risk_increases(before, after):
            authorize_change(OPERATOR, before, after, "this change")
            return
        with pytest.raises(ApprovalRequiredError) as caught:
            authorize_change(OPERATOR, before, after, "this change")
        assert "propose it" in str(caught.value)
        assert ("otto", "operator", "admin", 0) == (
            caught.value.actor,
            caught.value.role,
            caught.value.required_role,
            caught.value.approvals,
        )

    def test_one_approval_required_keeps_the_rule_of_before(self) -> None:
        """With 1 required, an admin's own write raises risk and an operator's is refused for its role alone."""
        before = default_policy()
        after = apply_patch(before, {"modes.NORMAL.max_leverage": 6.0})

        authorize_change(ADMIN, before, after, "this change")
        with pytest.raises(PermissionDeniedError) as caught:
            authorize_change(OPERATOR, before, after, "this change")
        assert not isinstance(caught.value, ApprovalRequiredError)


class TestErrorFacts:
    """ApprovalRequiredError is answered as the permission refusal it is."""

    def test_approval_required_is_a_permission_refusal_exit_6_and_403(self) -> None:
        """Same exit status and HTTP status as PermissionDeniedError; its body names the approvals."""
        error = ApprovalRequiredError("ada", "admin", "this change", 2, 1, ["risk.max_leverage"])

        assert isinstance(error, PermissionDeniedError)
        assert (6, 403) == (error.exit_code, error.http_status)
        assert {"approvals_required": 2, "approvals": 1, "raises_risk": ["risk.max_leverage"]}.items() <= (
            error.body_facts().items()
        )
