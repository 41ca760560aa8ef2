"""A policy document's JSON text with one top-level member per line, and what that lets a reader skip.

Every process installs every version it hears of, and most versions change
little: a mode switch changes the active mode and the version's own record
(number, time, author, reason). A process holding the version before compares
the new text with the held one line by line; when only those lines differ,
the new policy is the held one with those fields replaced, checked by the
same field and cross-field rules, without validating the unchanged sections
again. Any other difference, and any line it cannot read, goes the full way
(:func:`~policystore.model.validation.build_policy_json`), which gives the
same policy or the same refusal.

The text is ordinary JSON: a newline between members is whitespace, and no
JSON string holds a raw newline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from policystore.model.policy import RECORD_FIELDS, SECTION_FIELDS, Policy
from policystore.model.validation import consistent

__all__ = [
    "canonical_lines",
    "document_text",
    "member_lines",
    "policy_from_changed_lines",
    "policy_from_changed_sections",
]

#: The fields a version may change and still take the short way.
_OWN_FIELDS: Final = frozenset({"active_mode", *RECORD_FIELDS})


#: One encoder for every call: json.dumps with options builds a new one each time.
_ENCODE: Final = json.JSONEncoder(sort_keys=True).encode


def document_text(document: Mapping[str, Any]) -> str:
    """Return ``document`` as JSON text, keys sorted, one top-level member per line."""
    members = ",\n".join(f"{_ENCODE(key)}: {_ENCODE(document[key])}" for key in sorted(document))
    return "{\n" + members + "\n}"


def member_lines(text: bytes) -> tuple[bytes, ...] | None:
    """Split a text laid out as :func:`document_text` lays it out into its member lines.

    Only the shape is checked (a ``{`` line, lines, a ``}`` line), not that each
    line is one member: lines to compare a new text with must come from
    :func:`canonical_lines`.
    """
    lines = text.split(b"\n")
    if len(lines) < 3 or lines[0] != b"{" or lines[-1] != b"}":  # noqa: PLR2004 - "{", a member, "}"
        return None
    return tuple(lines[1:-1])


def canonical_lines(policy: Policy) -> tuple[bytes, ...]:
    """The member lines of ``policy``'s text as every writer publishes it."""
    lines = member_lines(document_text(policy.document()).encode())
    if lines is None:  # pragma: no cover - document_text always writes this shape
        raise AssertionError(policy.version)
    return lines


def policy_from_changed_lines(held: Policy, held_lines: tuple[bytes, ...], lines: tuple[bytes, ...]) -> Policy | None:
    """Return the policy ``lines`` describe, when it differs from ``held`` only in its own record and active mode.

    Args:
        held: the policy held.
        held_lines: lines that describe ``held`` exactly, one member each: its
            :func:`canonical_lines`, or lines this function (or
            :func:`policy_from_changed_sections`) accepted for it.
        lines: the member lines of a new version's text.

    Returns:
        The new policy, checked by every rule that concerns what changed; None when
        the text must be validated in full (another section changed, members were
        added, removed or moved, or a changed line is not one value in its place).
    """
    members = _changed_members(held_lines, lines)
    if members is None or not members.keys() <= _OWN_FIELDS:
        return None
    return _with_members(held, members)


def policy_from_changed_sections(
    held: Policy, held_lines: tuple[bytes, ...], lines: tuple[bytes, ...]
) -> Policy | None:
    """Return the policy ``lines`` describe, validating only the sections that changed.

    A version that changes a limit changes one section (``modes``, say) besides
    its record. When every other line is the held one, the changed sections are
    validated on their own (see :meth:`Policy.with_sections`), the record as in
    :func:`policy_from_changed_lines`, and then every rule that spans fields on
    the whole result. The lines then describe the policy exactly, one member each,
    so the next version can be compared with them.

    Args:
        held: the policy held.
        held_lines: as for :func:`policy_from_changed_lines`.
        lines: the member lines of a new version's text.

    Returns:
        The new policy, which the full validation would give too; None when the text
        must be validated in full (members were added, removed or moved, a changed
        line is not one value in its place, or a rule failed and must be named).
    """
    members = _changed_members(held_lines, lines)
    if members is None:
        return None
    sections = {name: members.pop(name) for name in members.keys() - _OWN_FIELDS}
    # Every section is a JSON object: a value that starts otherwise (a byte-order mark, a NUL)
    # is left to the whole text's validation, which reads it in its place.
    if not all(text.startswith(b"{") for text in sections.values()):
        return None
    policy = _with_members(held, members) if members else held
    if policy is None:
        return None
    try:
        policy = policy.with_sections(sections)
    except (ValidationError, ValueError):
        return None
    return policy if consistent(policy) else None


def _changed_members(held_lines: tuple[bytes, ...], lines: tuple[bytes, ...]) -> dict[str, bytes] | None:
    """The members whose line changed, each as its value's text; None unless each is one member in its place."""
    if len(lines) != len(held_lines):
        return None
    members: dict[str, bytes] = {}
    for new, old in zip(lines, held_lines, strict=True):
        if new == old:
            continue
        name = _field(old)
        # The same key in the same place, with the comma the place needs: then the new text
        # is valid JSON exactly when the held one was, and says the same everywhere else.
        if name is None or name in members or not new.startswith(_PREFIXES[name]):
            return None
        if new.endswith(b",") != old.endswith(b","):
            return None
        members[name] = new[len(_PREFIXES[name]) :].removesuffix(b",")
    return members


def _with_members(held: Policy, members: dict[str, bytes]) -> Policy | None:
    """``held`` with its record and active mode replaced by the texts of ``members``, or None."""
    fields: dict[str, Any] = {}
    for name, text in members.items():
        try:
            # One JSON value, nothing after it: json.loads refuses "1, \"modes\": {}". Decoded
            # first, as the whole text is: given bytes, json.loads would guess an encoding
            # (UTF-16, a byte-order mark) from this fragment alone.
            fields[name] = json.loads(text.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            return None
    try:
        policy = held.with_record(fields)
    except (ValidationError, TypeError, ValueError):
        return None  # the full way names what is wrong
    # The other sections are the held ones, which passed every rule; of the rules that
    # span fields, only "the active mode is one of the modes" concerns what changed.
    return policy if policy.active_mode in policy.modes else None


#: How the line of each member starts, as document_text writes it.
_PREFIXES: Final = {name: f"{json.dumps(name)}: ".encode() for name in (*_OWN_FIELDS, *SECTION_FIELDS)}
_NAMES: Final = {prefix: name for name, prefix in _PREFIXES.items()}


def _field(line: bytes) -> str | None:
    """The member a line holds, or None for a line of no member of a policy."""
    # No member's name holds '": ', so a line that starts with a prefix ends it at the first one.
    end = line.find(b'": ')
    return _NAMES.get(line[: end + 3]) if end > 0 else None
