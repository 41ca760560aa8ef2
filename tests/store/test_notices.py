"""Which change notices a process may install without reading the store: pure, no I/O."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policystore.backends.base import Published
from policystore.model.changes import apply_patch, risk_increases
from policystore.model.document_text import canonical_lines, document_text
from policystore.model.policy import Policy, default_policy
from policystore.store.notices import NoticeDirection, confirms

T0 = datetime(2024, 5, 1, tzinfo=UTC)

PATCHES: list[dict[str, Any]] = [
    {"active_mode": "DEFENSIVE"},
    {"active_mode": "AGGRESSIVE_SMALL_ACCOUNT"},
    {"modes.NORMAL.max_leverage": 2.5},
    {"modes.NORMAL.max_leverage": 6.0},
    {"emergency.active": True, "emergency.reason": "halt"},
    {"strategies.moderate.cooldown_seconds": 10},
    {"strategies.moderate.cooldown_seconds": 600},
    {"hard_limits.max_leverage": 8.0},
]


def version(base: Policy, number: int, patch: dict[str, Any]) -> Policy:
    """``base`` with ``patch`` applied, as version ``number`` with its own record."""
    changed = apply_patch(base, patch)
    at = T0 + timedelta(seconds=number)
    return dataclasses.replace(changed, version=number, updated_at=at, updated_by=f"w{number}", reason=f"r{number}")


def chain() -> list[Policy]:
    """A sequence of versions, each one patch after the last, going back and forth."""
    versions = [dataclasses.replace(default_policy(), version=1, updated_at=T0)]
    for number, patch in enumerate(PATCHES * 2, start=2):
        base = versions[-1]
        turn_off = base.emergency.active and "emergency.active" in patch
        step = {"emergency.active": False, "emergency.reason": None} if turn_off else patch
        versions.append(version(base, number, step))
    return versions


class TestDirection:
    """The remembered direction is always the one risk_increases gives."""

    def test_remembered_answers_equal_the_rule_for_every_step(self) -> None:
        """Going through the chain twice (the second time from memory) answers as risk_increases does."""
        direction = NoticeDirection()
        versions = chain()
        for _ in range(2):
            for held, new in itertools.pairwise(versions):
                expected = bool(risk_increases(held, new))
                assert expected == direction.loosens(held, canonical_lines(held), new, canonical_lines(new))

    def test_kill_switch_off_loosens_and_on_tightens(self) -> None:
        """The kill switch turned off is a loosening; turned on, a tightening."""
        direction = NoticeDirection()
        off = dataclasses.replace(default_policy(), version=1)
        on = version(off, 2, {"emergency.active": True, "emergency.reason": "halt"})
        back = version(on, 3, {"emergency.active": False, "emergency.reason": None})
        assert (False, True) == (
            direction.loosens(off, canonical_lines(off), on, canonical_lines(on)),
            direction.loosens(on, canonical_lines(on), back, canonical_lines(back)),
        )

    def test_record_alone_does_not_change_the_answer_but_content_does(self) -> None:
        """Two versions with the same content and another record share an answer; another content does not."""
        direction = NoticeDirection()
        held = dataclasses.replace(default_policy(), version=1)
        looser = version(held, 2, {"modes.NORMAL.max_leverage": 6.0})
        assert direction.loosens(held, canonical_lines(held), looser, canonical_lines(looser))
        again = dataclasses.replace(looser, version=9, updated_by="someone-else", reason="other")
        assert direction.loosens(held, canonical_lines(held), again, canonical_lines(again))
        tighter = version(held, 2, {"modes.NORMAL.max_leverage": 4.0})
        assert not direction.loosens(held, canonical_lines(held), tighter, canonical_lines(tighter))

    def test_without_the_held_lines_the_rule_is_asked_directly(self) -> None:
        """A held policy installed by a read (its text not at hand) is judged without memory."""
        held = dataclasses.replace(default_policy(), version=1)
        looser = version(held, 2, {"active_mode": "AGGRESSIVE_SMALL_ACCOUNT"})
        assert NoticeDirection().loosens(held, None, looser, canonical_lines(looser))


class TestConfirms:
    """A notice is confirmed only by exactly the document the store holds."""

    @pytest.fixture
    def stored(self) -> dict[str, Any]:
        """The store's newest document."""
        return version(default_policy(), 2, {"active_mode": "DEFENSIVE"}).document()

    def test_the_same_document_as_text_or_data_confirms(self, stored: dict[str, Any]) -> None:
        """Laid out as the commit publishes it, or handed over as data (memory back end)."""
        text = document_text(stored).encode()
        assert confirms(stored, Published(2, text, b"{}"))
        assert confirms(stored, Published(2, json.loads(text), b"{}"))

    @pytest.mark.parametrize(
        "forged",
        [
            {"emergency": {"active": False, "reason": None, "activated_at": None, "activated_by": None}},
            {"updated_by": "forger"},
            {"version": 3},
        ],
    )
    def test_any_other_document_does_not(self, stored: dict[str, Any], forged: dict[str, Any]) -> None:
        """One field off is another document."""
        stored["emergency"] = {"active": True, "reason": "halt", "activated_at": None, "activated_by": None}
        assert not confirms(stored, Published(2, document_text(stored | forged).encode(), b"{}"))

    def test_nothing_stored_or_unreadable_text_does_not(self, stored: dict[str, Any]) -> None:
        """No document in the store, or a notice that is not JSON, confirms nothing."""
        assert not confirms(None, Published(2, document_text(stored).encode(), b"{}"))
        assert not confirms(stored, Published(2, b"{not json", b"{}"))
