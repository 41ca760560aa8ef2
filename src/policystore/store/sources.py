"""Where an answer comes from: the read state of a store, ``explain()``, and the trading gate.

Sources, highest first: the live store; the last-known-good copy on local disk
(stale); environment variables; built-in defaults. A read state is built once
per version, and again when an expiring change of it ends, and holds the
flattened path table the read path looks values up in: the values in force.

It also holds every fact that decides whether new risk may be opened (the
kill switch, a newer version refused as invalid, a store that went back and is
not yet confirmed, staleness and the stale rule), and the verdict they give,
:class:`TradingGate`. The store swaps its read state in whole, so the policy a
caller trades on and the verdict it trades by always come from the same state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from policystore.model.expiry import ended, in_force, next_end, overrides_for
from policystore.model.paths import clamped_override, flatten
from policystore.model.policy import Override, Policy
from policystore.store.env import EnvironmentOverlay

__all__ = ["Explanation", "GateRefusal", "ReadState", "Source", "StaleTradingRule", "TradingGate"]


class Source(StrEnum):
    """Which layer of the fallback chain answered."""

    STORE = "store"
    LAST_KNOWN_GOOD = "last_known_good"
    ENVIRONMENT = "environment"
    DEFAULT = "default"


class StaleTradingRule(StrEnum):
    """What ``can_open_new_trades`` answers while the live store cannot be reached.

    ``LAST_KNOWN_GOOD`` (default): follow the last-known-good copy's kill switch;
    with no such copy (only environment and defaults), refuse. ``NEVER``: refuse
    whenever stale. ``FOLLOW``: follow whatever layer answers.
    """

    LAST_KNOWN_GOOD = "last_known_good"
    NEVER = "never"
    FOLLOW = "follow"


class GateRefusal(StrEnum):
    """Why no new trade may be opened, strongest first (see :class:`TradingGate`)."""

    #: The kill switch is on.
    KILL_SWITCH = "kill_switch"
    #: The store holds a newer version that was refused as invalid: its kill switch cannot be known.
    VERSION_REFUSED = "version_refused"
    #: The store went back to an older version (a restore, a replaced file, a failover that lost
    #: writes); a write lost that way may have been the one that stopped trading.
    STORE_REWOUND = "store_rewound"
    #: The live store cannot be reached and the stale rule forbids new trades.
    STORE_UNAVAILABLE = "store_unavailable"


@dataclass(frozen=True, slots=True)
class TradingGate:
    """The policy a process holds and whether it allows new risk, taken together from one read state.

    Take one with :meth:`PolicyStore.gate() <policystore.store.store.PolicyStore.gate>` and
    decide from its ``policy``: the verdict was made on exactly that policy, so
    a change installed in between cannot make the two disagree.
    ``can_open_new_trades()`` is ``gate().allowed``.

    Attributes:
        policy: the policy the verdict was made on.
        source: the layer of the fallback chain that answered.
        stale: True when the live store could not be reached.
        refusal: why no new trade may be opened, or None when it may.
        detail: the refusal in one sentence ("" when allowed).
    """

    policy: Policy
    source: Source
    stale: bool
    refusal: GateRefusal | None
    detail: str = ""

    @property
    def allowed(self) -> bool:
        """True when a new trade may be opened."""
        return self.refusal is None

    @classmethod
    def judge(  # noqa: PLR0917 - the facts of one read state, in the order they are checked
        cls,
        policy: Policy,
        source: Source,
        stale: bool,
        rule: StaleTradingRule,
        refused_version: int,
        rewound_to: int,
    ) -> TradingGate:
        """Apply the one rule to the facts of a read state; see :class:`GateRefusal` for the order."""
        refusal: GateRefusal | None = None
        detail = ""
        if policy.emergency.active:
            refusal, detail = GateRefusal.KILL_SWITCH, f"the kill switch is on: {policy.emergency.reason}"
        elif refused_version > policy.version:
            refusal = GateRefusal.VERSION_REFUSED
            detail = (
                f"the store holds version {refused_version}, which was refused as invalid; its kill switch "
                f"cannot be known, so version {policy.version} allows no new trade"
            )
        elif rewound_to >= policy.version:
            refusal = GateRefusal.STORE_REWOUND
            detail = (
                f"the store went back to version {rewound_to} (a restore, a replaced file, or a failover that "
                "lost writes); no new trade until a write confirms the policy"
            )
        elif stale and not _stale_allows(rule, source):
            refusal = GateRefusal.STORE_UNAVAILABLE
            detail = f"the policy store cannot be reached and its stale rule {rule.value!r} forbids new trades"
        return cls(policy, source, stale, refusal, detail)


def _shown(value: Any) -> str:
    return "null (unset)" if value is None else repr(value)


def _stale_allows(rule: StaleTradingRule, source: Source) -> bool:
    if rule is StaleTradingRule.FOLLOW:
        return True
    return rule is StaleTradingRule.LAST_KNOWN_GOOD and source is Source.LAST_KNOWN_GOOD


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a path has the value it has.

    Attributes:
        path: the path asked about.
        value: its value now.
        source: the layer that answered.
        version: the policy version the value belongs to (0 for env and defaults).
        stale: True when the live store could not be reached for this answer.
        detail: more facts in a sentence, such as the variable that set the value,
            or that a stored strategy override is looser than the active mode.
        clamped_by: for a strategy field whose stored override is looser than
            the active mode, the mode path whose value applies; else None.
        expires_at: when the expiring change that set the value ends (the
            earliest, if several set it); None when none is in force.
        expiring_version: the version that made that change; None when none is in force.
    """

    path: str
    value: Any
    source: Source
    version: int
    stale: bool
    detail: str = ""
    clamped_by: str | None = None
    expires_at: datetime | None = None
    expiring_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the explanation as plain data."""
        return {
            "path": self.path,
            "value": self.value,
            "source": self.source.value,
            "version": self.version,
            "stale": self.stale,
            "detail": self.detail,
            "clamped_by": self.clamped_by,
            "expires_at": self.expires_at.isoformat() if self.expires_at is not None else None,
            "expiring_version": self.expiring_version,
        }


@dataclass(frozen=True, slots=True)
class ReadState:
    """Everything the read path needs for one policy version, built once, the trading gate included.

    Attributes:
        policy: the policy answers come from: the one in force, with every
            expiring change that had ended when the state was built returned.
        source: the layer that answers.
        stale: True when the live store could not be reached.
        values: the flattened path table.
        variables: the environment variables that set values (fallback only).
        problems: environment variables that were ignored, and why.
        rule: the store's stale trading rule.
        refused_version: the newest version found in the store and refused as
            invalid, or -1; newer than ``policy``, it holds trading shut.
        rewound_to: the version the store went back to, or -1; until a later
            version is installed, it holds trading shut.
        ended: the expiring changes this process returned by its own clock
            that the version it holds still has (the return is not recorded yet).
        gate: the verdict of these facts (computed, not passed).
        ends_at: when the next expiring change of ``policy`` ends, or None (computed).
    """

    policy: Policy
    source: Source
    stale: bool
    values: dict[str, Any] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)
    rule: StaleTradingRule = StaleTradingRule.LAST_KNOWN_GOOD
    refused_version: int = -1
    rewound_to: int = -1
    ended: tuple[Override, ...] = ()
    gate: TradingGate = field(init=False, repr=False, compare=False)
    ends_at: datetime | None = field(init=False, repr=False, compare=False)
    #: path -> its explanation, made at its first explain: the state never changes, so neither does it.
    _explained: dict[str, Explanation] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        gate = TradingGate.judge(self.policy, self.source, self.stale, self.rule, self.refused_version, self.rewound_to)
        object.__setattr__(self, "gate", gate)
        object.__setattr__(self, "ends_at", next_end(self.policy))

    def at(self, now: datetime) -> ReadState:
        """Return this state as it is at ``now``: itself, or with the expiring changes ended by then returned.

        The version, the source and the gate's facts stay; the path table and
        the verdict are made again from the policy in force.
        """
        gone = ended(self.policy, now)
        if not gone:
            return self
        policy = in_force(self.policy, now)
        return dataclasses.replace(self, policy=policy, values=flatten(policy), ended=(*self.ended, *gone))

    @classmethod
    def live(cls, policy: Policy, values: dict[str, Any] | None = None, **facts: Any) -> ReadState:
        """A state read from the live store; ``values`` is ``flatten(policy)`` when the caller has it.

        ``facts`` are the gate's: ``rule``, ``refused_version``, ``rewound_to``;
        and ``ended``, the expiring changes of the stored version already returned.
        """
        return cls(policy, Source.STORE, stale=False, values=flatten(policy) if values is None else values, **facts)

    @classmethod
    def last_known_good(cls, policy: Policy, **facts: Any) -> ReadState:
        """A state from the last-known-good copy: stale by definition; ``facts`` as for :meth:`live`."""
        return cls(policy, Source.LAST_KNOWN_GOOD, stale=True, values=flatten(policy), **facts)

    @classmethod
    def fallback(cls, overlay: EnvironmentOverlay, **facts: Any) -> ReadState:
        """A state from the environment over the built-in defaults; ``facts`` as for :meth:`live`."""
        return cls(
            overlay.policy,
            Source.DEFAULT,
            stale=True,
            values=flatten(overlay.policy),
            variables=overlay.variables,
            problems=overlay.problems,
            **facts,
        )

    def with_facts(self, **facts: Any) -> ReadState:
        """This state with other gate facts (``refused_version``, ``rewound_to``), the verdict judged again."""
        return dataclasses.replace(self, **facts)

    def explain(self, path: str) -> Explanation:
        """Explain ``path``; the caller has checked that it exists.

        Made once per path: a later call returns the same object (a state
        replaced by another explains anew).
        """
        explained = self._explained.get(path)
        if explained is None:
            explained = self._explained[path] = self._explain(path)
        return explained

    def _explain(self, path: str) -> Explanation:
        explanation = self._explain_source(path)
        clamp = clamped_override(self.policy, path)
        if clamp is not None:
            explanation = dataclasses.replace(
                explanation, detail=f"{explanation.detail}; {clamp.detail}", clamped_by=clamp.mode_path
            )
        return self._explain_expiry(path, explanation)

    def _explain_expiry(self, path: str, explanation: Explanation) -> Explanation:
        """Add the expiring changes that set the value, and those this process ended, to ``explanation``."""
        details = []
        setting = sorted(overrides_for(self.policy, path), key=lambda change: change.until)
        for change in setting:
            returns = ", ".join(f"{p} {_shown(v)}" for p, v in change.replaced.items() if p in change.values)
            details.append(
                f"set by the expiring change of version {change.version} ({change.by}: {change.reason}) "
                f"until {change.until.isoformat()}; then it returns to {returns}"
            )
        details.extend(
            f"the expiring change of version {change.version} ended at {change.until.isoformat()} by this "
            "process's clock and its values returned (the store has not recorded the return yet)"
            for change in overrides_for(self.policy, path, self.ended)
        )
        if not details:
            return explanation
        first = setting[0] if setting else None
        return dataclasses.replace(
            explanation,
            detail="; ".join([explanation.detail, *details]),
            expires_at=first.until if first is not None else None,
            expiring_version=first.version if first is not None else None,
        )

    def _explain_source(self, path: str) -> Explanation:
        value = self.values[path]
        version = self.policy.version
        if self.source is Source.STORE:
            return Explanation(path, value, Source.STORE, version, stale=False, detail="read from the live store")
        if self.source is Source.LAST_KNOWN_GOOD:
            return Explanation(
                path,
                value,
                self.source,
                version,
                stale=True,
                detail="the live store cannot be reached; answered from the last-known-good copy",
            )
        problems = "; ".join(self.problems.values())
        if path in self.variables:
            detail = f"set by environment variable {self.variables[path]}"
            return Explanation(path, value, Source.ENVIRONMENT, 0, stale=True, detail=detail)
        detail = "no store and no last-known-good copy; built-in default"
        if problems:
            detail += f" ({problems})"
        return Explanation(path, value, Source.DEFAULT, 0, stale=True, detail=detail)
