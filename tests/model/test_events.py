"""Change events and history entries: kinds, contents and round trips."""

from __future__ import annotations

from datetime import UTC, datetime

from policystore import EventType, FieldChange, HistoryEntry, PolicyChanged
from policystore.model.events import events_for

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class TestEventsFor:
    """Which events one write publishes."""

    def test_events_for_plain_update_only_updated(self) -> None:
        """A change of a limit publishes policy.updated only."""
        entry = HistoryEntry(3, AT, "ann", "tighten", (FieldChange("modes.NORMAL.max_leverage", 5.0, 4.0),))
        events = events_for(entry, 2)
        assert [EventType.UPDATED] == [e.type for e in events]
        assert (3, 2, "ann", "tighten", AT) == (
            events[0].version,
            events[0].previous_version,
            events[0].by,
            events[0].reason,
            events[0].at,
        )
        assert {"modes.NORMAL.max_leverage": 5.0} == events[0].previous
        assert {"modes.NORMAL.max_leverage": 4.0} == events[0].new

    def test_events_for_mode_and_kill_switch_all_kinds(self) -> None:
        """A mode switch and a kill-switch flip add their own events after policy.updated."""
        entry = HistoryEntry(
            5,
            AT,
            "bob",
            "storm",
            (FieldChange("active_mode", "NORMAL", "DEFENSIVE"), FieldChange("emergency.active", old=False, new=True)),
        )
        kinds = [e.type.value for e in events_for(entry, 4)]
        assert ["policy.updated", "policy.mode.changed", "policy.emergency"] == kinds


class TestRoundTrips:
    """Events and entries survive a trip through plain data."""

    def test_policy_changed_round_trip_equal(self) -> None:
        """from_dict(to_dict(e)) == e, and the dict carries a type key and an id."""
        change = FieldChange("emergency.active", old=False, new=True)
        event = PolicyChanged(EventType.EMERGENCY, 7, 6, AT, "ops", "loss", (change,))
        data = event.to_dict()
        assert "policy.emergency" == data["type"]
        assert "7:policy.emergency" == data["event_id"]
        assert event == PolicyChanged.from_dict(data)

    def test_history_entry_round_trip_equal(self) -> None:
        """A history entry round-trips and lists its changed paths."""
        entry = HistoryEntry(2, AT, "ann", "why", (FieldChange("a", 1, 2), FieldChange("b", None, "x")))
        assert entry == HistoryEntry.from_dict(entry.to_dict())
        assert ("a", "b") == entry.changed_paths
