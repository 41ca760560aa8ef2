"""The trading states and controls as readers are shown them: the path a scope's state is written at, the scope
that decided a state, and every state and limit in force with the path that set it."""

from __future__ import annotations

import pytest

from policystore.errors import PolicyValidationError
from policystore.model.changes import apply_patch
from policystore.model.policy import Policy, default_policy
from policystore.model.trading_view import in_force, path_facts, scope_of, state_path


def _policy(**changes: object) -> Policy:
    return apply_patch(default_policy(), changes) if changes else default_policy()


class TestStatePath:
    def test_each_scope_has_its_path(self) -> None:
        """No scope: the firm's; a strategy's; an instrument's, a dotted or slashed symbol and the default too."""
        policy = _policy()

        assert "trading.state" == state_path(policy)
        assert "strategies.moderate.state" == state_path(policy, strategy="moderate")
        assert "instruments.BTC/USD.state" == state_path(policy, symbol="BTC/USD")
        assert "instruments.BRK.B.state" == state_path(policy, symbol="BRK.B")
        assert "instruments.default.state" == state_path(policy, symbol="default")

    def test_unknown_strategy_is_refused_with_the_nearest_name_and_the_list(self) -> None:
        """The error's path is the strategy's; the sentence suggests the nearest name and lists them all."""
        with pytest.raises(PolicyValidationError) as refused:
            state_path(_policy(), strategy="moderat")

        assert ("strategies.moderat",) == refused.value.paths
        assert "did you mean moderate?" in str(refused.value)
        assert "aggressive, conservative, defensive, moderate" in str(refused.value)

    def test_two_scopes_at_once_are_refused(self) -> None:
        """A state belongs to one scope."""
        with pytest.raises(PolicyValidationError, match="not both"):
            state_path(_policy(), strategy="moderate", symbol="BTC")


class TestScopes:
    @pytest.mark.parametrize(
        ("path", "scope"),
        [
            ("emergency.active", "kill switch"),
            ("trading.state", "firm"),
            ("strategies.aggressive.state", "strategy"),
            ("instruments.default.state", "default"),
            ("instruments.BTC.state", "instrument"),
            ("instruments.DEFAULT.X.state", "instrument"),  # a symbol is upper case; only 'default' is the default
        ],
    )
    def test_scope_of_each_deciding_path(self, path: str, scope: str) -> None:
        """Each path a verdict may name belongs to one scope."""
        assert scope == scope_of(path)


class TestInForce:
    def test_states_in_force_name_the_scope_that_decided(self) -> None:
        """Kill switch on: the firm reduces; a halted instrument decides its own; a default halt decides the rest."""
        policy = _policy(
            **{
                "emergency.active": True,
                "emergency.reason": "outage",
                "instruments.BTC.state": "halted",
                "instruments.ETH.max_order_quantity": 5,
                "strategies.aggressive.state": "halted",
            }
        )

        view = in_force(policy)

        assert {"state": "reducing", "set_by": "emergency.active", "scope": "kill switch"} == view["trading"][
            "effective_state"
        ]
        assert "strategy" == view["trading"]["strategies"]["aggressive"]["scope"]
        assert "kill switch" == view["trading"]["strategies"]["moderate"]["scope"]
        assert ("halted", "instrument") == (
            view["instruments"]["BTC"]["in_force"]["state"],
            view["instruments"]["BTC"]["in_force"]["scope"],
        )
        assert "kill switch" == view["instruments"]["ETH"]["in_force"]["scope"]
        assert ["default", "BTC", "ETH"] == list(view["instruments"])

    def test_limits_name_their_source(self) -> None:
        """Own value, the default's, a hard cap, none."""
        policy = _policy(
            **{
                "instruments.BTC.max_order_notional": 10_000,
                "instruments.default.price_collar": 0.02,
                "hard_limits.max_position_notional": 500_000,
            }
        )

        btc = in_force(policy)["instruments"]["BTC"]

        assert {"value": 10_000, "set_by": "instruments.BTC.max_order_notional"} == btc["max_order_notional"]
        assert {"value": 0.02, "set_by": "instruments.default.price_collar"} == btc["price_collar"]
        assert {"value": 500_000, "set_by": "hard_limits.max_position_notional"} == btc["max_position_notional"]
        assert None is btc["max_order_quantity"]

    def test_path_facts_only_for_trading_paths(self) -> None:
        """A state gets set_by and in_force, a limit set_by; other paths and unknown entries nothing."""
        policy = _policy(**{"instruments.BTC.max_order_quantity": 5, "instruments.default.state": "reducing"})

        assert {
            "set_by": "instruments.default.state",
            "in_force": {"state": "reducing", "set_by": "instruments.default.state", "scope": "default"},
        } == path_facts(policy, "instruments.BTC.state")
        assert {"set_by": "instruments.BTC.max_order_quantity"} == path_facts(
            policy, "instruments.BTC.max_order_quantity"
        )
        assert {"set_by": None} == path_facts(policy, "trading.max_daily_loss")
        assert {} == path_facts(policy, "risk.max_leverage")
        assert {} == path_facts(policy, "instruments.ETH.state")
