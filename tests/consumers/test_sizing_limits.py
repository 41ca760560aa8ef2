"""The sizer under instrument limits and exposure: it sizes to the tightest cap and names it."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policystore import PolicyStore
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.pretrade import size_refusal
from policystore.consumers.sizing import RLPositionSizingAgent, size_position
from policystore.model.changes import apply_patch
from policystore.model.controls import TradingRules
from policystore.model.policy import default_policy

BASE = default_policy()


def _offline_store() -> PolicyStore:
    # Never opened: these tests hand the sizer the snapshot to decide from.
    return PolicyStore(f"memory://sizing-{uuid.uuid4().hex}", lkg_path=None, watch=False)


def sizer() -> RLPositionSizingAgent:
    return RLPositionSizingAgent(_offline_store(), learner=MultiplierLearner(epsilon=0.0))


class TestSizePosition:
    """The pure arithmetic with the extra caps."""

    def test_notional_and_quantity_caps_bind_by_name(self):
        """The tightest extra cap sets the size and is named."""
        quantity, binding = size_position(
            10_000,
            100.0,
            1.0,
            risk_pct=0.015,
            max_leverage=5.0,
            scaling=1.0,
            size_cap=1000.0,
            notional_caps=(("max_order_notional", 400.0), ("max_gross_exposure", 700.0)),
            quantity_cap=5.0,
        )
        assert 4.0 == pytest.approx(quantity)
        assert ("max_order_notional",) == binding

    def test_no_room_left_gives_zero_naming_the_cap(self):
        """A room at or below zero leaves nothing, and says which."""
        quantity, binding = size_position(
            10_000,
            100.0,
            1.0,
            risk_pct=0.015,
            max_leverage=5.0,
            scaling=1.0,
            size_cap=1000.0,
            notional_caps=(("max_gross_exposure", -50.0),),
        )
        assert (0.0, ("max_gross_exposure",)) == (quantity, binding)


class TestDecideWithinLimits:
    """RLPositionSizingAgent.decide reads the instrument's limits from the snapshot it is given."""

    def test_default_limits_apply_to_a_symbol_without_entry(self):
        """instruments.default.max_order_quantity binds an unlisted symbol."""
        policy = apply_patch(BASE, {"instruments.default.max_order_quantity": 2})
        decision = sizer().decide("XRP", 10_000, 100.0, 0.9, stop_distance=1.0, policy=policy)
        assert (2.0, ("max_order_quantity",)) == (decision.quantity, decision.binding_caps)

    def test_room_under_position_limit_uses_the_held_notional(self):
        """300 held under a 1,000 limit leaves 700."""
        policy = apply_patch(BASE, {"instruments.BTC.max_position_notional": 1_000})
        decision = sizer().decide("BTC", 10_000, 100.0, 0.9, stop_distance=1.0, policy=policy, position_notional=300)
        assert 700 == pytest.approx(decision.notional)
        assert "max_position_notional" in decision.binding_caps

    def test_room_under_gross_exposure_binds_and_is_named_last(self):
        """600 exposed under 1,000 leaves 400, tighter than the 500 order limit: only the exposure is named."""
        policy = apply_patch(BASE, {"trading.max_gross_exposure": 1_000, "instruments.BTC.max_order_notional": 500})
        decision = sizer().decide("BTC", 10_000, 100.0, 0.9, stop_distance=1.0, policy=policy, gross_exposure=600.0)
        assert 400 == pytest.approx(decision.notional)
        assert ("max_gross_exposure",) == decision.binding_caps

    def test_no_room_names_every_cap_without_room_in_order(self):
        """The position limit held in full and the exposure limit reached: a zero size naming both, in order."""
        policy = apply_patch(BASE, {"trading.max_gross_exposure": 1_000, "instruments.BTC.max_position_notional": 300})
        decision = sizer().decide(
            "BTC", 10_000, 100.0, 0.9, stop_distance=1.0, policy=policy, position_notional=300.0, gross_exposure=1e3
        )
        assert (0.0, ("max_position_notional", "max_gross_exposure")) == (decision.quantity, decision.binding_caps)

    @pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), 10**400])
    def test_bad_exposure_figure_refused_naming_it(self, bad):
        """An exposure that is no finite number >= 0 is an argument error."""
        policy = apply_patch(BASE, {"trading.max_gross_exposure": 1_000})
        with pytest.raises(ValueError, match="gross_exposure"):
            sizer().decide("BTC", 10_000, 100.0, 0.9, stop_distance=1.0, policy=policy, gross_exposure=bad)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        equity=st.floats(min_value=10.0, max_value=1e8),
        price=st.floats(min_value=1e-3, max_value=1e5),
        stop_fraction=st.floats(min_value=1e-4, max_value=0.5),
        order_notional=st.none() | st.floats(min_value=1e-2, max_value=1e7),
        quantity=st.none() | st.floats(min_value=1e-4, max_value=1e6),
        position=st.none() | st.floats(min_value=1e-2, max_value=1e7),
        gross=st.none() | st.floats(min_value=1e-2, max_value=1e7),
        held=st.floats(min_value=0.0, max_value=1e6),
        exposure=st.floats(min_value=0.0, max_value=1e6),
    )
    def test_never_proposes_what_the_executor_refuses(  # noqa: PLR0917 - hypothesis passes each drawn value
        self, equity, price, stop_fraction, order_notional, quantity, position, gross, held, exposure
    ):
        """Whatever the limits and what is held, a size the sizer gives passes the executor's last check."""
        patch = {
            "instruments.BTC.max_order_notional": order_notional,
            "instruments.BTC.max_order_quantity": quantity,
            "instruments.BTC.max_position_notional": position,
            "trading.max_gross_exposure": gross,
        }
        policy = apply_patch(BASE, patch)
        decision = sizer().decide(
            "BTC",
            equity,
            price,
            0.9,
            stop_distance=price * stop_fraction,
            policy=policy,
            position_notional=held,
            gross_exposure=exposure,
        )
        rules = TradingRules(policy)
        if decision.quantity > 0:
            assert size_refusal(rules, rules.instrument("BTC"), decision.quantity, price, held, exposure) is None
        else:
            assert decision.binding_caps  # a zero size says which cap left no room
