"""The read table of a version that changes mode limits, rebuilt from the one before: exactly flatten's."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policystore.model.changes import apply_patch
from policystore.model.modes import BUILTIN_MODES
from policystore.model.paths import flatten, reflatten_modes
from policystore.model.policy import default_policy

BASE = dataclasses.replace(default_policy(), version=7)
#: Changes that keep every cap: each mode's limits moved within the default hard limits.
MODE_CHANGES: dict[str, list[Any]] = {
    "max_leverage": [1.0, 2.5, 4.0, 5.0],
    "max_positions": [1, 10, 30],
    "global_min_confidence": [0.4, 0.6],
    "enable_rl": [True, False],
}


class TestReflattenModes:
    """reflatten_modes gives flatten's table, keys in the same order, or None for what it does not rebuild."""

    @settings(max_examples=200, deadline=None)
    @given(
        changes=st.dictionaries(
            st.tuples(st.sampled_from(sorted(BUILTIN_MODES)), st.sampled_from(sorted(MODE_CHANGES))),
            st.integers(0, 3),
            min_size=1,
            max_size=4,
        ),
        before=st.sampled_from(sorted(BUILTIN_MODES)),
        after=st.sampled_from(sorted(BUILTIN_MODES)),
    )
    def test_mode_limits_changed_same_table_as_flatten(
        self, changes: dict[tuple[str, str], int], before: str, after: str
    ) -> None:
        """Any mode's limits changed, with or without a switch: the rebuilt table is flatten's, in order."""
        held = apply_patch(BASE, {"active_mode": before}) if before != BASE.active_mode else BASE
        patch: dict[str, Any] = {
            f"modes.{mode}.{field}": MODE_CHANGES[field][pick % len(MODE_CHANGES[field])]
            for (mode, field), pick in changes.items()
        }
        if after != held.active_mode:
            patch["active_mode"] = after
        new = dataclasses.replace(apply_patch(held, patch), version=8, reason="limits")
        rebuilt = reflatten_modes(flatten(held), held, new)
        assert rebuilt is not None
        assert list(flatten(new).items()) == list(rebuilt.items())

    def test_other_section_changed_is_left_to_flatten(self) -> None:
        """A change of a strategy, a cap or the kill switch, or a mode added, is not rebuilt here."""
        for patch in (
            {"strategies.moderate.cooldown_seconds": 60},
            {"hard_limits.max_leverage": 9.0},
            {"emergency.active": True, "emergency.reason": "halt"},
            {"modes.CUSTOM": dataclasses.asdict(BASE.modes["DEFENSIVE"])},
        ):
            new = apply_patch(BASE, patch)
            assert reflatten_modes(flatten(BASE), BASE, new) is None
