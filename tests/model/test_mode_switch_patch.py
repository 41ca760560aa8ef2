"""A mode switch patch: the held policy with another active mode, as the whole-document way builds it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from policystore import Actor, PolicyStore, Role
from policystore.errors import PolicyValidationError
from policystore.model.changes import apply_patch, diff_policies
from policystore.model.policy import default_policy
from policystore.model.validation import build_policy

HELD = dataclasses.replace(
    default_policy(), version=41, updated_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), reason="held"
)


class TestModeSwitchPatch:
    """apply_patch switching the active mode builds what the whole-document way builds."""

    @pytest.mark.parametrize("mode", ["DEFENSIVE", "AGGRESSIVE_SMALL_ACCOUNT"])
    def test_switch_equals_the_validated_document(self, mode: str) -> None:
        """The switched policy equals the one validated from the whole document, its record kept."""
        switched = apply_patch(HELD, {"active_mode": mode})
        assert build_policy(HELD.document() | {"active_mode": mode}) == switched
        assert (mode, HELD.version, HELD.modes[mode]) == (switched.active_mode, switched.version, switched.risk)

    @pytest.mark.parametrize("mode", ["NOPE", "defensive", ""])
    def test_switch_to_no_mode_refused_naming_the_field(self, mode: str) -> None:
        """A mode the policy does not have is refused as before, naming active_mode."""
        with pytest.raises(PolicyValidationError) as caught:
            apply_patch(HELD, {"active_mode": mode})
        assert "active_mode" in {error.path for error in caught.value.errors}

    @pytest.mark.parametrize("mode", ["DEFENSIVE", "AGGRESSIVE_SMALL_ACCOUNT"])
    def test_diff_of_a_switch_sharing_the_sections_is_the_diff_of_the_rebuilt_one(self, mode: str) -> None:
        """A switch that keeps the held sections (compared at a glance) lists what the path by path way lists."""
        switched = apply_patch(HELD, {"active_mode": mode})
        rebuilt = build_policy(switched.document())  # the same content in sections of its own
        assert switched.modes is HELD.modes
        assert rebuilt.modes is not HELD.modes
        assert diff_policies(HELD, rebuilt) == diff_policies(HELD, switched)
        assert diff_policies(rebuilt, HELD) == diff_policies(switched, HELD)

    def test_switch_to_the_active_mode_changes_nothing(self) -> None:
        """Switching to the mode already active gives the same policy: a write of it makes no version."""
        assert HELD == apply_patch(HELD, {"active_mode": HELD.active_mode})


class TestWriteRecord:
    """What a write records, now that its changes are worked out once."""

    async def test_history_entry_lists_the_switch_and_nothing_else(self) -> None:
        """A mode switch's entry holds the active mode's change alone, as the diff of the two versions does."""
        store = await PolicyStore.open("memory://", lkg_path=None, watch=False)
        try:
            before = store.snapshot()
            after = await store.switch_mode("DEFENSIVE", reason="calm", actor=Actor("otto", Role.OPERATOR))
            (entry,) = await store.history(limit=1)
            assert diff_policies(before, after) == entry.changes
            assert ["active_mode"] == [change.path for change in entry.changes]
        finally:
            await store.close()
