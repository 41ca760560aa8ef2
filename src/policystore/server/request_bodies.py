"""The bodies the ``/v1`` write routes take: one strict model per write, and the bounds they share.

Request bodies are strict: unknown fields are refused (an author cannot be
smuggled in), a boolean is never read as an integer (``"expected_version":
true`` is not version 1), and every integer is bounded by what the back ends
and JSON clients hold exactly (:data:`MAX_INTEGER`), so an oversized number is
a 422 naming the field, not a failure deep in a back end. The bodies the
routes answer with are in :mod:`policystore.server.response_bodies`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policystore.errors import FleetIncompleteError, VersionConflictError
from policystore.model.overrides import MAX_LIFETIME

__all__ = [
    "MAX_HTTP_WAIT",
    "MAX_INTEGER",
    "EmergencyRequest",
    "ModeRequest",
    "PatchRequest",
    "ProposeRequest",
    "RejectRequest",
    "ReviewRequest",
    "RollbackRequest",
    "TradingRequest",
]

#: The largest integer the API takes: 2**53, the last one a JSON client's float (JavaScript's
#: number) and every back end (SQLite's INTEGER, Redis's Lua numbers) hold exactly.
MAX_INTEGER: Final = 2**53

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
