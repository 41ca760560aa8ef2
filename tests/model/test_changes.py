"""Patches, diffs and "does this raise risk?", with property tests over random patches."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policystore import PolicyValidationError, UnknownPathError
from policystore.model.changes import (
    apply_patch,
    diff_policies,
    risk_increases,
    stored_values,
    unchanged,
    writable_paths,
)
from policystore.model.modes import AI_FLAGS
from policystore.model.paths import flatten
from policystore.model.policy import default_policy
from policystore.model.validation import cross_field_errors

BASE = default_policy()
WRITABLE = [p for p in writable_paths(BASE) if not p.startswith("emergency.activated")]


def _value_for(path: str) -> st.SearchStrategy[Any]:
    """Values for ``path``: mostly of the right kind, in range or out of it."""
    leaf = path.rsplit(".", 1)[-1]
    if path == "active_mode":
        return st.sampled_from([*BASE.modes, "TURBO", "normal"])
    if leaf in AI_FLAGS or path == "emergency.active":
        return st.booleans()
    if path == "emergency.reason":
        return st.one_of(st.none(), st.text(min_size=1, max_size=10))
    if leaf == "max_positions":
        return st.one_of(st.integers(-5, 150), st.none())
    numbers = st.one_of(
        st.floats(-1.0, 12_000.0, allow_nan=False),
        st.floats(0.0, 1.5, allow_nan=False),
        st.sampled_from([0, 0.0, 1, float("inf")]),
    )
    return st.one_of(numbers, st.none()) if path.startswith("strategies.") else numbers


@st.composite
def patches(draw: st.DrawFn) -> dict[str, Any]:
    """A random patch: a random subset of writable paths, sometimes with an unknown path."""
    paths = draw(st.lists(st.sampled_from(WRITABLE), min_size=1, max_size=6, unique=True))
    patch = {p: draw(_value_for(p)) for p in paths}
    if draw(st.integers(0, 9)) == 0:
        patch[draw(st.sampled_from(["risk.max_leverage", "modes.NORMAL.max_levrage", "nope"]))] = 1.0
    return patch


class TestApplyPatchProperties:
    """A patch applies fully or not at all, and never changes the policy it was applied to."""

    @settings(max_examples=300, deadline=None)
    @given(patch=patches())
    def test_apply_patch_random_all_or_nothing(self, patch: dict[str, Any]) -> None:
        """Random patches either apply every value or raise, leaving the original unchanged."""
        before = copy.deepcopy(BASE.document())
        try:
            new = apply_patch(BASE, patch)
        except UnknownPathError as exc:
            assert exc.path in patch  # noqa: PT017 - a property test branches on the outcome
        except PolicyValidationError:
            pass
        else:
            stored = stored_values(new)
            for path, value in patch.items():
                assert value == stored[path]
            assert set() == {c.path for c in diff_policies(BASE, new)} - set(patch)
        assert before == BASE.document()

    @settings(max_examples=300, deadline=None)
    @given(patch=patches())
    def test_accepted_patch_passes_the_full_cross_field_check(self, patch: dict[str, Any]) -> None:
        """The quick check that accepts a valid policy never accepts what the full check refuses."""
        try:
            new = apply_patch(BASE, patch)
        except (UnknownPathError, PolicyValidationError):
            return
        assert [] == cross_field_errors(new.document())

    @settings(max_examples=100, deadline=None)
    @given(patch=patches())
    def test_apply_patch_result_every_path_resolves(self, patch: dict[str, Any]) -> None:
        """Every path of a patched policy resolves, and risk.* mirrors the active mode."""
        try:
            new = apply_patch(BASE, patch)
        except (PolicyValidationError, UnknownPathError):
            return
        values = flatten(new)
        for field in ("max_leverage", "max_positions", "global_min_confidence"):
            assert values[f"modes.{new.active_mode}.{field}"] == values[f"risk.{field}"]


class TestApplyPatch:
    """Single patches with a known outcome."""

    def test_apply_patch_valid_change_keeps_metadata(self) -> None:
        """The new policy has the change and the base's version; the base is untouched."""
        new = apply_patch(BASE, {"modes.NORMAL.max_leverage": 4.0})
        assert 4.0 == new.modes["NORMAL"].max_leverage
        assert 4.0 == new.risk.max_leverage
        assert BASE.version == new.version
        assert 5.0 == BASE.modes["NORMAL"].max_leverage

    def test_apply_patch_every_failure_listed(self) -> None:
        """All failing fields of one patch are reported together."""
        patch = {
            "modes.NORMAL.max_leverage": -1,
            "modes.NORMAL.max_positions": 0,
            "modes.DEFENSIVE.global_min_confidence": 2,
            "strategies.moderate.cooldown_seconds": -3,
        }
        with pytest.raises(PolicyValidationError) as caught:
            apply_patch(BASE, patch)
        assert set(patch) == set(caught.value.paths)

    def test_apply_patch_read_only_paths_all_listed(self) -> None:
        """risk.*, ai.* and metadata are read-only; each is named in the one error."""
        with pytest.raises(PolicyValidationError) as caught:
            apply_patch(BASE, {"risk.max_leverage": 3, "ai.enable_rl": False, "version": 9})
        assert {"risk.max_leverage", "ai.enable_rl", "version"} == set(caught.value.paths)
        assert "modes.NORMAL.max_leverage" in str(caught.value)

    def test_apply_patch_unknown_path_suggests(self) -> None:
        """An unknown path raises UnknownPathError with the nearest writable path."""
        with pytest.raises(UnknownPathError) as caught:
            apply_patch(BASE, {"modes.NORMAL.max_levrage": 3})
        assert "modes.NORMAL.max_leverage" == caught.value.suggestions[0]

    def test_apply_patch_empty_refused(self) -> None:
        """An empty patch is an error, not a no-op version."""
        with pytest.raises(PolicyValidationError):
            apply_patch(BASE, {})

    def test_apply_patch_add_and_remove_mode(self) -> None:
        """A whole mode can be added, and a non-built-in one removed."""
        added = apply_patch(BASE, {"modes.CALM": dataclasses.asdict(BASE.modes["DEFENSIVE"])})
        assert BASE.modes["DEFENSIVE"] == added.modes["CALM"]
        assert "CALM" not in apply_patch(added, {"modes.CALM": None}).modes


def _every_path_compared(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """Every stored path of both policies compared, as a diff did before it read only the sections that differ."""
    before, after = stored_values(a), stored_values(b)
    missing = object()
    found = []
    for path in sorted(before.keys() | after.keys()):
        absent = None if path.startswith("instruments.") else missing
        old, new = before.get(path, absent), after.get(path, absent)
        if old != new:
            found.append((path, None if old is missing else old, None if new is missing else new))
    return found


class TestDiffPolicies:
    """Field-level differences."""

    def test_diff_policies_lists_changed_fields_only(self) -> None:
        """Only the changed stored fields appear, with old and new values."""
        new = apply_patch(BASE, {"modes.NORMAL.max_leverage": 4.0, "active_mode": "DEFENSIVE"})
        changes = {c.path: (c.old, c.new) for c in diff_policies(BASE, new)}
        assert {"modes.NORMAL.max_leverage": (5.0, 4.0), "active_mode": ("NORMAL", "DEFENSIVE")} == changes

    def test_diff_policies_equal_policies_empty(self) -> None:
        """Two equal policies have no difference."""
        assert () == diff_policies(BASE, default_policy())

    @given(first=patches(), second=patches())
    @settings(max_examples=200, deadline=None)
    def test_diff_policies_is_the_path_by_path_comparison_of_every_stored_value(
        self, first: dict[str, Any], second: dict[str, Any]
    ) -> None:
        """Reading only the sections that differ finds exactly what comparing every stored path finds, in order."""
        policies = [BASE]
        for patch in (first, second, {"instruments.BTC.max_order_notional": 10_000.0}):
            try:
                policies.append(apply_patch(policies[-1], patch))
            except (PolicyValidationError, UnknownPathError):
                continue
        for old, new in itertools.pairwise(policies):
            for a, b in ((old, new), (new, old), (BASE, new)):
                assert _every_path_compared(a, b) == [(c.path, c.old, c.new) for c in diff_policies(a, b)]


class TestRiskIncreases:
    """Which changes make a limit looser."""

    @pytest.mark.parametrize(
        ("patch", "raised"),
        [
            ({"modes.NORMAL.max_leverage": 6.0}, True),
            ({"modes.NORMAL.max_leverage": 4.0}, False),
            ({"modes.NORMAL.global_min_confidence": 0.4}, True),
            ({"modes.NORMAL.global_min_confidence": 0.6}, False),
            ({"active_mode": "AGGRESSIVE_SMALL_ACCOUNT"}, True),
            ({"active_mode": "DEFENSIVE"}, False),
            ({"strategies.moderate.cooldown_seconds": 10}, True),
            ({"hard_limits.max_leverage": 20.0}, True),
            ({"modes.NORMAL.enable_rl": False}, False),
        ],
    )
    def test_risk_increases_direction(self, patch: dict[str, Any], raised: bool) -> None:
        """Looser limits raise risk; tighter ones and flag changes do not."""
        assert raised == bool(risk_increases(BASE, apply_patch(BASE, patch)))

    def test_risk_increases_kill_switch_off_raises(self) -> None:
        """Turning the kill switch off is a risk increase; turning it on is not."""
        on = apply_patch(BASE, {"emergency.active": True, "emergency.reason": "test"})
        assert [] == risk_increases(BASE, on)
        assert ["emergency.active"] == risk_increases(on, BASE)


class TestStoredOverridesRiskIncreases:
    """A stored strategy override is a limit of its own, whatever the active mode hides today."""

    @staticmethod
    def admin_tightened() -> Any:
        """moderate as an admin left it: leverage 3.0 and confidence 0.55, as built in."""
        policy = BASE
        assert (3.0, 0.55) == (policy.strategies["moderate"].max_leverage, policy.strategies["moderate"].min_confidence)
        return policy

    def test_removing_overrides_under_a_stricter_mode_raises_risk(self) -> None:
        """DEFENSIVE (3.0, 0.60) hides moderate's overrides; removing them still loosens them under NORMAL."""
        base = self.admin_tightened()
        patch = {
            "active_mode": "DEFENSIVE",
            "strategies.moderate.max_leverage": None,
            "strategies.moderate.min_confidence": None,
        }
        raised = risk_increases(base, apply_patch(base, patch))
        assert {"strategies.moderate.max_leverage", "strategies.moderate.min_confidence"} <= set(raised)

    def test_loosening_an_override_the_mode_hides_raises_risk(self) -> None:
        """3.0 to 4.0 under DEFENSIVE's 3.0 changes nothing today and loosens the strategy under NORMAL."""
        defensive = apply_patch(BASE, {"active_mode": "DEFENSIVE"})
        raised = risk_increases(defensive, apply_patch(defensive, {"strategies.moderate.max_leverage": 4.0}))
        assert ["strategies.moderate.max_leverage"] == raised

    def test_setting_an_override_where_none_was_lowers_risk(self) -> None:
        """An override can only tighten the mode, so adding one, however high, raises nothing."""
        assert [] == risk_increases(BASE, apply_patch(BASE, {"strategies.aggressive.max_leverage": 9.0}))

    def test_removing_a_custom_mode_lowers_risk(self) -> None:
        """Removing a mode that is not active takes room away: an operator may do it."""
        added = apply_patch(BASE, {"modes.CALM": dataclasses.asdict(BASE.modes["AGGRESSIVE_SMALL_ACCOUNT"])})
        assert [] == risk_increases(added, apply_patch(added, {"modes.CALM": None}))

    def test_removing_the_active_custom_mode_refused_by_validation(self) -> None:
        """The active mode cannot be removed, so removing a mode never changes the limits in force."""
        added = apply_patch(BASE, {"modes.CALM": dataclasses.asdict(BASE.modes["DEFENSIVE"]), "active_mode": "CALM"})
        with pytest.raises(PolicyValidationError) as caught:
            apply_patch(added, {"modes.CALM": None})
        assert "active_mode" in caught.value.paths

    def test_removing_a_custom_strategy_lowers_risk(self) -> None:
        """A signal for a strategy that is gone is refused: removing one takes room away."""
        added = apply_patch(BASE, {"strategies.scalper": {"cooldown_seconds": 60}})
        assert [] == risk_increases(added, apply_patch(added, {"strategies.scalper": None}))


class TestRemovingWhatDoesNotExist:
    """Removing a mode or strategy that is not there is an unknown path, not a write."""

    @pytest.mark.parametrize(
        ("path", "suggested"),
        [("modes.DEFENSIV", "modes.DEFENSIVE"), ("strategies.moderat", "strategies.moderate")],
    )
    def test_remove_unknown_entry_raises_with_suggestion(self, path: str, suggested: str) -> None:
        """The error names the path and the nearest entry of its section."""
        with pytest.raises(UnknownPathError) as caught:
            apply_patch(BASE, {path: None})
        assert (path, suggested) == (caught.value.path, caught.value.suggestions[0])

    @pytest.mark.parametrize(
        ("path", "section"), [("modes.TYPO_MODE", BASE.modes), ("strategies.no_such", BASE.strategies)]
    )
    def test_remove_unknown_entry_far_from_any_raises(self, path: str, section: dict[str, Any]) -> None:
        """A name close to nothing is still refused, suggesting entries the section has."""
        with pytest.raises(UnknownPathError) as caught:
            apply_patch(BASE, {path: None})
        head = path.split(".", maxsplit=1)[0]
        assert path == caught.value.path
        assert caught.value.suggestions
        assert set(caught.value.suggestions) <= {f"{head}.{name}" for name in section}


class TestUnchanged:
    """What counts as a write that changes nothing."""

    def test_unchanged_ignores_the_record_and_the_kill_switch_stamp(self) -> None:
        """A new version number, author or activation stamp is no change of content."""
        on = apply_patch(BASE, {"emergency.active": True, "emergency.reason": "halt"})
        stamped = dataclasses.replace(
            on,
            version=9,
            updated_by="someone",
            reason="again",
            emergency=dataclasses.replace(on.emergency, activated_by="ops"),
        )
        assert unchanged(on, stamped)

    def test_unchanged_false_for_any_stored_field(self) -> None:
        """A mode switch, a flag or a kill-switch reason is a change."""
        for patch in ({"active_mode": "DEFENSIVE"}, {"modes.NORMAL.enable_rl": False}):
            assert not unchanged(BASE, apply_patch(BASE, patch))
        on = apply_patch(BASE, {"emergency.active": True, "emergency.reason": "halt"})
        assert not unchanged(on, apply_patch(on, {"emergency.reason": "another"}))
