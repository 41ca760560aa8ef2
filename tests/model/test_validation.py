"""Validation of whole policy documents: ranges, hard caps, cross-field rules, every failure listed."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policystore import FieldError, PolicyValidationError
from policystore.model.modes import BUILTIN_MODES
from policystore.model.policy import Policy, default_policy
from policystore.model.validation import build_policy, build_policy_json


def document() -> dict[str, Any]:
    """A fresh, valid, plain-data policy document."""
    return copy.deepcopy(default_policy().document())


Builder = Callable[[dict[str, Any]], Policy]
# Both ways in: from Python data, and from JSON text as a change notice carries it.
BUILDERS: list[Builder] = [build_policy, lambda data: build_policy_json(json.dumps(data))]
BUILDER_IDS = ["data", "json"]


@pytest.fixture(params=BUILDERS, ids=BUILDER_IDS)
def build(request: pytest.FixtureRequest) -> Builder:
    """Each way of building a policy; both must accept and refuse alike."""
    return request.param  # type: ignore[no-any-return]


class TestBuildPolicy:
    """Turning plain data into a Policy."""

    def test_build_policy_default_document_round_trips(self, build: Builder) -> None:
        """The default policy's document builds back into an equal policy."""
        assert default_policy() == build(document())

    @pytest.mark.parametrize(
        ("path", "value"),
        [
            ("modes.NORMAL.max_leverage", 0),
            ("modes.NORMAL.max_leverage", -2.0),
            ("modes.NORMAL.max_leverage", 10.5),  # above the hard cap of 10
            ("modes.NORMAL.max_risk_pct_per_trade", 0),
            ("modes.NORMAL.max_risk_pct_per_trade", 1.5),
            ("modes.NORMAL.max_risk_pct_per_trade", 0.06),  # above the hard cap of 0.05
            ("modes.DEFENSIVE.max_daily_drawdown", -0.1),
            ("modes.DEFENSIVE.max_daily_drawdown", 1.01),
            ("modes.DEFENSIVE.max_positions", 0),
            ("modes.DEFENSIVE.max_positions", 101),  # above the hard cap of 100
            ("modes.NORMAL.global_min_confidence", -0.1),
            ("modes.NORMAL.global_min_confidence", 1.1),
            ("modes.NORMAL.global_min_confidence", 0.2),  # below the hard floor of 0.3
            ("modes.NORMAL.scaling_factor", 0),
            ("modes.NORMAL.scaling_factor", 2.5),  # above the hard cap of 2
            ("modes.NORMAL.position_size_cap", 0),
            ("modes.NORMAL.position_size_cap", 20_000),  # above the hard cap of 10,000
            ("strategies.moderate.cooldown_seconds", -1),
            ("strategies.moderate.min_confidence", 1.2),
            ("strategies.moderate.max_leverage", 11.0),
            ("strategies.moderate.max_positions", 0),
            ("hard_limits.max_leverage", 0),
            ("hard_limits.max_risk_pct_per_trade", 1.2),
            ("hard_limits.global_min_confidence", 2),
            ("updated_at", "2024-01-01T00:00:00"),  # no time zone
        ],
    )
    def test_build_policy_out_of_range_value_refused(self, build: Builder, path: str, value: Any) -> None:
        """Every out-of-range value is refused and the error names its path."""
        data = document()
        *parents, leaf = path.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[leaf] = value
        with pytest.raises(PolicyValidationError) as caught:
            build(data)
        assert path in caught.value.paths

    def test_build_policy_many_failures_all_listed(self, build: Builder) -> None:
        """One error lists every failing field, range and cap failures together."""
        data = document()
        data["modes"]["NORMAL"]["max_leverage"] = -1
        data["modes"]["NORMAL"]["max_positions"] = 0
        data["modes"]["DEFENSIVE"]["global_min_confidence"] = 1.5
        data["modes"]["AGGRESSIVE_SMALL_ACCOUNT"]["max_leverage"] = 50.0
        data["strategies"]["moderate"]["cooldown_seconds"] = -5
        data["hard_limits"]["max_positions"] = 0
        with pytest.raises(PolicyValidationError) as caught:
            build(data)
        expected = {
            "modes.NORMAL.max_leverage",
            "modes.NORMAL.max_positions",
            "modes.DEFENSIVE.global_min_confidence",
            "modes.AGGRESSIVE_SMALL_ACCOUNT.max_leverage",
            "strategies.moderate.cooldown_seconds",
            "hard_limits.max_positions",
        }
        assert expected == set(caught.value.paths)
        assert all(isinstance(e, FieldError) and e.message for e in caught.value.errors)
        assert f"{len(expected)} fields failed" in str(caught.value)

    def test_build_policy_unknown_active_mode_refused(self, build: Builder) -> None:
        """The active mode must be one of the policy's modes."""
        data = document()
        data["active_mode"] = "TURBO"
        with pytest.raises(PolicyValidationError) as caught:
            build(data)
        assert ("active_mode",) == caught.value.paths
        assert "TURBO" in str(caught.value)

    def test_build_policy_builtin_mode_removed_refused(self, build: Builder) -> None:
        """A built-in mode cannot be removed."""
        data = document()
        del data["modes"]["DEFENSIVE"]
        with pytest.raises(PolicyValidationError) as caught:
            build(data)
        assert "modes.DEFENSIVE" in caught.value.paths

    def test_build_policy_bad_mode_name_refused(self, build: Builder) -> None:
        """Mode names are upper case; strategy names are lower case."""
        data = document()
        data["modes"]["calm"] = data["modes"]["NORMAL"]
        data["strategies"]["Fast"] = {"cooldown_seconds": 1}
        with pytest.raises(PolicyValidationError) as caught:
            build(data)
        assert {"modes.calm", "strategies.Fast"} <= set(caught.value.paths)

    def test_build_policy_kill_switch_without_reason_refused(self, build: Builder) -> None:
        """An active kill switch needs a reason."""
        data = document()
        data["emergency"]["active"] = True
        with pytest.raises(PolicyValidationError) as caught:
            build(data)
        assert ("emergency.reason",) == caught.value.paths

    def test_build_policy_unknown_field_refused(self, build: Builder) -> None:
        """An unknown field in a mode is reported, not dropped."""
        data = document()
        data["modes"]["NORMAL"]["max_levrage"] = 3
        with pytest.raises(PolicyValidationError) as caught:
            build(data)
        assert ("modes.NORMAL.max_levrage",) == caught.value.paths
        assert "is not a known field" in str(caught.value)

    def test_build_policy_boolean_as_number_refused(self, build: Builder) -> None:
        """A boolean is not accepted where a limit is expected."""
        data = document()
        data["modes"]["NORMAL"]["max_leverage"] = True
        with pytest.raises(PolicyValidationError) as caught:
            build(data)
        assert ("modes.NORMAL.max_leverage",) == caught.value.paths


class TestBuildPolicyJson:
    """What only JSON text can get wrong."""

    def test_text_that_is_not_json_refused(self) -> None:
        """Broken text is a validation error naming the document, not a crash."""
        with pytest.raises(PolicyValidationError, match="not valid JSON"):
            build_policy_json(b'{"active_mode": ')

    def test_number_as_text_checked_against_cap(self) -> None:
        """A limit sent as a JSON string is still held to the hard cap."""
        data = document()
        data["modes"]["NORMAL"]["max_leverage"] = "50"
        with pytest.raises(PolicyValidationError) as caught:
            build_policy_json(json.dumps(data))
        assert ("modes.NORMAL.max_leverage",) == caught.value.paths


class TestPolicyValidationError:
    """The error itself."""

    def test_policy_validation_error_is_value_error(self) -> None:
        """Callers that catch ValueError catch validation errors too."""
        error = PolicyValidationError([FieldError("a.b", "is wrong")])
        assert isinstance(error, ValueError)
        assert "Invalid policy value: a.b: is wrong." == str(error)
        assert ("a.b",) == error.paths


# Values each limit must refuse under the default hard caps: out of range, or past the cap.
OUT_OF_RANGE: dict[str, st.SearchStrategy[float]] = {
    "max_leverage": st.one_of(st.floats(-100, 0), st.floats(10.001, 1e6)),
    "max_risk_pct_per_trade": st.one_of(st.floats(-1, 0), st.floats(0.0501, 10)),
    "max_daily_drawdown": st.one_of(st.floats(-1, 0), st.floats(0.1001, 10)),
    "max_positions": st.one_of(st.integers(-100, 0), st.integers(101, 10_000)),
    "global_min_confidence": st.one_of(st.floats(-1, -0.001), st.floats(0, 0.2999), st.floats(1.001, 10)),
    "scaling_factor": st.one_of(st.floats(-10, 0), st.floats(2.001, 100)),
    "position_size_cap": st.one_of(st.floats(-10, 0), st.floats(10_000.01, 1e9)),
}
MODE_FIELD_PAIRS = [(m, f) for m in BUILTIN_MODES for f in OUT_OF_RANGE]


class TestValidationProperties:
    """Every out-of-range value is refused, and every failing field is listed in one error."""

    @settings(max_examples=200, deadline=None)
    @given(data=st.data(), broken=st.lists(st.sampled_from(MODE_FIELD_PAIRS), min_size=1, max_size=8, unique=True))
    @pytest.mark.parametrize("build", BUILDERS, ids=BUILDER_IDS)
    def test_build_policy_random_bad_values_each_listed_once(
        self, build: Builder, data: st.DataObject, broken: list[tuple[str, str]]
    ) -> None:
        """Breaking any set of mode limits yields one error naming exactly those fields."""
        document_ = document()
        for mode, field in broken:
            document_["modes"][mode][field] = data.draw(OUT_OF_RANGE[field], label=f"{mode}.{field}")
        with pytest.raises(PolicyValidationError) as caught:
            build(document_)
        assert sorted(f"modes.{m}.{f}" for m, f in broken) == sorted(caught.value.paths)
