"""Position sizing: every cap holds for every input and mode, decisions come from one snapshot."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policystore import PolicyStore
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.sizing import RLPositionSizingAgent, size_position
from policystore.model.changes import apply_patch
from policystore.model.modes import PRESETS
from policystore.model.policy import Policy, default_policy
from policystore.testing import memory_store, memory_url


def _with_presets() -> Policy:
    patch = {f"modes.{name}": dataclasses.asdict(config) for name, (config, _doc) in PRESETS.items()}
    return apply_patch(default_policy(), patch)


ALL_MODES = _with_presets()
POLICIES = {name: apply_patch(ALL_MODES, {"active_mode": name}) for name in ALL_MODES.modes}
STRATEGY_NAMES = [None, *sorted(ALL_MODES.strategies)]


def _offline_store() -> PolicyStore:
    # Never opened: these tests hand the sizer the snapshot to decide from.
    return PolicyStore(memory_url(), lkg_path=None, watch=False)


async def _store() -> PolicyStore:
    return await memory_store()


class TestCaps:
    """No decision exceeds any cap of the snapshot it was made from."""

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        equity=st.floats(min_value=1.0, max_value=1e9),
        price=st.floats(min_value=1e-4, max_value=1e6),
        stop_fraction=st.floats(min_value=1e-6, max_value=2.0),
        confidence=st.floats(min_value=0.0, max_value=1.0),
        mode=st.sampled_from(sorted(POLICIES)),
        strategy=st.sampled_from(STRATEGY_NAMES),
        seed=st.integers(min_value=0, max_value=2**16),
    )
    def test_decide_any_input_and_mode_never_exceeds_a_cap(  # noqa: PLR0917 - hypothesis passes each drawn value
        self,
        equity,
        price,
        stop_fraction,
        confidence,
        mode,
        strategy,
        seed,
    ):
        """Risk, notional and leverage stay within the mode's (and strategy's) limits, whatever the multiplier."""
        policy = POLICIES[mode]
        learner = MultiplierLearner(epsilon=1.0, seed=seed)  # always explores: every multiplier is tried
        sizer = RLPositionSizingAgent(_offline_store(), learner=learner)
        decision = sizer.decide(
            "X", equity, price, confidence, stop_distance=price * stop_fraction, strategy=strategy, policy=policy
        )
        risk = policy.risk
        risk_pct = policy.strategy(strategy).max_risk_pct_per_trade if strategy else risk.max_risk_pct_per_trade
        leverage = policy.strategy(strategy).max_leverage if strategy else risk.max_leverage
        assert decision.quantity >= 0
        assert decision.risk_amount <= equity * risk_pct
        assert decision.risk_amount <= equity * risk.max_risk_pct_per_trade
        assert decision.notional <= risk.position_size_cap
        assert decision.notional <= equity * leverage
        assert decision.notional <= equity * policy.hard_limits.max_leverage
        assert decision.multiplier <= 1.0
        assert policy.version == decision.policy_version
        assert mode == decision.mode

    def test_decide_small_stop_names_the_size_cap(self):
        """A tight stop asks for a huge size; the size cap binds and is named."""
        policy = POLICIES["NORMAL"]
        sizer = RLPositionSizingAgent(_offline_store(), learner=MultiplierLearner(epsilon=0.0))
        decision = sizer.decide("X", 10_000, 100, 0.9, stop_distance=0.5, policy=policy)
        assert ("position_size_cap",) == decision.binding_caps
        assert 1000 == pytest.approx(decision.notional)

    def test_decide_wide_stop_names_the_risk_cap(self):
        """With a wide stop the per-trade risk budget binds: risk equals equity x risk_pct."""
        policy = POLICIES["NORMAL"]
        sizer = RLPositionSizingAgent(_offline_store(), learner=MultiplierLearner(epsilon=0.0))
        decision = sizer.decide("X", 10_000, 100, 0.9, stop_distance=50, policy=policy)
        assert ("max_risk_pct_per_trade",) == decision.binding_caps
        assert 150 == pytest.approx(decision.risk_amount)
        assert 3 == pytest.approx(decision.quantity)

    def test_decide_scaling_below_one_names_scaling_factor(self):
        """DEFENSIVE's 0.7 scaling shrinks the risk-based size and is named as binding."""
        policy = POLICIES["DEFENSIVE"]
        sizer = RLPositionSizingAgent(_offline_store(), learner=MultiplierLearner(epsilon=0.0))
        decision = sizer.decide("X", 10_000, 100, 0.9, stop_distance=50, policy=policy)
        assert ("scaling_factor",) == decision.binding_caps
        assert 10_000 * 0.0075 * 0.7 == pytest.approx(decision.risk_amount)

    def test_decide_strategy_override_clamps_the_mode(self):
        """The conservative strategy's 0.5 % risk override applies under NORMAL's 1.5 %."""
        sizer = RLPositionSizingAgent(_offline_store(), learner=MultiplierLearner(epsilon=0.0))
        decision = sizer.decide(
            "X", 10_000, 100, 0.9, stop_distance=50, strategy="conservative", policy=POLICIES["NORMAL"]
        )
        assert 50 == pytest.approx(decision.risk_amount)
        assert "conservative" == decision.strategy

    def test_decide_volatility_sets_a_stop_of_two_volatilities(self):
        """Without a stop distance, the stop is 2 x volatility x price."""
        sizer = RLPositionSizingAgent(_offline_store(), learner=MultiplierLearner(epsilon=0.0))
        decision = sizer.decide("X", 10_000, 200, 0.9, volatility=0.1, policy=POLICIES["NORMAL"])
        assert 40 == pytest.approx(decision.stop_distance)


class TestGuards:
    """Bad arguments are refused with a message naming them."""

    @pytest.mark.parametrize(
        ("kwargs", "named"),
        [
            ({"equity": 0}, "equity"),
            ({"equity": -5}, "equity"),
            ({"price": 0}, "price"),
            ({"price": float("nan")}, "price"),
            ({"confidence": 1.5}, "confidence"),
            ({"confidence": -0.1}, "confidence"),
            ({"stop_distance": -1}, "stop_distance"),
            ({"stop_distance": None, "volatility": -0.2}, "volatility"),
            ({"stop_distance": None}, "stop_distance or volatility"),
            ({"strategy": "nope"}, "nope"),
        ],
    )
    def test_decide_bad_argument_raises_value_error_naming_it(self, kwargs, named):
        """Each bad argument raises ValueError with its name in the message."""
        sizer = RLPositionSizingAgent(_offline_store())
        args = {
            "symbol": "X",
            "equity": 1000,
            "price": 10,
            "confidence": 0.5,
            "stop_distance": 1.0,
            "policy": POLICIES["NORMAL"],
            **kwargs,
        }
        with pytest.raises(ValueError, match=named):
            sizer.decide(**args)

    @settings(max_examples=200, deadline=None)
    @given(
        name=st.sampled_from(["equity", "price", "stop_distance", "volatility"]),
        bad=st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0.0]), st.floats(max_value=0.0)),
    )
    def test_decide_non_finite_or_non_positive_input_raises_naming_it(self, name, bad):
        """NaN, +-inf, 0 or a negative value in any numeric input is refused by name, never sized."""
        sizer = RLPositionSizingAgent(_offline_store())
        args = {
            "symbol": "X",
            "equity": 1000.0,
            "price": 10.0,
            "confidence": 0.5,
            "stop_distance": 1.0,
            "volatility": 0.01,
            "policy": POLICIES["NORMAL"],
            name: bad,
        }
        with pytest.raises(ValueError, match=name):
            sizer.decide(**args)

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1.5, -0.1])
    def test_decide_confidence_outside_unit_interval_raises_naming_it(self, bad):
        """A NaN confidence fails every comparison, so it is refused explicitly."""
        sizer = RLPositionSizingAgent(_offline_store())
        with pytest.raises(ValueError, match="confidence"):
            sizer.decide("X", 1000.0, 10.0, bad, stop_distance=1.0, policy=POLICIES["NORMAL"])

    @pytest.mark.parametrize(("volatility", "price"), [(1e300, 1e10), (1e-320, 1e-5)])
    def test_decide_volatility_stop_overflowing_or_underflowing_raises(self, volatility, price):
        """Finite inputs whose derived stop is inf or 0 are refused instead of giving a NaN risk amount."""
        sizer = RLPositionSizingAgent(_offline_store())
        with pytest.raises(ValueError, match="volatility"):
            sizer.decide("X", 1000.0, price, 0.5, volatility=volatility, policy=POLICIES["NORMAL"])


SIZE_ARGS = {
    "equity": 10_000.0,
    "price": 100.0,
    "stop_distance": 5.0,
    "risk_pct": 0.015,
    "max_leverage": 3.0,
    "scaling": 1.0,
    "size_cap": 1000.0,
    "multiplier": 1.0,
}


class TestSizePositionNonFinite:
    """The pure sizing arithmetic fails closed: a NaN anywhere sizes nothing."""

    @pytest.mark.parametrize("name", sorted(SIZE_ARGS))
    def test_size_position_nan_argument_sizes_nothing(self, name):
        """min() skips a NaN after its first argument; a NaN cap must not be dropped and leave the size uncapped."""
        args = {**SIZE_ARGS, name: math.nan}
        equity, price, stop = args.pop("equity"), args.pop("price"), args.pop("stop_distance")
        assert (0.0, ()) == size_position(equity, price, stop, **args)

    def test_size_position_negative_multiplier_sizes_nothing(self):
        """The quantity is never negative."""
        args = {**SIZE_ARGS, "multiplier": -0.5}
        equity, price, stop = args.pop("equity"), args.pop("price"), args.pop("stop_distance")
        assert (0.0, ()) == size_position(equity, price, stop, **args)


class TestSnapshot:
    """A decision reads the store's snapshot once, and follows the store."""

    async def test_decide_after_mode_switch_uses_new_version_and_limits(self):
        """Switching to DEFENSIVE changes the next decision's version, mode and risk."""
        store = await _store()
        try:
            sizer = RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=0.0))
            before = sizer.decide("X", 10_000, 100, 0.9, stop_distance=50)
            await store.switch_mode("DEFENSIVE", updated_by="test", reason="calmer")
            after = sizer.decide("X", 10_000, 100, 0.9, stop_distance=50)
            assert (1, "NORMAL") == (before.policy_version, before.mode)
            assert (2, "DEFENSIVE") == (after.policy_version, after.mode)
            assert after.risk_amount < before.risk_amount
        finally:
            await store.close()

    async def test_decide_rl_off_multiplier_is_one(self):
        """With ai.enable_rl off, the multiplier is exactly 1 even for an exploring learner."""
        store = await _store()
        try:
            await store.update({"modes.NORMAL.enable_rl": False}, updated_by="test", reason="no learning")
            sizer = RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=1.0))
            multipliers = {sizer.decide("X", 10_000, 100, 0.9, stop_distance=50).multiplier for _ in range(30)}
            assert {1.0} == multipliers
        finally:
            await store.close()


class TestOlderAgentArguments:
    """``RLPositionSizingAgent(policy_store=store, max_leverage=..., use_math_ai=...)`` as older code wrote it."""

    async def test_max_leverage_argument_caps_below_the_policy(self):
        """A cap of 2 binds under NORMAL's 5: the notional stays within equity x 2 and names the leverage cap."""
        store = await _store()
        try:
            sizer = RLPositionSizingAgent(
                policy_store=store, max_leverage=2.0, use_math_ai=False, learner=MultiplierLearner(epsilon=0.0)
            )
            decision = sizer.decide("X", 100, 10, 0.9, stop_distance=0.01)
            assert 2.0 == sizer.max_leverage
            assert 200 == pytest.approx(decision.notional)
            assert "max_leverage" in decision.binding_caps
        finally:
            await store.close()

    async def test_max_leverage_argument_never_raises_the_policys(self):
        """A cap of 50 leaves NORMAL's 5 in force, and agent.max_leverage reads the policy's current value."""
        store = await _store()
        try:
            sizer = RLPositionSizingAgent(policy_store=store, max_leverage=50, learner=MultiplierLearner(epsilon=0.0))
            decision = sizer.decide("X", 100, 10, 0.9, stop_distance=0.01)
            assert (5.0, 500) == (sizer.max_leverage, pytest.approx(decision.notional))
            await store.switch_mode("DEFENSIVE", reason="calm")
            assert 3.0 == sizer.max_leverage
        finally:
            await store.close()

    async def test_max_leverage_reads_the_default_strategys_cap(self):
        """With a default strategy, the policy's value is that strategy's effective leverage."""
        store = await _store()
        try:
            sizer = RLPositionSizingAgent(policy_store=store, strategy="moderate", max_leverage=4.0)
            assert 3.0 == sizer.max_leverage
        finally:
            await store.close()

    @pytest.mark.parametrize(
        "bad", [0, -1.0, math.nan, math.inf, True, "2", 10**400], ids=["0", "-1", "nan", "inf", "bool", "str", "1e400"]
    )
    def test_bad_max_leverage_refused_naming_it(self, bad):
        """The cap must be a positive finite number."""
        with pytest.raises(ValueError, match="max_leverage"):
            RLPositionSizingAgent(_offline_store(), max_leverage=bad)

    async def test_use_math_ai_false_multiplier_is_one_whatever_enable_rl(self):
        """With use_math_ai=False an exploring learner never shrinks a size, even with ai.enable_rl on."""
        store = await _store()
        try:
            sizer = RLPositionSizingAgent(policy_store=store, use_math_ai=False, learner=MultiplierLearner(epsilon=1.0))
            assert store.get("ai.enable_rl") is True
            multipliers = {sizer.decide("X", 10_000, 100, 0.9, stop_distance=50).multiplier for _ in range(30)}
            assert {1.0} == multipliers
        finally:
            await store.close()

    async def test_use_math_ai_true_follows_enable_rl(self):
        """With use_math_ai=True the learner explores while ai.enable_rl is on, and stops when it is off."""
        store = await _store()
        try:
            sizer = RLPositionSizingAgent(policy_store=store, use_math_ai=True, learner=MultiplierLearner(epsilon=1.0))
            learned = {sizer.decide("X", 10_000, 100, 0.9, stop_distance=50).multiplier for _ in range(30)}
            await store.update({"modes.NORMAL.enable_rl": False}, reason="no learning")
            off = {sizer.decide("X", 10_000, 100, 0.9, stop_distance=50).multiplier for _ in range(30)}
            assert len(learned) > 1
            assert {1.0} == off
        finally:
            await store.close()


class TestNumbersTooLargeForAFloat:
    """An argument no float can hold is a bad argument, not an OverflowError from the arithmetic."""

    @pytest.mark.parametrize("name", ["equity", "price", "stop_distance", "volatility"])
    def test_decide_huge_integer_raises_value_error_naming_it(self, name):
        """10**400 compares below inf but overflows a float: refused, naming the argument."""
        args = {"equity": 10_000, "price": 100, "stop_distance": None, "volatility": 0.01, name: 10**400}
        sizer = RLPositionSizingAgent(_offline_store(), learner=MultiplierLearner(epsilon=0.0))
        with pytest.raises(ValueError, match=name):
            sizer.decide(
                "X",
                args["equity"],
                args["price"],
                0.9,
                args["stop_distance"],
                args["volatility"],
                policy=POLICIES["NORMAL"],
            )
