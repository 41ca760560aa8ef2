"""Built-in modes, presets and the ranges of a mode's fields."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from policystore import PRESETS, RiskMode, RiskModeConfig
from policystore.model.modes import AI_FLAGS, BUILTIN_MODES, LIMIT_FIELDS
from policystore.model.policy import default_policy

# The contract's table (CONTRACT section 1), column by column.
CONTRACT_TABLE = {
    "NORMAL": (5.0, 0.015, 0.05, 30, 0.50, 1.0, 1000, True),
    "AGGRESSIVE_SMALL_ACCOUNT": (7.0, 0.03, 0.06, 15, 0.45, 1.5, 300, True),
    "DEFENSIVE": (3.0, 0.0075, 0.03, 10, 0.60, 0.7, 500, False),
}
COLUMNS = (
    "max_leverage",
    "max_risk_pct_per_trade",
    "max_daily_drawdown",
    "max_positions",
    "global_min_confidence",
    "scaling_factor",
    "position_size_cap",
)
VALID = dataclasses.asdict(BUILTIN_MODES["NORMAL"])


class TestBuiltinModes:
    """The modes a new store starts with."""

    def test_builtin_modes_names_match_enum(self) -> None:
        """Exactly the three contract modes are built in, and RiskMode names them."""
        assert sorted(CONTRACT_TABLE) == sorted(BUILTIN_MODES)
        assert sorted(CONTRACT_TABLE) == sorted(m.value for m in RiskMode)

    @pytest.mark.parametrize("name", sorted(CONTRACT_TABLE))
    def test_builtin_mode_values_equal_contract_table(self, name: str) -> None:
        """Every limit of every built-in mode is the contract's value."""
        *limits, learning = CONTRACT_TABLE[name]
        mode = BUILTIN_MODES[name]
        assert dict(zip(COLUMNS, limits, strict=True)) == {c: getattr(mode, c) for c in COLUMNS}
        assert (learning, learning) == (mode.enable_clm, mode.enable_retraining)

    @pytest.mark.parametrize("name", sorted(CONTRACT_TABLE))
    def test_builtin_mode_other_ai_flags_on(self, name: str) -> None:
        """All AI flags other than clm and retraining are on in every built-in mode."""
        others = [f for f in AI_FLAGS if f not in {"enable_clm", "enable_retraining"}]
        assert dict.fromkeys(others, True) == {f: getattr(BUILTIN_MODES[name], f) for f in others}

    def test_default_policy_active_mode_normal(self) -> None:
        """A new policy runs NORMAL with the built-in modes."""
        policy = default_policy()
        assert "NORMAL" == policy.active_mode
        assert dict(BUILTIN_MODES) == dict(policy.modes)
        assert BUILTIN_MODES["NORMAL"] == policy.risk

    def test_risk_mode_str_is_name(self) -> None:
        """A RiskMode prints and compares as its name."""
        assert "DEFENSIVE" == str(RiskMode.DEFENSIVE)
        assert RiskMode.DEFENSIVE == "DEFENSIVE"


class TestPresets:
    """The ready modes users can add."""

    def test_presets_names_are_contract_names(self) -> None:
        """The three presets the contract names ship, each with its rationale."""
        assert ["BEAR_MARKET", "BULL_MARKET", "HIGH_VOLATILITY"] == sorted(PRESETS)
        for name, (config, doc) in PRESETS.items():
            assert isinstance(config, RiskModeConfig)
            assert doc.startswith(name)

    def test_presets_within_default_hard_limits(self) -> None:
        """Every preset can be added to a default policy without breaking a cap."""
        caps = default_policy().hard_limits
        for config, _doc in PRESETS.values():
            for field, direction in LIMIT_FIELDS.items():
                value, cap = getattr(config, field), getattr(caps, field)
                assert (value <= cap) if direction > 0 else (value >= cap)


class TestRiskModeConfigRanges:
    """Field ranges of one mode, checked on construction."""

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("max_leverage", 0),
            ("max_leverage", -1.0),
            ("max_leverage", float("inf")),
            ("max_risk_pct_per_trade", 0),
            ("max_risk_pct_per_trade", 1.01),
            ("max_daily_drawdown", 0),
            ("max_daily_drawdown", 2),
            ("max_positions", 0),
            ("max_positions", 2.5),
            ("global_min_confidence", -0.01),
            ("global_min_confidence", 1.01),
            ("scaling_factor", 0),
            ("position_size_cap", -5),
            ("max_leverage", True),
            ("max_positions", False),
        ],
    )
    def test_risk_mode_config_out_of_range_refused(self, field: str, value: object) -> None:
        """An out-of-range (or boolean) value for a limit is refused, naming the field."""
        with pytest.raises(ValidationError) as caught:
            RiskModeConfig(**{**VALID, field: value})
        assert [field] == [e["loc"][0] for e in caught.value.errors()]

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("max_risk_pct_per_trade", 1.0),
            ("max_daily_drawdown", 1),
            ("global_min_confidence", 0.0),
            ("global_min_confidence", 1.0),
            ("max_positions", 1),
        ],
    )
    def test_risk_mode_config_range_edges_accepted(self, field: str, value: float) -> None:
        """The inclusive edges of each range are accepted."""
        assert value == getattr(RiskModeConfig(**{**VALID, field: value}), field)

    def test_risk_mode_config_unknown_field_refused(self) -> None:
        """A field the model does not know is refused, not ignored."""
        with pytest.raises(ValidationError):
            RiskModeConfig(**{**VALID, "max_levrage": 2.0})

    def test_risk_mode_config_assignment_refused(self) -> None:
        """A mode is frozen: assigning to a field fails."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            BUILTIN_MODES["NORMAL"].max_leverage = 9.0  # type: ignore[misc]
