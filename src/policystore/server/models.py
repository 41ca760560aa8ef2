"""The bodies the ``/v1`` routes take and answer with.

Request bodies are strict: unknown fields are refused (an author cannot be
smuggled in), a boolean is never read as an integer (``"expected_version":
true`` is not version 1), and every integer is bounded by what the back ends
and JSON clients hold exactly (:data:`MAX_INTEGER`), so an oversized number is
a 422 naming the field, not a failure deep in a back end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policystore.errors import FleetIncompleteError, VersionConflictError
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.overrides import MAX_LIFETIME
from policystore.model.previews import Preview
from policystore.model.proposals import Proposal

__all__ = [
    "MAX_INTEGER",
    "ChangeModel",
    "DiffResponse",
    "EmergencyRequest",
    "ErrorBody",
    "FleetAckModel",
    "FleetMemberModel",
    "FleetResponse",
    "HistoryEntryModel",
    "HistoryResponse",
    "ModeRequest",
    "PatchRequest",
    "PathsResponse",
    "PolicyResponse",
    "PreviewResponse",
    "ProposalModel",
    "ProposalsResponse",
    "ProposeRequest",
    "RejectRequest",
    "ReviewRequest",
    "RollbackRequest",
    "StateInForce",
    "TradingRequest",
    "ValueResponse",
    "WrittenResponse",
]

#: The largest integer the API takes: 2**53, the last one a JSON client's float (JavaScript's
#: number) and every back end (SQLite's INTEGER, Redis's Lua numbers) hold exactly.
MAX_INTEGER: Final = 2**53


class ErrorBody(BaseModel):
    """Every error's body: the error class, one sentence, and the error's facts."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="The error class, such as VersionConflictError.")
    detail: str = Field(description="What was wrong, in one sentence.")


Version = Annotated[int, Field(ge=1, le=MAX_INTEGER)]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="Why; recorded in history.")]
ExpectedVersion = Annotated[
    Version | None,
    Field(
        default=None,
        description=f"Write only if the store is at this version (else {VersionConflictError.http_status}).",
    ),
]
ExpiresIn = Annotated[
    float | None,
    Field(
        default=None,
        gt=0,
        le=MAX_LIFETIME.total_seconds(),
        description="Seconds the change is in force (at most 31 days); then every process returns to the values "
        "from before it, and the store records the return. Omit for a change for good.",
    ),
]
DryRun = Annotated[
    bool,
    Field(
        default=False,
        description="True: write nothing and answer what the change would do (a preview); no reason needed.",
    ),
]
Decisions = Annotated[
    bool,
    Field(
        default=True,
        description="With dry_run, on a server given a decision log: decide its signals again under the change "
        "and count what differs (false skips it).",
    ),
]

#: The longest a write may wait for the fleet, in seconds.
MAX_HTTP_WAIT: Final = 60.0
Wait = Annotated[
    float | None,
    Field(
        default=None,
        ge=0,
        le=MAX_HTTP_WAIT,
        description="After the write, wait up to this many seconds for every live member of the fleet to apply "
        f"it; if one has not when the time runs out, the answer is {FleetIncompleteError.http_status} with the "
        "write's result and the members that have not (fleet.missing).",
    ),
]


class _Body(BaseModel):
    # strict: JSON true is not 1, "5" is not 5, 1.0 is not a version.
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="after")
    def _no_wait_on_a_dry_run(self) -> Self:
        if getattr(self, "dry_run", False) and getattr(self, "wait", None) is not None:
            msg = "wait goes with a write, and a dry run writes no version for the fleet to apply"
            raise ValueError(msg)
        return self


class ModeRequest(_Body):
    """Switch the active mode."""

    mode: str = Field(min_length=1, max_length=64, description="The mode to make active, such as DEFENSIVE.")
    reason: Reason | None = Field(default=None, description="Why; recorded in history. Required unless dry_run.")
    expected_version: ExpectedVersion = None
    expires_in: ExpiresIn = None
    dry_run: DryRun = False
    decisions: Decisions = True
    wait: Wait = None


class PatchRequest(_Body):
    """Change values by path, as one new version, all or nothing."""

    changes: dict[str, Any] = Field(description="Path -> new value, such as {'modes.NORMAL.max_leverage': 4}.")
    reason: Reason | None = Field(default=None, description="Why; recorded in history. Required unless dry_run.")
    expected_version: ExpectedVersion = None
    expires_in: ExpiresIn = None
    dry_run: DryRun = False
    decisions: Decisions = True
    wait: Wait = None


class EmergencyRequest(_Body):
    """Turn the kill switch on (operators) or off (admins); on for a limited time (expires_in) needs an admin."""

    active: bool = Field(description="True stops all new trades.")
    reason: Reason | None = Field(default=None, description="Why; recorded in history. Required unless dry_run.")
    expected_version: ExpectedVersion = None
    expires_in: ExpiresIn = None
    dry_run: DryRun = False
    decisions: Decisions = True
    wait: Wait = None


class RollbackRequest(_Body):
    """Write a new version equal in content to an earlier one."""

    version: Version = Field(description="The version to return to.")
    reason: Reason | None = Field(default=None, description="Why; recorded in history. Required unless dry_run.")
    expected_version: ExpectedVersion = None
    dry_run: DryRun = False
    decisions: Decisions = True
    wait: Wait = None


class TradingRequest(_Body):
    """Set the trading state of the firm, one strategy or one instrument."""

    state: Literal["active", "reducing", "halted"] = Field(
        description="active: orders within the limits; reducing: only orders that reduce a position; halted: none. "
        "Toward halted an operator may; toward active needs an admin."
    )
    strategy: str | None = Field(
        default=None, min_length=1, max_length=64, description="Set this strategy's state (strategies.<name>.state)."
    )
    symbol: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Set this instrument's state (instruments.<SYMBOL>.state); 'default' sets the state of every "
        "instrument without one. Without strategy or symbol: the firm-wide trading.state.",
    )
    reason: Reason | None = Field(default=None, description="Why; recorded in history. Required unless dry_run.")
    expected_version: ExpectedVersion = None
    dry_run: DryRun = False
    decisions: Decisions = True
    wait: Wait = None


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


class ProposeRequest(_Body):
    """Propose path -> value changes for other admins to approve."""

    changes: dict[str, Any] = Field(description="Path -> new value, as PATCH /v1/policy takes them.")
    reason: Reason | None = Field(default=None, description="Why; recorded in history. Required unless dry_run.")
    lifetime: float | None = Field(
        default=None, gt=0, le=7 * 24 * 3600, description="Seconds it waits for its approvals (default 24 hours)."
    )
    expires_in: ExpiresIn = None
    dry_run: DryRun = False
    decisions: Decisions = True


class ReviewRequest(_Body):
    """Approve a proposal (the body may be left out)."""

    dry_run: DryRun = False
    decisions: Decisions = True
    wait: Wait = None


class RejectRequest(_Body):
    """Reject a pending proposal."""

    reason: Reason | None = Field(default=None, description="Why; kept with the proposal. Required unless dry_run.")
    dry_run: DryRun = False


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
