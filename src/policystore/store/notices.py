"""Change notices are hints, not the store: which ones a process may install without reading the store.

Anyone who can publish on a back end's change channel can send a notice; the
keys are written only by the commit. So a notice that would loosen what a process
holds (by :func:`~policystore.model.changes.risk_increases`, the store's own
rule for the direction of risk) is installed only once the stored document
confirms it, one read of the newest document. A notice that only tightens is
installed at once: holding a stricter policy than the store's is safe, and the
periodic check brings the process back to the store's true version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from policystore.backends.base import Published
from policystore.model.changes import risk_increases
from policystore.model.policy import Policy

__all__ = ["NoticeDirection", "confirms"]

#: The members of a document's text that are a version's own record: they say nothing of risk.
_RECORD_MEMBERS: Final = (b'"version":', b'"updated_at":', b'"updated_by":', b'"reason":')
#: Directions remembered; a long-running process sees few distinct pairs of contents.
_MEMORY: Final = 64

_Content = tuple[bytes, ...]


def _content(lines: tuple[bytes, ...]) -> _Content:
    return tuple(line for line in lines if not line.startswith(_RECORD_MEMBERS))


class NoticeDirection:
    """Whether going from the policy held to a notice's policy loosens it, remembered by content.

    ``risk_increases`` compares every mode, strategy and cap, which costs more
    than installing a mode switch; versions that go back and forth between the
    same contents (mode switches, a limit moved and moved back) are judged once.
    The memory is keyed by the documents' text without their record, so a
    direction is only reused for exactly the same two contents.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[_Content, _Content], bool] = {}

    def loosens(
        self, held: Policy, held_lines: tuple[bytes, ...] | None, new: Policy, new_lines: tuple[bytes, ...]
    ) -> bool:
        """Return whether ``new`` lets the system take more risk than ``held``.

        Args:
            held: the policy held.
            held_lines: its document's member lines, or None when not at hand (nothing is remembered).
            new: the notice's policy.
            new_lines: its document's member lines.
        """
        if held_lines is None:
            return bool(risk_increases(held, new))
        key = (_content(held_lines), _content(new_lines))
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= _MEMORY:
                self._known.clear()
            known = self._known[key] = bool(risk_increases(held, new))
        return known


def confirms(stored: Mapping[str, Any] | None, published: Published) -> bool:
    """Whether the store's newest document is exactly the one the notice carries."""
    if stored is None:
        return False
    document = published.document
    try:
        announced = json.loads(document) if isinstance(document, bytes) else document
    except ValueError:
        return False
    return bool(stored == announced)
