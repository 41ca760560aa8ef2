"""The learned multiplier: it pays on a problem where confidence truly matters, stays in the caps, persists."""

# ruff: noqa: S311 - seeded pseudo-random numbers make a reproducible synthetic market

from __future__ import annotations

import json
import random

import pytest

from policystore import PolicyStore
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.sizing import RLPositionSizingAgent
from policystore.testing import memory_store


def _outcome(rng: random.Random, confidence: float, risk_amount: float) -> float:
    """A trade's PnL: in R multiples, drawn around 4 x (confidence - 0.6): low confidence loses on average."""
    return risk_amount * rng.gauss(4 * (confidence - 0.6), 1.0)


def _signals(seed: int, n: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(rng.uniform(0.4, 0.95), rng.uniform(0.5, 4.0)) for _ in range(n)]


async def _store() -> PolicyStore:
    return await memory_store()


class TestLearnedMultiplier:
    """On a synthetic problem where higher confidence pays more, learning helps and respects the caps."""

    async def test_record_outcome_trained_agent_beats_fixed_size(self):
        """After training, greedy multipliers earn more on fresh trades than a constant multiplier of 1."""
        store = await _store()
        try:
            agent = RLPositionSizingAgent(policy_store=store, seed=3)
            outcomes = random.Random(1)
            budget = 10_000 * store.get("risk.max_risk_pct_per_trade")
            for confidence, stop in _signals(seed=2, n=3000):
                decision = agent.decide("X", 10_000, 100, confidence, stop_distance=stop)
                assert decision.risk_amount <= budget
                agent.record_outcome(decision, _outcome(outcomes, confidence, decision.risk_amount))
            agent.learner.epsilon = 0.0
            fixed = RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(actions=(1.0,)))
            learned_pnl = fixed_pnl = 0.0
            rng_a, rng_b = random.Random(9), random.Random(9)
            for confidence, stop in _signals(seed=4, n=2000):
                a = agent.decide("X", 10_000, 100, confidence, stop_distance=stop)
                b = fixed.decide("X", 10_000, 100, confidence, stop_distance=stop)
                assert a.risk_amount <= budget
                learned_pnl += _outcome(rng_a, confidence, a.risk_amount)
                fixed_pnl += _outcome(rng_b, confidence, b.risk_amount)
            assert learned_pnl > fixed_pnl
            assert 0.5 == agent.learner.best(0.42, 0.02)
            assert 1.0 == agent.learner.best(0.9, 0.02)
        finally:
            await store.close()

    def test_choose_same_seed_same_choices(self):
        """Two learners with one seed explore identically."""
        a, b = MultiplierLearner(epsilon=0.5, seed=11), MultiplierLearner(epsilon=0.5, seed=11)
        assert [a.choose(0.7, 0.01) for _ in range(50)] == [b.choose(0.7, 0.01) for _ in range(50)]

    def test_init_multiplier_above_one_raises(self):
        """An action above 1.0 could break a cap, so it is refused."""
        with pytest.raises(ValueError, match="actions"):
            MultiplierLearner(actions=(0.5, 1.2))


class TestPersistence:
    """The table round-trips through JSON and the agent loads it from model_path."""

    async def test_model_path_saved_after_outcome_loaded_by_new_agent(self, tmp_path):
        """A second agent on the same file starts from the first one's table."""
        store = await _store()
        path = tmp_path / "model.json"
        try:
            first = RLPositionSizingAgent(policy_store=store, model_path=path)
            for _ in range(20):
                decision = first.decide("X", 10_000, 100, 0.45, stop_distance=2)
                first.record_outcome(decision, -decision.risk_amount * decision.multiplier)
            second = RLPositionSizingAgent(policy_store=store, model_path=path)
            assert first.learner.to_dict()["values"] == second.learner.to_dict()["values"]
            assert "policystore.multiplier-learner/1" == json.loads(path.read_text())["format"]
        finally:
            await store.close()

    def test_load_not_a_table_names_the_file(self, tmp_path):
        """A file that is not a learner table is refused with its name."""
        path = tmp_path / "bad.json"
        path.write_text('{"format": "other"}')
        with pytest.raises(ValueError, match=r"bad\.json"):
            MultiplierLearner.load(path)
