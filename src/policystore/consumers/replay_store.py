"""The store a replay runs in: a private, in-memory copy of one policy version, at that version.

A replay decides every signal under the policy it was given (a store's
version, or the built-in policy), so each decision records that version, as it
would in the live system. The copy starts at that version rather than at 1,
and only the replay writes to it: the loss breakers' kill switch and the
replay's own reset at the start of each day.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, Final

from policystore.backends.memory import MemoryRecords
from policystore.errors import VersionConflictError
from policystore.model.history import HistoryEntry
from policystore.model.modes import PRESETS
from policystore.model.policy import Policy, default_policy
from policystore.model.trading import TradingState
from policystore.model.validation import build_policy

__all__ = ["ReplayBackend", "ReplayPlan", "builtin_policy", "plan_replay"]

#: The kill switch as a replay starts it: off, whatever the replayed version held.
_SWITCH_OFF: Final = {"active": False, "reason": None, "activated_at": None, "activated_by": None}


def builtin_policy() -> Policy:
    """Return the built-in policy as a new store's first version holds it (version 1)."""
    return dataclasses.replace(default_policy(), version=1, updated_by="policystore", reason="initial policy")


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayPlan:
    """What one mode's replay runs under.

    Attributes:
        mode: the mode made active.
        document: the policy document the replay store starts with.
        version: the replayed version (the document's own).
        preset: True when ``mode`` is a preset the policy does not hold, added for a what-if.
    """

    mode: str
    document: dict[str, Any]
    version: int
    preset: bool


def plan_replay(policy: Policy, mode: str, *, as_held: bool = False) -> ReplayPlan:
    """Return ``policy`` with ``mode`` active, the kill switch off and the firm ``active``, as a replay starts.

    Every mode, strategy, hard limit and trading control of ``policy`` is kept,
    strategy and instrument states included; only the firm-wide
    ``trading.state`` (like the kill switch, whether trading was stopped when
    the version was read) starts ``active``. A preset the
    policy does not hold is added to it (a what-if); it must keep to the
    policy's hard limits like any mode. The replay's own writes (the kill
    switch turned off at the start of a new day) need one approval in the
    copy, whatever the policy requires of its people.

    Args:
        policy: the policy to replay (its version is kept).
        mode: one of its modes, or a preset name.
        as_held: keep the kill switch and the firm-wide state as ``policy``
            holds them: to decide signals under exactly that policy (a preview).

    Returns:
        The plan.

    Raises:
        ValueError: ``mode`` is neither a mode of ``policy`` nor a preset.
        PolicyValidationError: the preset breaks one of the policy's hard limits.
    """
    document = policy.document()
    preset = mode not in policy.modes
    if preset:
        if mode not in PRESETS:
            modes = ", ".join(policy.modes)
            raise ValueError(f"unknown mode {mode!r}; the policy's modes are {modes}; presets: {', '.join(PRESETS)}")
        document["modes"][mode] = dataclasses.asdict(PRESETS[mode][0])
    document["active_mode"] = mode
    # The replay measures the limits; whether trading was stopped when the version was read is not one:
    # neither the kill switch nor the firm-wide state a person set. Strategy and instrument states are
    # scoped rules, like limits, and stay.
    if not as_held:
        document["emergency"] = dict(_SWITCH_OFF)
        document["trading"] = {**document.get("trading", {}), "state": TradingState.ACTIVE.value}
    document["change_control"] = {"approvals_required": 1}
    checked = build_policy(document)
    return ReplayPlan(mode, checked.document(), policy.version, preset)


class ReplayBackend:
    """A back end in memory that starts at the version of the document it is given.

    Args:
        document: the first document; its ``version`` (at least 1) is the first version.
    """

    url: str

    def __init__(self, document: dict[str, Any]) -> None:
        first = int(document["version"])
        if first < 1:
            raise ValueError(f"a replay starts at a stored version, 1 or more (got {first})")
        self.url = f"memory://replay-v{first}"
        self._documents: dict[int, dict[str, Any]] = {first: copy.deepcopy(document)}
        self._entries: dict[int, HistoryEntry] = {}
        #: Records of its own: a replay keeps none of the store's (no tokens, no fleet).
        self.records = MemoryRecords(url=self.url)

    async def connect(self, *, create: bool = True) -> None:
        """Nothing to open: the document is already here."""
        del create

    async def close(self) -> None:
        """Nothing to release."""

    async def current_version(self) -> int:
        """Return the newest version."""
        return max(self._documents)

    async def load(self, version: int | None = None) -> dict[str, Any] | None:
        """Return a copy of the document at ``version`` (newest when None)."""
        found = self._documents.get(max(self._documents) if version is None else version)
        return copy.deepcopy(found) if found is not None else None

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        """Add the next version.

        Raises:
            VersionConflictError: the document is not the next version.
        """
        current = max(self._documents)
        if document.get("version") != current + 1 or entry.version != current + 1:
            raise VersionConflictError(int(document.get("version", current + 1)) - 1, current)
        self._documents[current + 1] = copy.deepcopy(document)
        self._entries[current + 1] = entry

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` of the replay's own entries older than ``before``, newest first."""
        versions = sorted((v for v in self._entries if before is None or v < before), reverse=True)
        return [self._entries[v] for v in versions[:limit]]

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """Return the replay's own entries with ``after < version <= upto``, oldest first."""
        return [self._entries[v] for v in sorted(self._entries) if after < v <= upto]

    async def notifications(self) -> AsyncIterator[int]:
        """Yield 0 once: no other process writes to a replay."""
        yield 0
