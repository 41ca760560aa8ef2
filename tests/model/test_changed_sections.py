"""Installing a version that changes whole sections (a limit) by validating those alone: the full way's answer.

Also ``Policy.with_sections`` against the constructor.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policystore.errors import PolicyValidationError
from policystore.model.document_text import (
    canonical_lines,
    document_text,
    member_lines,
    policy_from_changed_lines,
    policy_from_changed_sections,
)
from policystore.model.modes import LIMIT_FIELDS
from policystore.model.policy import SECTION_FIELDS, Policy, default_policy, policy_adapter
from policystore.model.validation import build_policy_json

HELD = dataclasses.replace(
    default_policy(), version=41, updated_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), reason="held"
)
HELD_LINES = canonical_lines(HELD)
#: Values some section accepts, so that accepted sections come up as well as refused ones.
SECTION_SAMPLES: list[Any] = [
    {"NORMAL": HELD.document()["modes"]["NORMAL"]},
    HELD.document()["modes"],
    {"moderate": {"cooldown_seconds": 60}},
    {"active": True, "reason": "halt"},
    {"max_leverage": 9.0},
    {"state": "halted"},
    {"BTC-USD": {"state": "halted"}, "ETH-USD": {}},
]
NEXT = {"version": 42, "updated_at": "2026-03-04T05:06:08+00:00", "updated_by": "ops", "reason": "next"}


def _text(document: dict[str, Any]) -> bytes:
    return document_text(document).encode()


def _full(text: bytes) -> Policy | None:
    try:
        return build_policy_json(text)
    except PolicyValidationError:
        return None


def _sections(text: bytes) -> Policy | None:
    lines = member_lines(text)
    return None if lines is None else policy_from_changed_sections(HELD, HELD_LINES, lines)


def _next_document(**sections: Any) -> dict[str, Any]:
    return copy.deepcopy(HELD.document()) | NEXT | sections


def _swap_line(text: bytes, key: str, replacement: bytes) -> bytes:
    """Replace the member line of ``key`` with ``replacement`` (comma kept as it was)."""
    lines = text.split(b"\n")
    for n, line in enumerate(lines):
        if line.startswith(json.dumps(key).encode() + b": "):
            lines[n] = replacement + (b"," if line.endswith(b",") else b"")
            return b"\n".join(lines)
    raise AssertionError(key)


class TestChangedSections:
    """policy_from_changed_sections gives the full way's policy, or None."""

    def test_limit_change_same_policy_as_full_way(self) -> None:
        """A changed mode limit takes the section way; the policy equals the full validation's, record and all."""
        document = _next_document()
        document["modes"]["NORMAL"]["max_leverage"] = 4.5
        text = _text(document)
        short = _sections(text)
        assert short is not None
        assert short == _full(text)
        assert (4.5, 42, "ops") == (short.risk.max_leverage, short.version, short.updated_by)
        assert policy_from_changed_lines(HELD, HELD_LINES, member_lines(text) or ()) is None  # not the record way

    @pytest.mark.parametrize("section", SECTION_FIELDS)
    def test_every_section_can_change_alone(self, section: str) -> None:
        """Each section, changed on its own to another valid value, gives the full way's policy."""
        other = {
            "modes": {**HELD.document()["modes"], "CUSTOM": HELD.document()["modes"]["DEFENSIVE"]},
            "strategies": {**HELD.document()["strategies"], "scalper": {"cooldown_seconds": 5}},
            "emergency": {"active": True, "reason": "halt", "activated_at": None, "activated_by": None},
            "hard_limits": {**HELD.document()["hard_limits"], "max_leverage": 9.0},
            "trading": {**HELD.document()["trading"], "state": "reducing"},
            "instruments": {"BTC-USD": {"state": "halted"}},
        }[section]
        text = _text(_next_document(**{section: other}))
        short = _sections(text)
        assert short is not None
        assert short == _full(text)

    def test_section_that_breaks_a_rule_left_to_the_full_way(self) -> None:
        """A limit above its hard cap: None here, and the full way refuses it with the reason."""
        document = _next_document()
        document["modes"]["NORMAL"]["max_leverage"] = 1000.0
        text = _text(document)
        assert _sections(text) is None
        assert _full(text) is None

    def test_removing_the_active_mode_left_to_the_full_way(self) -> None:
        """Modes without the active one: refused both ways."""
        document = _next_document()
        document["modes"] = {"CUSTOM": document["modes"]["NORMAL"]}
        text = _text(document)
        assert (None, None) == (_sections(text), _full(text))

    def test_empty_instrument_entry_dropped_as_the_constructor_does(self) -> None:
        """An instrument entry that sets nothing is not kept, the same as through the whole document."""
        text = _text(_next_document(instruments={"BTC-USD": {}, "ETH-USD": {"state": "halted"}}))
        short = _sections(text)
        assert short is not None
        assert short == _full(text)
        assert ["ETH-USD"] == list(short.instruments)

    @pytest.mark.parametrize(
        ("key", "line"),
        [
            ("modes", b'"modes": {}, "hard_limits": {"max_leverage": 99.0}'),  # a second member smuggled in
            ("modes", b'"modes": {"NORMAL": {}} "x"'),  # trailing text
            ("modes", b'"modes": []'),  # not an object
            ("modes", b'"modes": \xef\xbb\xbf{}'),  # a byte-order mark
            ("modes", b'"modes": {"NORMAL": {"max_leverage": 2.0'),  # cut short
            ("emergency", b'"hard_limits": {}'),  # another key in this place
            ("trading", b'"trading": {"state": "flying"}'),  # not a state
            ("instruments", b'"instruments": {"btc usd": {"state": "halted"}}'),  # not a symbol
        ],
    )
    def test_bad_line_not_taken_section_way(self, key: str, line: bytes) -> None:
        """A changed line that is not one valid section in its place yields no policy here."""
        text = _swap_line(_text(_next_document()), key, line)
        assert _sections(text) is None

    def test_moved_or_added_members_go_full_way(self) -> None:
        """Members in another order, or one more member, are never compared line by line."""
        lines = list(member_lines(_text(_next_document())) or ())
        lines[1], lines[2] = lines[2], lines[1]
        assert policy_from_changed_sections(HELD, HELD_LINES, tuple(lines)) is None
        assert policy_from_changed_sections(HELD, HELD_LINES, (*HELD_LINES, b'"extra": 1')) is None

    def test_lines_it_accepts_serve_the_next_version(self) -> None:
        """The next version (a mode switch) compared with the accepted lines gives the full way's policy."""
        document = _next_document()
        document["modes"]["NORMAL"]["max_leverage"] = 4.5
        lines = member_lines(_text(document)) or ()
        limited = policy_from_changed_sections(HELD, HELD_LINES, lines)
        assert limited is not None
        switched = document | {"active_mode": "DEFENSIVE", "version": 43, "reason": "calm"}
        text = _text(switched)
        short = policy_from_changed_lines(limited, lines, member_lines(text) or ())
        assert short is not None
        assert short == _full(text)

    @settings(max_examples=300, deadline=None)
    @given(
        mode=st.sampled_from(["NORMAL", "DEFENSIVE", "AGGRESSIVE_SMALL_ACCOUNT"]),
        field=st.sampled_from(sorted(LIMIT_FIELDS)),
        value=st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-5, 10**6),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=6),
        ),
        active=st.sampled_from(["NORMAL", "DEFENSIVE", "NOPE"]),
    )
    def test_any_mode_value_same_answer_as_full_way(self, mode: str, field: str, value: Any, active: str) -> None:
        """Whatever the new value (and active mode), the section way gives the full way's policy or none.

        It never yields a policy the full way refuses; when it yields one, it is the full way's.
        """
        document = _next_document(active_mode=active)
        document["modes"][mode][field] = value
        text = _text(document)
        short, full = _sections(text), _full(text)
        assert short is None or short == full

    @settings(max_examples=300, deadline=None)
    @given(
        section=st.sampled_from(SECTION_FIELDS),
        value=st.one_of(
            st.none(),
            st.integers(),
            st.sampled_from(SECTION_SAMPLES),
            st.dictionaries(st.text(max_size=4), st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
        ),
    )
    def test_with_sections_same_as_constructor(self, section: str, value: Any) -> None:
        """Policy.with_sections accepts and builds exactly what the constructor does from the whole text."""
        try:
            expected: Policy | None = policy_adapter.validate_json(_text(HELD.document() | {section: value}))
        except ValueError:  # pydantic's ValidationError is one
            expected = None
        try:
            got: Policy | None = HELD.with_sections({section: json.dumps(value).encode()})
        except ValueError:
            got = None
        assert expected == got

    def test_with_sections_refuses_what_is_no_section(self) -> None:
        """The record and the active mode are not sections: with_record takes those."""
        with pytest.raises(ValueError, match="not a section: active_mode"):
            HELD.with_sections({"active_mode": b'"DEFENSIVE"'})

    @pytest.mark.parametrize("section", SECTION_FIELDS)
    def test_with_sections_keeps_every_other_section_as_the_very_object_held(self, section: str) -> None:
        """Only the section replaced is new; the others are the held policy's own (frozen) objects."""
        got = HELD.with_sections({section: json.dumps(HELD.document()[section]).encode()})
        kept = [name for name in SECTION_FIELDS if name != section]
        assert [name for name in kept if getattr(got, name) is not getattr(HELD, name)] == []
        assert getattr(got, section) == getattr(HELD, section)
        assert got == HELD
