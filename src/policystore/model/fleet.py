"""The fleet: which processes follow a store, the version each has applied, and a wait's outcome.

Every store that follows changes is a member. It keeps one record in its back
end's ``fleet`` collection (see :class:`~policystore.backends.base.RecordStore`),
keyed by its ``member_id`` and rewritten for the versions it applies (at most
every 50 ms, see :mod:`policystore.store.fleet_reports`) and at least once a
second. This module is pure: it turns records into :class:`FleetMember` values
and judges them against a given time and version; the store's part that reports
and reads them is :mod:`policystore.store.fleet`.

Time. A record carries the time its member reported, by the member's own clock
(``reported_at``, seconds since the epoch, UTC); records carry no time of their
own. How long ago a member was heard is the reader's clock minus that time, so a
difference between the two hosts' clocks is added to it: a member whose clock
runs 3 s behind the reader's looks 3 s later than it is, one whose clock runs
more than :data:`LOST_AFTER` seconds behind looks lost (and does not hold up a
wait), and one whose clock runs ahead looks heard just now (a negative age counts
as 0). Keep the hosts' clocks in step (NTP keeps them within milliseconds); the
figures assume so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from policystore.errors import FieldError, FleetIncompleteError, PolicyValidationError

__all__ = [
    "DROP_AFTER",
    "FLEET_COLLECTION",
    "LOST_AFTER",
    "MAX_NAME",
    "REPORT_EVERY",
    "FleetAck",
    "FleetMember",
    "FleetStatus",
    "check_member_name",
    "member_from_record",
]

#: The record collection the members report to.
FLEET_COLLECTION: Final = "fleet"
#: Seconds between two reports of a member that applies no new version.
REPORT_EVERY: Final = 1.0
#: Seconds without a report after which a member is lost: it no longer holds up a wait.
LOST_AFTER: Final = 5.0
#: Seconds without a report after which a lost member is dropped from the list and its record deleted.
DROP_AFTER: Final = 300.0
#: The longest member name, in characters.
MAX_NAME: Final = 100


class FleetStatus(StrEnum):
    """Whether a member was heard from lately."""

    #: Heard within :data:`LOST_AFTER` seconds.
    LIVE = "live"
    #: Not heard for :data:`LOST_AFTER` seconds: frozen, cut off or killed without leaving.
    LOST = "lost"


def check_member_name(name: object) -> str:
    """Return ``name`` if it can name a fleet member: 1 to :data:`MAX_NAME` printable characters.

    Raises:
        PolicyValidationError: it is not such a string.
    """
    if isinstance(name, str) and 0 < len(name) <= MAX_NAME and name.isprintable() and name.strip():
        return name
    shown = repr(name) if not isinstance(name, str) or len(name) <= MAX_NAME else f"{name[:MAX_NAME]!r}..."
    message = f"must be 1 to {MAX_NAME} printable characters naming this process (got {shown})"
    raise PolicyValidationError([FieldError("name", message)])


@dataclass(frozen=True, slots=True)
class FleetMember:
    """One process that follows the store, as the reader sees it now.

    Attributes:
        member_id: random, one per store instance (a restarted process is a new member).
        name: the name the store was opened with (``PolicyStore.open(url, name=...)``),
            by default the program's name.
        host: the host name of the member's machine.
        pid: the member's process id on that host.
        version: the version of the policy it has applied.
        stale: whether its answers came from a fallback, not the live store, when it reported.
        last_heard: when it last reported, by its own clock (see the module's notes on time).
        lag_versions: the store's current version minus ``version`` (0 when up to date).
        lag_seconds: seconds since it was last heard, by the reader's clock (never negative).
        status: live, or lost after :data:`LOST_AFTER` seconds without a report.
        error: why this member's own reports fail, when the reader is that member and they do.
    """

    member_id: str
    name: str
    host: str
    pid: int
    version: int
    stale: bool
    last_heard: datetime
    lag_versions: int
    lag_seconds: float
    status: FleetStatus
    error: str | None = None

    @property
    def label(self) -> str:
        """The member as a sentence names it: ``executor-1 (pid 4242 on host-a)``."""
        return f"{self.name} (pid {self.pid} on {self.host})"

    def to_dict(self) -> dict[str, Any]:
        """Return the member as JSON-ready data (``last_heard`` as ISO 8601 text)."""
        return {
            "member_id": self.member_id,
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "stale": self.stale,
            "last_heard": self.last_heard.isoformat(),
            "lag_versions": self.lag_versions,
            "lag_seconds": round(self.lag_seconds, 3),
            "status": self.status.value,
            "error": self.error,
        }


def member_from_record(record: dict[str, Any], *, now: float, current_version: int) -> FleetMember | None:
    """Return the member a fleet record describes, judged at ``now``; None for a record that is no member's.

    Args:
        record: the stored record (see :func:`policystore.store.fleet.member_record`).
        now: the reader's time, in seconds since the epoch.
        current_version: the store's current version, to measure the lag against.

    Returns:
        The member, or None when the record lacks a field or holds one of the wrong type
        (written by something else: it holds up no wait).
    """
    try:
        member_id, name, host = record["member_id"], record["name"], record["host"]
        pid, version, stale, reported = record["pid"], record["version"], record["stale"], record["reported_at"]
    except (KeyError, TypeError):
        return None
    texts_ok = all(isinstance(v, str) and v for v in (member_id, name, host))
    numbers_ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (pid, version))
    if not (texts_ok and numbers_ok and isinstance(stale, bool)):
        return None
    if isinstance(reported, bool) or not isinstance(reported, int | float) or not math.isfinite(reported):
        return None
    try:
        heard = datetime.fromtimestamp(reported, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    age = max(now - float(reported), 0.0)
    return FleetMember(
        member_id=member_id,
        name=name,
        host=host,
        pid=pid,
        version=version,
        stale=stale,
        last_heard=heard,
        lag_versions=max(current_version - version, 0),
        lag_seconds=age,
        status=FleetStatus.LIVE if age < LOST_AFTER else FleetStatus.LOST,
    )


@dataclass(frozen=True, slots=True)
class FleetAck:
    """How far the fleet got with one version: what ``wait_for_fleet`` answers.

    Attributes:
        version: the version waited for.
        complete: every live member has applied ``version`` or a newer one (True
            also when there is no live member).
        acked: the live members that have.
        missing: the live members that have not, when the wait ended.
        lost: the members not heard for :data:`LOST_AFTER` seconds; they hold up no wait.
        waited: seconds the wait took.
    """

    version: int
    complete: bool
    acked: tuple[FleetMember, ...]
    missing: tuple[FleetMember, ...]
    lost: tuple[FleetMember, ...] = ()
    waited: float = 0.0

    def summary(self) -> str:
        """Say in one sentence how far the fleet got."""
        live = len(self.acked) + len(self.missing)
        if not live:
            text = f"No live member follows the store; nothing to confirm version {self.version}"
        elif self.complete:
            text = f"Every live member of the fleet ({live}) applied version {self.version}"
        else:
            names = ", ".join(m.label for m in self.missing)
            text = f"{len(self.missing)} of {live} live members did not apply version {self.version}: {names}"
        if self.lost:
            lost = ", ".join(m.label for m in self.lost)
            text += f"; lost (not heard for {LOST_AFTER:g} s, not counted): {lost}"
        return text + "."

    def check(self, timeout: float) -> None:
        """Raise :class:`~policystore.errors.FleetIncompleteError` unless the fleet is complete.

        Args:
            timeout: the seconds the wait was given, for the sentence.

        Raises:
            FleetIncompleteError: a live member had not applied the version when the wait ran out.
        """
        if not self.complete:
            missing = [m.to_dict() for m in self.missing]
            raise FleetIncompleteError(self.version, timeout, missing)

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready data."""
        return {
            "version": self.version,
            "complete": self.complete,
            "acked": [m.to_dict() for m in self.acked],
            "missing": [m.to_dict() for m in self.missing],
            "lost": [m.to_dict() for m in self.lost],
            "waited": round(self.waited, 3),
        }
