"""Numbers a float cannot hold: refused by the model in every section, unusable as a figure, named briefly."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from policystore import PolicyValidationError
from policystore.model.changes import apply_patch
from policystore.model.numbers import MAX_SAFE_INTEGER, finite_float, short_repr
from policystore.model.policy import default_policy
from policystore.model.validation import build_policy, build_policy_json
from policystore.store.env import overlay_environment

BASE = default_policy()
HUGE = 10**400

#: One float field and one integer field (where the section has one) of every section.
FLOAT_PATHS = [
    "modes.NORMAL.max_leverage",
    "modes.DEFENSIVE.position_size_cap",
    "strategies.moderate.max_leverage",
    "strategies.aggressive.cooldown_seconds",
    "hard_limits.max_leverage",
    "hard_limits.position_size_cap",
]
INTEGER_PATHS = ["modes.NORMAL.max_positions", "strategies.moderate.max_positions", "hard_limits.max_positions"]


def with_value(path: str, value: Any) -> dict[str, Any]:
    """The default document with ``value`` written at ``path``."""
    data = copy.deepcopy(BASE.document())
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[leaf] = value
    return data


class TestModelRefusesUnrepresentableNumbers:
    """Every section refuses a number a float cannot hold, naming the path; nothing else is raised."""

    @pytest.mark.parametrize("path", FLOAT_PATHS + INTEGER_PATHS)
    @pytest.mark.parametrize(
        "value", [HUGE, -HUGE, 10**5000, float("inf"), float("nan")], ids=["1e400", "-1e400", "1e5000", "inf", "nan"]
    )
    def test_patch_with_unrepresentable_number_refused_naming_the_path(self, path: str, value: Any) -> None:
        """``10**400`` raised OverflowError from the hard-cap check; now it is a validation error on its path."""
        with pytest.raises(PolicyValidationError) as caught:
            apply_patch(BASE, {path: value})
        assert (path,) == caught.value.paths
        assert len(str(caught.value)) < 300  # the value is named by its size, not written out

    @pytest.mark.parametrize("path", FLOAT_PATHS + INTEGER_PATHS)
    def test_document_with_huge_integer_refused_from_data_and_json(self, path: str) -> None:
        """An import (data) and a change notice (JSON text) refuse it alike."""
        data = with_value(path, HUGE)
        for build in (build_policy, lambda d: build_policy_json(json.dumps(d))):
            with pytest.raises(PolicyValidationError) as caught:
                build(data)
            assert (path,) == caught.value.paths

    @pytest.mark.parametrize("path", INTEGER_PATHS)
    def test_integer_field_beyond_two_to_the_53_refused(self, path: str) -> None:
        """An integer field holds at most 2**53, the integers every reader holds exactly."""
        with pytest.raises(PolicyValidationError) as caught:
            apply_patch(BASE, {path: MAX_SAFE_INTEGER + 1})
        assert (path,) == caught.value.paths

    def test_float_field_integer_that_would_round_refused(self) -> None:
        """2**53 + 1 as a size cap would be stored as 2**53: the limit written is not the limit kept."""
        with pytest.raises(PolicyValidationError) as caught:
            apply_patch(BASE, {"hard_limits.position_size_cap": MAX_SAFE_INTEGER + 1})
        assert ("hard_limits.position_size_cap",) == caught.value.paths

    def test_float_field_exact_large_integer_accepted(self) -> None:
        """An integer a float holds exactly is a valid number, however large."""
        policy = apply_patch(BASE, {"hard_limits.position_size_cap": 10**20})
        assert 1e20 == policy.hard_limits.position_size_cap

    def test_version_beyond_two_to_the_53_or_boolean_refused(self) -> None:
        """A stored version must be a plain integer no larger than 2**53."""
        for version in (MAX_SAFE_INTEGER + 1, True):
            with pytest.raises(PolicyValidationError) as caught:
                build_policy(with_value("version", version))
            assert ("version",) == caught.value.paths


class TestEnvironmentVariables:
    """A variable holding a huge number is reported and ignored; the process still starts."""

    @pytest.mark.parametrize(
        "name",
        ["POLICYSTORE_RISK__MAX_POSITIONS", "POLICYSTORE_RISK__MAX_LEVERAGE", "POLICYSTORE_HARD_LIMITS__MAX_POSITIONS"],
    )
    @pytest.mark.parametrize(
        "raw", ["1" + "0" * 400, "1" + "0" * 5000, "1e400"], ids=["400-zeros", "5000-zeros", "1e400"]
    )
    def test_huge_number_variable_reported_and_not_used(self, name: str, raw: str) -> None:
        """The overlay keeps the default value and says in one short line why the variable was not used."""
        overlay = overlay_environment(BASE, {name: raw})
        assert BASE == overlay.policy
        assert [name] == list(overlay.problems)
        assert len(overlay.problems[name]) < 300
        assert "sys.set_int_max_str_digits" not in overlay.problems[name]


class TestFiniteFloat:
    """Reading a reported figure: any real number or Decimal, or None when it is unusable."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (0.06, 0.06),
            (3, 3.0),
            (Fraction(6, 100), 0.06),
            (Decimal("0.06"), 0.06),
            (-0.5, -0.5),
        ],
    )
    def test_finite_float_reads_numbers(self, value: Any, expected: float) -> None:
        """Every kind of real number converts to the float it stands for."""
        assert expected == finite_float(value)

    @pytest.mark.parametrize(
        "value",
        [None, "0.06", True, float("nan"), float("inf"), HUGE, Decimal("NaN"), Decimal("sNaN"), Decimal("1e400")],
    )
    def test_finite_float_unusable_figures_give_none(self, value: Any) -> None:
        """Strings, booleans, NaN, infinities and numbers too large for a float are no figure."""
        assert finite_float(value) is None


class TestShortRepr:
    """Values quoted in messages stay short."""

    def test_short_repr_huge_integer_described_by_size(self) -> None:
        """A 5001-digit integer, which repr() refuses outright, is described by its size."""
        assert "an integer of about 5001 digits" == short_repr(10**5000)
        assert "a negative integer of about 401 digits" == short_repr(-HUGE)

    def test_short_repr_long_text_truncated(self) -> None:
        """A long value is cut with an ellipsis."""
        shown = short_repr("x" * 500)
        assert shown.endswith("...")
        assert 40 == len(shown)

    def test_short_repr_small_values_unchanged(self) -> None:
        """Ordinary values read as their repr."""
        assert ["5.0", "'NORMAL'", "None"] == [short_repr(5.0), short_repr("NORMAL"), short_repr(None)]
