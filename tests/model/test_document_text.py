"""The one-member-per-line document text, and installing a version by what changed: same result as the full way."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policystore.errors import PolicyValidationError
from policystore.model.document_text import canonical_lines, document_text, member_lines, policy_from_changed_lines
from policystore.model.policy import Policy, default_policy
from policystore.model.validation import build_policy_json

HELD = dataclasses.replace(
    default_policy(), version=41, updated_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), reason="held"
)
HELD_LINES = canonical_lines(HELD)


def _lines(document: dict[str, Any]) -> tuple[bytes, ...]:
    lines = member_lines(document_text(document).encode())
    assert lines is not None
    return lines


def _full(text: bytes) -> Policy | None:
    try:
        return build_policy_json(text)
    except PolicyValidationError:
        return None


def _short(text: bytes) -> Policy | None:
    lines = member_lines(text)
    return None if lines is None else policy_from_changed_lines(HELD, HELD_LINES, lines)


def _swap_line(text: bytes, key: str, replacement: bytes) -> bytes:
    """Replace the member line of ``key`` with ``replacement`` (comma kept as it was)."""
    lines = text.split(b"\n")
    for n, line in enumerate(lines):
        if line.startswith(json.dumps(key).encode() + b": "):
            lines[n] = replacement + (b"," if line.endswith(b",") else b"")
            return b"\n".join(lines)
    raise AssertionError(key)


class TestDocumentText:
    """The text every commit publishes."""

    def test_text_is_the_document_one_member_per_line(self) -> None:
        """The text parses back to the document; each top-level member is one line, in key order."""
        document = HELD.document()
        text = document_text(document)
        assert document == json.loads(text)
        lines = _lines(document)
        assert sorted(document) == [
            json.loads("{" + line.decode().removesuffix(",") + "}").popitem()[0] for line in lines
        ]

    def test_other_text_has_no_member_lines(self) -> None:
        """A single-line document (an older writer's) is not read line by line."""
        assert member_lines(json.dumps(HELD.document()).encode()) is None


class TestChangedLines:
    """policy_from_changed_lines gives the full way's policy, or None."""

    def test_mode_switch_same_policy_as_full_way(self) -> None:
        """A mode switch with a new record takes the short way and equals the full validation."""
        new = dataclasses.replace(HELD, active_mode="DEFENSIVE", version=42, reason="calm", updated_by="ops")
        text = document_text(new.document()).encode()
        short = _short(text)
        assert short is not None
        assert short == _full(text) == new
        assert short.risk.max_leverage == new.modes["DEFENSIVE"].max_leverage

    @pytest.mark.parametrize(
        "change",
        [
            {"modes.NORMAL.max_leverage": 2.5},
            {"emergency.active": True, "emergency.reason": "halt"},
            {"hard_limits.max_leverage": 8.0},
            {"strategies.moderate.cooldown_seconds": 60},
        ],
        ids=["mode limit", "kill switch", "hard cap", "strategy"],
    )
    def test_other_section_changed_goes_full_way(self, change: dict[str, Any]) -> None:
        """A change to any section other than the record and the active mode is validated in full."""
        document = HELD.document() | {"version": 42}
        for path, value in change.items():
            section, *rest = path.split(".")
            target = document[section]
            for part in rest[:-1]:
                target = target[part]
            target[rest[-1]] = value
        assert _short(document_text(document).encode()) is None

    @pytest.mark.parametrize(
        ("key", "line"),
        [
            ("reason", b'"reason": "x", "hard_limits": {"max_leverage": 9.0}'),  # a second member smuggled in
            ("reason", b'"reason": "x",,'),  # a doubled comma
            ("version", b'"version": 42 "x"'),  # trailing text
            ("version", b'"reason": "moved"'),  # another key in this place
            ("active_mode", b'"active_mode": "NOT_A_MODE"'),  # not one of the modes
            ("version", b'"version": -1'),  # out of range
            ("updated_at", b'"updated_at": "2026-01-01T00:00:00"'),  # no time zone
        ],
    )
    def test_bad_line_not_taken_short_way(self, key: str, line: bytes) -> None:
        """A changed line that is not one valid value in its place never yields a policy the full way would not."""
        text = _swap_line(document_text(HELD.document()).encode(), key, line)
        assert _short(text) is None

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("version", b"42\x00"),  # a NUL byte
            ("reason", b'\xef\xbb\xbf"x"'),  # a byte-order mark
            ("reason", '"x"'.encode("utf-16-le")),
            ("reason", '"x"'.encode("utf-32-le")),
            ("reason", b'"\xff"'),  # not UTF-8
        ],
        ids=["nul", "bom", "utf-16", "utf-32", "not utf-8"],
    )
    def test_value_not_plain_utf8_json_refused_both_ways(self, key: str, value: bytes) -> None:
        """A value the whole text would not parse as is not read on its own either."""
        text = _swap_line(document_text(HELD.document()).encode(), key, json.dumps(key).encode() + b": " + value)
        assert _full(text) is None
        assert _short(text) is None

    def test_other_layouts_go_full_way(self) -> None:
        """Nested members on their own lines, or a repeated key, never match the held lines."""
        document = HELD.document() | {"version": 42, "reason": "next"}
        nested = json.dumps(document, indent=0, sort_keys=True).encode()
        repeated = document_text(document).encode().replace(b'\n"strategies"', b'\n"reason": "x",\n"strategies"')
        for text in (nested, repeated):
            assert _short(text) is None
        assert canonical_lines(HELD) == HELD_LINES

    def test_missing_comma_not_taken_short_way(self) -> None:
        """A line that lost its comma makes the text invalid JSON; the short way refuses it too."""
        text = (
            document_text(HELD.document() | {"reason": "next"})
            .encode()
            .replace(b'"reason": "next",', b'"reason": "next"')
        )
        assert _full(text) is None
        assert _short(text) is None

    def test_members_moved_not_taken_short_way(self) -> None:
        """The same lines in another order are not compared line by line."""
        lines = list(_lines(HELD.document() | {"version": 42}))
        lines[0], lines[1] = lines[1], lines[0]
        assert policy_from_changed_lines(HELD, HELD_LINES, tuple(lines)) is None

    @settings(max_examples=300, deadline=None)
    @given(
        fields=st.dictionaries(
            st.sampled_from(["active_mode", "version", "updated_at", "updated_by", "reason"]),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-5, 10**12),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=12),
                st.sampled_from(["DEFENSIVE", "NORMAL", "AGGRESSIVE_SMALL_ACCOUNT", "defensive", ""]),
                st.sampled_from(["2026-05-06T07:08:09+00:00", "2026-05-06T07:08:09+02:00", "2026-05-06", "42"]),
                st.lists(st.integers(), max_size=2),
            ),
            min_size=1,
        )
    )
    def test_any_record_values_same_answer_as_full_way(self, fields: dict[str, Any]) -> None:
        """Whatever the changed values, the short way gives the full way's policy or leaves it to the full way."""
        document = HELD.document() | fields
        text = document_text(document).encode()
        short, full = _short(text), _full(text)
        # Only record fields changed: the short way decides, and decides as the full way does.
        assert (short is None) == (full is None)
        assert short == full

    @settings(max_examples=200, deadline=None)
    @given(
        fields=st.dictionaries(
            st.sampled_from(["active_mode", "version", "updated_at", "updated_by", "reason"]),
            st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(), st.text(max_size=8)),
            min_size=1,
        )
    )
    def test_with_record_same_as_constructor(self, fields: dict[str, Any]) -> None:
        """Policy.with_record accepts and builds exactly what the constructor does with those fields."""
        try:
            expected: Policy | None = dataclasses.replace(HELD, **fields)
        except ValueError:  # pydantic's ValidationError is one
            expected = None
        try:
            got: Policy | None = HELD.with_record(fields)
        except ValueError:
            got = None
        assert expected == got
