"""Change events: what every process is told when the policy moves to a new version.

Events never change once made and round-trip through a dict with a ``type`` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from policystore.model.history import FieldChange, HistoryEntry

__all__ = ["EventType", "PolicyChanged", "events_for"]


class EventType(StrEnum):
    """The kinds of change event.

    ``policy.trading`` is a change of a trading state at any scope
    (``trading.state``, ``strategies.<name>.state``, ``instruments.<KEY>.state``);
    the kill switch has its own kind.

    ``policy.rejected`` is not a change: the store held a document that failed
    validation, the process refused it and keeps its last good version. Its
    ``version`` is the refused one and ``reason`` says why.

    ``policy.proposal`` is a step of a proposal (see
    :mod:`policystore.model.proposals`): made, approved, rejected, or applied.
    Its ``proposal`` holds the proposal's ``id``, the ``step`` and the proposal's
    ``status`` and ``approved_by`` after it; its ``changes`` are what the
    proposal changes, and ``version`` the policy's version when it happened (the
    version it made, when applied). The step ``applied`` is told in every
    process, from the version's history entry; the others in the process that
    took the step, and on its external event bus.
    """

    UPDATED = "policy.updated"
    MODE_CHANGED = "policy.mode.changed"
    EMERGENCY = "policy.emergency"
    TRADING = "policy.trading"
    REJECTED = "policy.rejected"
    PROPOSAL = "policy.proposal"


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    """The policy moved to ``version``: who, why, when and every changed value.

    ``event_id`` is ``"<version>:<type>"``, the same in every process, so a
    consumer that hears one change twice can tell; a ``policy.proposal`` event
    adds the proposal's id and step (and who approved, for an approval).
    """

    type: EventType
    version: int
    previous_version: int
    at: datetime
    by: str
    reason: str
    changes: tuple[FieldChange, ...]
    proposal: Mapping[str, Any] | None = None

    @property
    def event_id(self) -> str:
        """An id unique to this change and kind, equal in every process."""
        if self.proposal is None:
            return f"{self.version}:{self.type.value}"
        step = self.proposal.get("step")
        who = f":{self.by}" if step == "approved" else ""
        return f"{self.version}:{self.type.value}:{self.proposal.get('id')}:{step}{who}"

    @property
    def previous(self) -> dict[str, Any]:
        """The changed paths with their values before the change."""
        return {c.path: c.old for c in self.changes}

    @property
    def new(self) -> dict[str, Any]:
        """The changed paths with their values after the change."""
        return {c.path: c.new for c in self.changes}

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-ready data with a ``type`` key."""
        return {
            "type": self.type.value,
            "event_id": self.event_id,
            "version": self.version,
            "previous_version": self.previous_version,
            "at": self.at.isoformat(),
            "by": self.by,
            "reason": self.reason,
            "changes": [c.to_dict() for c in self.changes],
            "previous": self.previous,
            "new": self.new,
            **({} if self.proposal is None else {"proposal": dict(self.proposal)}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyChanged:
        """Rebuild an event from :meth:`to_dict` output.

        Raises:
            KeyError, ValueError: the data is not an event.
        """
        return cls(
            type=EventType(data["type"]),
            version=int(data["version"]),
            previous_version=int(data["previous_version"]),
            at=datetime.fromisoformat(data["at"]),
            by=str(data["by"]),
            reason=str(data["reason"]),
            changes=tuple(FieldChange.from_dict(c) for c in data.get("changes", ())),
            proposal=data.get("proposal"),
        )


def _state_changed(change: FieldChange) -> bool:
    """Whether ``change`` moved a trading state.

    A strategy added or removed has no state before or after; that counts as
    ``active``, so adding or removing an active strategy changes no state.
    """
    head, _, rest = change.path.partition(".")
    if head == "trading":
        return rest == "state"
    if head == "strategies" and rest.endswith(".state"):
        return (change.old or "active") != (change.new or "active")
    return head == "instruments" and rest.endswith(".state")


def events_for(entry: HistoryEntry, previous_version: int) -> list[PolicyChanged]:
    """Return the events one write publishes, ``policy.updated`` first.

    Args:
        entry: the write's history entry.
        previous_version: the version the write replaced.

    Returns:
        ``policy.updated``, then ``policy.mode.changed`` if the active mode
        changed, ``policy.emergency`` if the kill switch flipped and
        ``policy.trading`` if a trading state changed at any scope, and
        ``policy.proposal`` (step ``applied``) if the write applied a proposal.
    """
    kinds = [EventType.UPDATED]
    paths = set(entry.changed_paths)
    if "active_mode" in paths:
        kinds.append(EventType.MODE_CHANGED)
    if "emergency.active" in paths:
        kinds.append(EventType.EMERGENCY)
    if any(_state_changed(change) for change in entry.changes):
        kinds.append(EventType.TRADING)
    events = [
        PolicyChanged(
            type=kind,
            version=entry.version,
            previous_version=previous_version,
            at=entry.at,
            by=entry.by,
            reason=entry.reason,
            changes=entry.changes,
        )
        for kind in kinds
    ]
    if entry.proposal is not None:
        step = {"id": entry.proposal, "step": "applied", "status": "applied", "approved_by": list(entry.approved_by)}
        events.append(
            PolicyChanged(
                type=EventType.PROPOSAL,
                version=entry.version,
                previous_version=previous_version,
                at=entry.at,
                by=entry.by,
                reason=entry.reason,
                changes=entry.changes,
                proposal=step,
            )
        )
    return events
