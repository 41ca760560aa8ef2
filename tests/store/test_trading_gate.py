"""The trading gate's one rule, judged from the facts of a read state: pure, no I/O."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from policystore.consumers.execution import Reason
from policystore.model.policy import Emergency, Policy, default_policy
from policystore.store.sources import GateRefusal, ReadState, Source, StaleTradingRule

VERSION = 5


def policy(*, kill: bool) -> Policy:
    """Version 5 of the defaults, with the kill switch as asked."""
    emergency = Emergency(active=True, reason="halt") if kill else Emergency()
    return dataclasses.replace(default_policy(), version=VERSION, emergency=emergency)


def state(source: Source, *, kill: bool, rule: StaleTradingRule, refused: int, rewound: int) -> ReadState:
    """A read state of each kind with the gate's facts."""
    facts = {"rule": rule, "refused_version": refused, "rewound_to": rewound}
    if source is Source.STORE:
        return ReadState.live(policy(kill=kill), **facts)
    if source is Source.LAST_KNOWN_GOOD:
        return ReadState.last_known_good(policy(kill=kill), **facts)
    return dataclasses.replace(ReadState.last_known_good(policy(kill=kill)), source=Source.DEFAULT, **facts)


COMBINATIONS = list(
    itertools.product(
        [Source.STORE, Source.LAST_KNOWN_GOOD, Source.DEFAULT],
        [False, True],
        list(StaleTradingRule),
        [-1, VERSION, VERSION + 1],
        [-1, VERSION - 1, VERSION],
    )
)


class TestOneRule:
    """Every combination of facts gets the verdict the rule states, strongest refusal first."""

    @pytest.mark.parametrize(("source", "kill", "rule", "refused", "rewound"), COMBINATIONS)
    def test_verdict_follows_the_rule(
        self, source: Source, kill: bool, rule: StaleTradingRule, refused: int, rewound: int
    ) -> None:
        """Kill switch, then a refused newer version, then an unconfirmed rewind, then the stale rule."""
        judged = state(source, kill=kill, rule=rule, refused=refused, rewound=rewound)
        gate = judged.gate
        stale_allows = rule is StaleTradingRule.FOLLOW or (
            rule is StaleTradingRule.LAST_KNOWN_GOOD and source is Source.LAST_KNOWN_GOOD
        )
        expected = next(
            (
                refusal
                for refusal, holds in (
                    (GateRefusal.KILL_SWITCH, kill),
                    (GateRefusal.VERSION_REFUSED, refused > VERSION),
                    (GateRefusal.STORE_REWOUND, rewound >= VERSION),
                    (GateRefusal.STORE_UNAVAILABLE, source is not Source.STORE and not stale_allows),
                )
                if holds
            ),
            None,
        )
        assert (expected, expected is None) == (gate.refusal, gate.allowed)
        assert (expected is None) == (gate.detail == "")
        assert (judged.policy, judged.source, judged.stale) == (gate.policy, gate.source, gate.stale)

    def test_a_later_version_clears_the_facts_and_an_earlier_keeps_them(self) -> None:
        """with_facts judges again: the verdict is always the one of the facts the state holds."""
        held = state(Source.STORE, kill=False, rule=StaleTradingRule.LAST_KNOWN_GOOD, refused=-1, rewound=-1)
        rewound = held.with_facts(rewound_to=VERSION)
        assert (None, GateRefusal.STORE_REWOUND) == (held.gate.refusal, rewound.gate.refusal)
        assert held.gate.allowed != rewound.gate.allowed


class TestExecutorNamesEveryRefusal:
    """Each refusal of the gate is its own reason in the executor's decisions."""

    def test_every_gate_refusal_is_an_executor_reason(self) -> None:
        """The values match one to one, so a decision log names the fact that refused."""
        assert {refusal.value for refusal in GateRefusal} <= {reason.value for reason in Reason}
