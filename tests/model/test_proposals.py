"""Where a proposal stands, worked out from its records, the history and the clock (pure: no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policystore import FieldChange, HistoryEntry, ProposalStatus
from policystore.model.proposals import approval_key, settle, touched_paths, touches

MADE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _record(**more: Any) -> dict[str, Any]:
    record = {
        "id": "abc123",
        "changes": {"modes.NORMAL.max_leverage": 6.0},
        "base_version": 4,
        "proposed_by": "ada",
        "reason": "event window",
        "created_at": MADE.isoformat(),
        "expires_at": (MADE + timedelta(hours=24)).isoformat(),
        "raises_risk": ["modes.NORMAL.max_leverage"],
        "paths": ["modes.NORMAL.max_leverage"],
        "diff": [{"path": "modes.NORMAL.max_leverage", "old": 5.0, "new": 6.0}],
    }
    return record | more


def _approval(name: str, minutes: int) -> dict[str, Any]:
    return {"kind": "approval", "proposal": "abc123", "by": name, "at": (MADE + timedelta(minutes=minutes)).isoformat()}


def _entry(version: int, *paths: str, proposal: str | None = None, approved_by: tuple[str, ...] = ()) -> HistoryEntry:
    changes = tuple(FieldChange(p, 1, 2) for p in paths)
    return HistoryEntry(version, MADE, "someone", "why", changes, approved_by=approved_by, proposal=proposal)


def _settle(
    steps: list[dict[str, Any]] = (),  # type: ignore[assignment]
    entries: list[HistoryEntry] = (),  # type: ignore[assignment]
    *,
    current: int = 4,
    at: datetime = MADE + timedelta(hours=1),
    **record: Any,
) -> Any:
    return settle(_record(**record), steps, entries, current_version=current, approvals_required=2, now=at)


class TestStatus:
    """One status per state, in the order the module documents."""

    def test_new_proposal_is_pending_with_its_approvals_in_order(self) -> None:
        """Approvals are listed oldest first, each admin once; one more is missing of two."""
        proposal = _settle([_approval("bea", 5), _approval("ada", 0)])

        assert ProposalStatus.PENDING is proposal.status
        assert ("ada", "bea") == proposal.approved_by
        assert 0 == proposal.approvals_missing
        assert 1 == _settle([_approval("ada", 0)]).approvals_missing

    def test_version_naming_the_proposal_makes_it_applied_with_the_approvers_it_records(self) -> None:
        """The history entry that names the proposal is the proof it applied, whatever the records say."""
        entry = _entry(6, "modes.NORMAL.max_leverage", proposal="abc123", approved_by=("ada", "bea"))

        proposal = _settle([_approval("ada", 0)], [entry], current=6)

        assert (ProposalStatus.APPLIED, 6, ("ada", "bea")) == (
            proposal.status,
            proposal.applied_version,
            proposal.approved_by,
        )

    def test_rejection_outcome_makes_it_rejected_with_who_and_why(self) -> None:
        """The outcome record of a rejection names its author and reason."""
        outcome = {"kind": "outcome", "proposal": "abc123", "status": "rejected", "by": "bea", "reason": "too much"}

        proposal = _settle([_approval("ada", 0), outcome])

        assert (ProposalStatus.REJECTED, "bea", "too much") == (
            proposal.status,
            proposal.decided_by,
            proposal.decision_reason,
        )

    def test_claimed_outcome_without_a_version_stays_pending(self) -> None:
        """An approver's claim to apply it is not an application: until a version names it, it is pending."""
        claim = {"kind": "outcome", "proposal": "abc123", "status": "applied", "by": "bea"}

        assert ProposalStatus.PENDING is _settle([claim]).status

    def test_proposal_past_its_lifetime_is_expired(self) -> None:
        """At or after expires_at, a proposal that was not applied or rejected is expired."""
        at = MADE + timedelta(hours=24)

        assert ProposalStatus.EXPIRED is _settle([_approval("ada", 0)], at=at).status
        assert ProposalStatus.PENDING is _settle([_approval("ada", 0)], at=at - timedelta(seconds=1)).status

    def test_later_write_to_a_path_it_touches_makes_it_stale(self) -> None:
        """A version after the base that changed the proposal's path: stale, naming that version."""
        proposal = _settle([], [_entry(5, "modes.NORMAL.max_leverage")], current=5)

        assert (ProposalStatus.STALE, 5) == (proposal.status, proposal.stale_version)

    def test_later_write_to_other_paths_leaves_it_pending(self) -> None:
        """A write elsewhere (another mode, the kill switch) does not change what the approvers saw."""
        entries = [_entry(5, "modes.DEFENSIVE.max_leverage"), _entry(6, "emergency.active", "emergency.reason")]

        assert ProposalStatus.PENDING is _settle([], entries, current=6).status

    def test_write_at_or_before_the_base_version_does_not_count(self) -> None:
        """Only versions after the base count; the base itself is what the proposal was made on."""
        assert ProposalStatus.PENDING is _settle([], [_entry(4, "modes.NORMAL.max_leverage")], current=5).status

    def test_store_gone_back_before_the_base_makes_it_stale(self) -> None:
        """A store restored to before the proposal's version no longer holds what it was made on."""
        proposal = _settle([], [], current=3)

        assert (ProposalStatus.STALE, None) == (proposal.status, proposal.stale_version)


class TestPaths:
    """Which writes touch a proposal."""

    def test_whole_mode_patch_is_touched_by_any_of_its_fields(self) -> None:
        """A proposal that adds a mode whole is touched by a write to any field under it."""
        paths = touched_paths(["modes.EVENT"], [FieldChange("modes.EVENT.max_leverage", None, 4.0)])

        assert touches(paths, ["modes.EVENT.max_positions"])
        assert not touches(paths, ["modes.EVENTS.max_positions"])
        assert not touches(paths, ["modes.NORMAL.max_leverage"])

    @pytest.mark.parametrize(("name", "other"), [("ada", "Ada"), ("a" * 300, "a" * 299), ("bob/../x", "bob")])
    def test_each_approver_has_a_key_of_its_own_within_the_key_limit(self, name: str, other: str) -> None:
        """Keys differ for different names, whatever their length or characters, and fit a record key."""
        key = approval_key("abc123", name)

        assert key != approval_key("abc123", other)
        assert len(key) <= 256
        assert key.isprintable()


class TestEvents:
    """A write that applied a proposal says so in its events, in every process that installs it."""

    def test_entry_naming_a_proposal_adds_a_proposal_event_after_the_change_events(self) -> None:
        """policy.updated first, then policy.proposal (step applied) with the approvers; it round-trips."""
        from policystore.model.events import EventType, PolicyChanged, events_for

        entry = _entry(6, "modes.NORMAL.max_leverage", proposal="abc123", approved_by=("ada", "bea"))

        events = events_for(entry, 5)

        assert [EventType.UPDATED, EventType.PROPOSAL] == [e.type for e in events]
        step = events[1]
        assert {"id": "abc123", "step": "applied", "status": "applied", "approved_by": ["ada", "bea"]} == step.proposal
        assert step == PolicyChanged.from_dict(step.to_dict())
        assert "6:policy.proposal:abc123:applied" == step.event_id
        assert events[0].event_id != step.event_id

    def test_ordinary_entry_round_trips_without_proposal_fields(self) -> None:
        """An entry of an ordinary write is stored as it always was: no proposal keys."""
        entry = _entry(3, "active_mode")

        assert {"version", "at", "by", "reason", "changes"} == set(entry.to_dict())
        assert entry == HistoryEntry.from_dict(entry.to_dict())
