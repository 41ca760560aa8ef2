"""The bodies the ``/v1`` routes answer with: the policy, values, previews, proposals, history and the fleet.

The routes declare these as their answers (an error's body is :class:`ErrorBody`),
so the OpenAPI schema describes every field from them. A model made from a
store object (a change, a preview, a proposal, a history entry) has an ``of``
constructor that copies it.
The bodies the routes take are in :mod:`policystore.server.request_bodies`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.previews import Preview
from policystore.model.proposals import Proposal

__all__ = [
    "ChangeModel",
    "DiffResponse",
    "ErrorBody",
    "FleetAckModel",
    "FleetMemberModel",
    "FleetResponse",
    "HistoryEntryModel",
    "HistoryResponse",
    "PathsResponse",
    "PolicyResponse",
    "PreviewResponse",
    "ProposalModel",
    "ProposalsResponse",
    "StateInForce",
    "ValueResponse",
    "WrittenResponse",
]


class ErrorBody(BaseModel):
    """Every error's body: the error class, one sentence, and the error's facts."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="The error class, such as VersionConflictError.")
    detail: str = Field(description="What was wrong, in one sentence.")


class PolicyResponse(BaseModel):
    """The whole policy with its version and where it was read from."""

    version: int
    source: str = Field(description="store, last_known_good, environment or default.")
    stale: bool = Field(description="True when the live store could not be read.")
    policy: dict[str, Any] = Field(description="The policy document.")
    effective: dict[str, Any] = Field(
        default_factory=dict,
        description="Derived values readers see: strategies.<name>.<field> under the active mode "
        "(unset fields from the mode, overrides clamped to it); under trading and instruments, every trading "
        "state and limit in force with the path that set it ({state, set_by, scope} or {value, set_by}).",
    )


class FleetMemberModel(BaseModel):
    """One process that follows the store (see :class:`~policystore.model.fleet.FleetMember`)."""

    member_id: str
    name: str = Field(description="The name the process opened its store with; by default its program's name.")
    host: str
    pid: int
    version: int = Field(description="The version it has applied.")
    stale: bool = Field(description="Whether it answered from a fallback, not the live store, when it reported.")
    last_heard: datetime = Field(description="When it last reported, by its own clock.")
    lag_versions: int = Field(description="How many versions it is behind.")
    lag_seconds: float = Field(description="Seconds since it was last heard.")
    status: Literal["live", "lost"] = Field(description="lost: not heard for 5 s; it holds up no wait.")
    error: str | None = Field(description="Why its reports fail, for the server itself when they do.")


class FleetAckModel(BaseModel):
    """How far the fleet got with a write's version, when the write asked to wait."""

    version: int
    complete: bool = Field(description="Every live member applied the version or a newer one.")
    acked: list[FleetMemberModel]
    missing: list[FleetMemberModel] = Field(description="Live members that had not, when the wait ran out.")
    lost: list[FleetMemberModel] = Field(description="Members not heard for 5 s: they held up nothing.")
    waited: float = Field(description="Seconds waited.")
    unread: str | None = Field(default=None, description="Why the fleet's records could not be read, if they were not.")


class WrittenResponse(PolicyResponse):
    """The policy after a write, with the fleet's confirmation when the write asked to wait."""

    fleet: FleetAckModel | None = Field(default=None, description="Present when the body had 'wait'.")


class FleetResponse(BaseModel):
    """Every process that follows the store."""

    version: int = Field(description="The store's current version.")
    members: list[FleetMemberModel]
    live: int
    lost: int
    behind: int = Field(description="Live members that have not applied the current version.")


class StateInForce(BaseModel):
    """A trading state in force and what decided it."""

    state: str = Field(description="active, reducing or halted.")
    set_by: str = Field(description="The path that decided it, such as trading.state or emergency.active.")
    scope: str = Field(description="firm, kill switch, strategy, instrument or default.")


class ValueResponse(BaseModel):
    """One value with its source and version (and, for a trading path, what set it)."""

    path: str
    value: Any
    source: str
    version: int
    stale: bool
    detail: str
    set_by: str | None = Field(
        default=None,
        description="For an instrument's field or a firm-wide limit: the path whose value answers "
        "(its own, instruments.default's or a hard cap); null when none applies or for another path.",
    )
    in_force: StateInForce | None = Field(
        default=None,
        description="For a trading state: the state in force and the scope that decided it "
        "(an instrument's: for an order from any strategy; a strategy's: before any instrument's).",
    )
    expires_at: datetime | None = Field(
        default=None, description="When the expiring change that set the value ends; null when none is in force."
    )
    expiring_version: int | None = Field(default=None, description="The version that made that change, or null.")


class PathsResponse(BaseModel):
    """Every valid dot path."""

    paths: list[str]


class ChangeModel(BaseModel):
    """One field before and after a write."""

    path: str
    old: Any
    new: Any

    @classmethod
    def of(cls, change: FieldChange) -> ChangeModel:
        """Build from a :class:`FieldChange`."""
        return cls(path=change.path, old=change.old, new=change.new)


class PreviewResponse(BaseModel):
    """What a write would do, answered instead of writing when the body says ``"dry_run": true``."""

    dry_run: Literal[True] = True
    action: str = Field(description="What the write is, in a few words.")
    changed: bool = Field(description="Whether the write would make a new version at all.")
    changes: list[ChangeModel] = Field(
        description="Every effective value that would change (risk.*, ai.*, strategies.*, instruments.* included), "
        "by path."
    )
    raises_risk: list[str] = Field(description="The paths whose change lets the system take more risk.")
    required_role: Literal["operator", "admin"] = Field(description="The least role that may make this change.")
    approvals_required: int = Field(
        description="How many distinct admins must agree: 0 for a change any operator may make, "
        "change_control.approvals_required for one that raises risk."
    )
    proposal_required: bool = Field(description="True when it must be proposed (POST /v1/proposals) and approved.")
    allowed: bool = Field(description="Whether the caller may make it now, as one write.")
    refusal: str | None = Field(default=None, description="Why not, in the sentence the write would be refused with.")
    base_version: int = Field(description="The version the preview was made on; send it as expected_version.")
    stale: bool = Field(description="True when that version is this server's fallback copy, not the live store's.")
    decisions: dict[str, Any] | None = Field(
        default=None,
        description="With the server's decision log: signals decided again, how many would be decided otherwise "
        "(by_reason: 'old -> new' counts), resized, reproduced, a few examples.",
    )

    @classmethod
    def of(cls, preview: Preview) -> PreviewResponse:
        """Build from a store's :class:`~policystore.model.previews.Preview`."""
        data = preview.to_dict()
        return cls(
            action=data["action"],
            changed=data["changed"],
            changes=[ChangeModel.of(c) for c in preview.changes],
            raises_risk=data["raises_risk"],
            required_role=data["required_role"],
            approvals_required=data["approvals_required"],
            proposal_required=data["proposal_required"],
            allowed=data["allowed"],
            refusal=data["refusal"],
            base_version=data["base_version"],
            stale=data["stale"],
            decisions=data["decisions"],
        )


class ProposalModel(BaseModel):
    """A proposal and where it stands."""

    id: str
    status: Literal["pending", "applied", "rejected", "expired", "stale"]
    changes: dict[str, Any] = Field(description="Path -> value, as proposed.")
    base_version: int = Field(description="The version it was made on.")
    proposed_by: str
    approved_by: list[str] = Field(description="The admins who approved it, in order.")
    approvals_required: int = Field(description="How many admins must agree to it under the newest version.")
    approvals_missing: int
    reason: str
    created_at: datetime
    expires_at: datetime
    raises_risk: list[str]
    diff: list[ChangeModel] = Field(description="The stored fields it changed from its base version, when made.")
    applied_version: int | None = None
    decided_by: str | None = Field(default=None, description="Who rejected it.")
    decision_reason: str | None = None
    stale_version: int | None = Field(default=None, description="The version whose change made it stale.")
    fleet: FleetAckModel | None = Field(
        default=None, description="Present when an approval with 'wait' applied it: how far the fleet got."
    )

    @classmethod
    def of(cls, proposal: Proposal) -> ProposalModel:
        """Build from a :class:`~policystore.model.proposals.Proposal`."""
        data = proposal.to_dict()
        data["diff"] = [ChangeModel.of(c) for c in proposal.diff]
        data["created_at"], data["expires_at"] = proposal.created_at, proposal.expires_at
        for dropped in ("paths", "expires_in"):
            del data[dropped]
        return cls(**data)


class ProposalsResponse(BaseModel):
    """Proposals of every status, newest first."""

    proposals: list[ProposalModel]


class HistoryEntryModel(BaseModel):
    """One write of the audit trail."""

    version: int
    at: datetime
    by: str = Field(description="The author: the name of the token that made the change.")
    reason: str
    changes: list[ChangeModel]

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryEntryModel:
        """Build from a :class:`HistoryEntry`."""
        return cls(
            version=entry.version,
            at=entry.at,
            by=entry.by,
            reason=entry.reason,
            changes=[ChangeModel.of(c) for c in entry.changes],
        )


class HistoryResponse(BaseModel):
    """History entries, newest first."""

    entries: list[HistoryEntryModel]


class DiffResponse(BaseModel):
    """Fields that differ between two versions."""

    v1: int
    v2: int
    changes: list[ChangeModel]
