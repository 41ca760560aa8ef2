"""Dot paths: the flattened table, suggestions and unknown-path errors."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policystore import UnknownPathError
from policystore.model.changes import apply_patch
from policystore.model.modes import AI_FLAGS, BUILTIN_MODES, LIMIT_FIELDS, MODE_FIELDS
from policystore.model.paths import clamped_override, flatten, reflatten, suggest
from policystore.model.policy import STRATEGY_FIELDS, default_policy


class TestFlatten:
    """Every readable path of a policy."""

    @given(
        before=st.sampled_from(sorted(BUILTIN_MODES)),
        after=st.sampled_from(sorted(BUILTIN_MODES)),
        version=st.integers(1, 10**6),
        reason=st.text(max_size=8),
    )
    def test_reflatten_equals_flatten_after_switch(self, before: str, after: str, version: int, reason: str) -> None:
        """Rebuilding from the previous table gives exactly flatten's table, keys in the same order."""
        policy = dataclasses.replace(default_policy(), active_mode=before, version=version)
        switched = dataclasses.replace(policy, active_mode=after, version=version + 1, reason=reason)
        tables: dict[str, dict[str, object]] = {}
        rebuilt = reflatten(flatten(policy), policy, switched, tables)
        assert flatten(switched) == rebuilt
        assert list(flatten(switched)) == list(rebuilt)
        # Back and forth again, the second time from the tables kept.
        back = dataclasses.replace(switched, active_mode=before, version=version + 2)
        again = dataclasses.replace(back, active_mode=after, version=version + 3)
        assert flatten(again) == reflatten(reflatten(rebuilt, switched, back, tables), back, again, tables)

    def test_flatten_covers_every_contract_section(self) -> None:
        """risk, ai, modes, strategies, emergency, hard_limits, active_mode and version all answer."""
        values = flatten(default_policy())
        expected = (
            {f"risk.{f}" for f in LIMIT_FIELDS}
            | {f"ai.{f}" for f in AI_FLAGS}
            | {f"modes.{m}.{f}" for m in BUILTIN_MODES for f in MODE_FIELDS}
            | {f"strategies.{s}.{f}" for s in default_policy().strategies for f in STRATEGY_FIELDS}
            | {"emergency.active", "emergency.reason", "active_mode", "version"}
            | {f"hard_limits.{f}" for f in LIMIT_FIELDS}
        )
        assert set() == expected - set(values)

    def test_flatten_risk_follows_active_mode(self) -> None:
        """risk.* and ai.* answer for the active mode."""
        policy = dataclasses.replace(default_policy(), active_mode="DEFENSIVE")
        values = flatten(policy)
        assert 3.0 == values["risk.max_leverage"]
        assert values["ai.enable_clm"] is False
        assert 5.0 == values["modes.NORMAL.max_leverage"]

    def test_flatten_strategy_derives_and_clamps(self) -> None:
        """A strategy's unset field comes from the mode; an override never loosens the mode."""
        values = flatten(dataclasses.replace(default_policy(), active_mode="DEFENSIVE"))
        # aggressive sets nothing but a cooldown: every limit is DEFENSIVE's.
        assert 3.0 == values["strategies.aggressive.max_leverage"]
        assert 0.60 == values["strategies.aggressive.min_confidence"]
        # moderate overrides leverage to 3.0 and confidence to 0.55: the stricter wins.
        assert 0.60 == values["strategies.moderate.min_confidence"]
        assert 120 == values["strategies.moderate.cooldown_seconds"]

    def test_flatten_values_match_attributes(self) -> None:
        """Each path's value equals the attribute it names."""
        policy = default_policy()
        values = flatten(policy)
        for name, mode in policy.modes.items():
            for field in MODE_FIELDS:
                assert getattr(mode, field) == values[f"modes.{name}.{field}"]
        assert policy.version == values["version"]


class TestSuggest:
    """Nearest valid paths for a mistyped one."""

    @pytest.mark.parametrize(
        ("typo", "expected"),
        [
            ("risk.max_levrage", "risk.max_leverage"),
            ("risk.max_leverage_", "risk.max_leverage"),
            ("modes.NORMAL.max_postions", "modes.NORMAL.max_positions"),
            ("ai.enable_r", "ai.enable_rl"),
        ],
    )
    def test_suggest_typo_nearest_first(self, typo: str, expected: str) -> None:
        """The intended path is the first suggestion."""
        assert expected == suggest(typo, list(flatten(default_policy())))[0]

    def test_suggest_nothing_close_empty(self) -> None:
        """A path like nothing valid gets no suggestion."""
        assert [] == suggest("zzzzqqq", list(flatten(default_policy())))


class TestUnknownPathError:
    """The error for a path that names nothing."""

    def test_unknown_path_error_is_key_error_with_facts(self) -> None:
        """It is a KeyError, carries the path and suggestions, and names both."""
        error = UnknownPathError("risk.max_levrage", ["risk.max_leverage"])
        assert isinstance(error, KeyError)
        assert "risk.max_levrage" == error.path
        assert ("risk.max_leverage",) == error.suggestions
        assert "'risk.max_levrage'" in str(error)
        assert "'risk.max_leverage'" in str(error)

    def test_unknown_path_error_no_suggestion_points_to_paths(self) -> None:
        """Without suggestions the message points to the path list."""
        assert "policystore paths" in str(UnknownPathError("x"))


class TestClampedOverride:
    """A stored override looser than the active mode is kept, and said to be overruled."""

    def test_looser_leverage_override_names_the_mode_value_that_applies(self) -> None:
        """8.0 over NORMAL's 5.0: the mode's value applies, and the clamp says so."""
        policy = apply_patch(default_policy(), {"strategies.aggressive.max_leverage": 8.0})
        clamp = clamped_override(policy, "strategies.aggressive.max_leverage")
        assert clamp is not None
        assert (8.0, "modes.NORMAL.max_leverage", 5.0) == (clamp.override, clamp.mode_path, clamp.mode_value)
        assert "stored override 8.0 is looser than mode NORMAL's max_leverage 5.0; the mode's value applies" == (
            clamp.detail
        )
        assert 5.0 == flatten(policy)["strategies.aggressive.max_leverage"]

    def test_looser_confidence_floor_override_is_clamped(self) -> None:
        """A confidence floor is looser when lower: 0.4 under NORMAL's 0.5."""
        policy = apply_patch(default_policy(), {"strategies.aggressive.min_confidence": 0.4})
        clamp = clamped_override(policy, "strategies.aggressive.min_confidence")
        assert clamp is not None
        assert "modes.NORMAL.global_min_confidence" == clamp.mode_path

    @pytest.mark.parametrize(
        "path",
        [
            "strategies.moderate.max_leverage",  # 3.0 under 5.0: the override binds
            "strategies.aggressive.max_positions",  # no override
            "strategies.moderate.cooldown_seconds",  # not derived from the mode
            "risk.max_leverage",
            "strategies.no_such.max_leverage",
        ],
    )
    def test_no_clamp_when_the_override_binds_or_is_absent(self, path: str) -> None:
        """Only an override looser than the mode is reported."""
        assert clamped_override(default_policy(), path) is None

    def test_clamp_follows_the_active_mode(self) -> None:
        """An override of 6.0 binds under AGGRESSIVE_SMALL_ACCOUNT's 7.0 and is overruled by NORMAL's 5.0."""
        policy = apply_patch(default_policy(), {"strategies.aggressive.max_leverage": 6.0})
        aggressive = apply_patch(policy, {"active_mode": "AGGRESSIVE_SMALL_ACCOUNT"})
        assert clamped_override(policy, "strategies.aggressive.max_leverage") is not None
        assert clamped_override(aggressive, "strategies.aggressive.max_leverage") is None
