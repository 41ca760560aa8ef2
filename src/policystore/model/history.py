"""History entries and field-level changes: the audit trail of every write."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from policystore.errors import FieldError

__all__ = ["FieldChange", "HistoryEntry", "record_errors", "record_text_problem"]

#: Control characters a reason may hold: it may run over several lines.
_ALLOWED_CONTROLS: Final = frozenset("\t\n")


def record_text_problem(text: str) -> str | None:
    """Say what makes ``text`` unfit for the audit record (a reason, an author), or None.

    Control characters other than tab and newline are refused: a NUL byte ends
    the text early in C readers, and escape sequences, carriage returns and the
    like rewrite what a terminal shows of history and logs. Lone surrogates are
    refused too: they cannot be encoded for any back end.
    """
    for index, char in enumerate(text):
        kind = unicodedata.category(char)
        if (kind == "Cc" and char not in _ALLOWED_CONTROLS) or kind == "Cs":
            return f"holds the control character U+{ord(char):04X} at position {index}; only tab and newline may appear"
    return None


def record_errors(reason: Any, author: Any) -> list[FieldError]:
    """Return what makes a write's reason and author unfit for its history entry, or nothing.

    Both are required text that passes :func:`record_text_problem`.
    """
    errors: list[FieldError] = []
    if not isinstance(reason, str) or not reason.strip():
        errors.append(FieldError("reason", "is required: say why the policy changes"))
    elif (problem := record_text_problem(reason)) is not None:
        errors.append(FieldError("reason", problem))
    if not isinstance(author, str) or not author.strip():
        errors.append(FieldError("updated_by", "must name who makes the change"))
    elif (problem := record_text_problem(author)) is not None:
        errors.append(FieldError("updated_by", problem))
    return errors


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field's value before and after a write (JSON-ready values)."""

    path: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        """Return the change as plain data."""
        return {"path": self.path, "old": self.old, "new": self.new}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FieldChange:
        """Rebuild a change from :meth:`to_dict` output."""
        return cls(path=data["path"], old=data.get("old"), new=data.get("new"))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One write: the version it made, when (UTC), who, why and what changed.

    A write made by applying a proposal names it (``proposal``) and every admin
    who approved it (``approved_by``, the proposer first when an admin); ``by``
    is the proposer, and ``reason`` says the same in words, for readers that
    know only the first five fields. Both are left out of :meth:`to_dict` when
    empty, so entries of ordinary writes are stored as they always were.
    """

    version: int
    at: datetime
    by: str
    reason: str
    changes: tuple[FieldChange, ...] = field(default=())
    approved_by: tuple[str, ...] = field(default=())
    proposal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        data: dict[str, Any] = {
            "version": self.version,
            "at": self.at.isoformat(),
            "by": self.by,
            "reason": self.reason,
            "changes": [c.to_dict() for c in self.changes],
        }
        if self.proposal is not None:
            data["proposal"] = self.proposal
            data["approved_by"] = list(self.approved_by)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        """Rebuild an entry from :meth:`to_dict` output.

        Raises:
            KeyError, ValueError, TypeError: the data is not an entry.
        """
        return cls(
            version=int(data["version"]),
            at=datetime.fromisoformat(data["at"]),
            by=str(data["by"]),
            reason=str(data["reason"]),
            changes=tuple(FieldChange.from_dict(c) for c in data.get("changes", ())),
            approved_by=tuple(str(name) for name in data.get("approved_by") or ()),
            proposal=None if data.get("proposal") is None else str(data["proposal"]),
        )

    @property
    def changed_paths(self) -> tuple[str, ...]:
        """The paths this write changed."""
        return tuple(c.path for c in self.changes)
