"""Change notices are hints, not the store: which ones a process may install without reading the store.

Anyone who can publish on a back end's change channel can send a notice; the
keys are written only by the commit. So a notice that would loosen what a process
holds (by :func:`~policystore.model.changes.risk_increases`, the store's own
rule for the direction of risk) is installed only once the stored document
confirms it, one read of the newest document. A notice that only tightens is
installed at once: holding a stricter policy than the store's is safe, and the
periodic check brings the process back to the store's true version.
:class:`NoticeInstaller` is that fast path.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from policystore.backends.base import Backend, Published
from policystore.errors import PolicyValidationError, StoreUnavailableError
from policystore.model.changes import risk_increases
from policystore.model.document_text import canonical_lines, member_lines, policy_from_changed_lines
from policystore.model.paths import reflatten
from policystore.model.policy import RECORD_FIELDS, Policy
from policystore.model.validation import build_policy, build_policy_json
from policystore.store.local_copy import LocalCopy
from policystore.store.outbox import Outbox
from policystore.store.sources import ReadState, Source

__all__ = ["NoticeDirection", "NoticeInstaller", "confirms"]

log = logging.getLogger("policystore")

#: The members of a document's text that are a version's own record: they say nothing of risk.
_RECORD_MEMBERS: Final = tuple(f"{json.dumps(name)}:".encode() for name in RECORD_FIELDS)
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


class NoticeInstaller:
    """Installs a version from its change notice, the fast path of a store that follows changes.

    It remembers the member lines of the text of the last version it installed,
    so that the next notice, which most often changes only its own record and
    perhaps the active mode, is checked line by line rather than validated in
    full (see :mod:`policystore.model.document_text`).

    Args:
        backend: the store's back end, read to confirm a notice that loosens.
        copy: the store's read state.
        lock: the store's lock, held while a version is installed.
        outbox: delivers the events of installed versions.
    """

    def __init__(self, backend: Backend, copy: LocalCopy, *, lock: asyncio.Lock, outbox: Outbox) -> None:
        self._backend = backend
        self._copy = copy
        self._lock = lock
        self._outbox = outbox
        #: The policy installed from a notice, the member lines of its text (for the next
        #: notice to be compared with), and the paths that follow the active mode by mode
        #: name, for its sections (see policystore.model.paths.reflatten).
        self._held_lines: tuple[Policy, tuple[bytes, ...], dict[str, dict[str, Any]]] | None = None
        #: Which notices loosen what is held (made on first use).
        self._directions: NoticeDirection | None = None

    async def install(self, published: Published) -> bool:
        """Install a version from its notification, without reading the store back if it only tightens.

        Only the version right after the one held qualifies: anything else (a
        gap, a stale copy, a document that fails validation) returns False and
        the caller re-reads, which replays missed versions and refuses invalid
        ones loudly. A notice is not the store (anyone who may publish on the
        channel can send one), so a version that loosens what is held, or that
        would open a gate a refused or rewound version holds shut, is installed
        only once the store's newest document is found to be exactly it (one
        read); otherwise the caller re-reads.

        Returns:
            True when this process now holds ``published.version`` or newer.
        """
        async with self._lock:
            state = self._copy.state
            held = state.policy
            # Only the next version, or the one held (whose content is checked: after a
            # failover the same number can stand for another write); anything else re-reads.
            if state.source is not Source.STORE or published.version not in {held.version, held.version + 1}:
                return False
            read = self._read(published, held)
            if read is None:
                return False
            policy, lines, sections_kept = read
            if policy.version == held.version:
                return policy.updated_at == held.updated_at
            if self._loosens(state, policy, lines) and not await self._confirmed(published):
                return False
            try:
                # The entry is read only for an event (see LocalCopy.install).
                entries = [published.entry] if self._outbox.listening else []
            except (ValueError, TypeError, KeyError):
                return False  # a malformed entry: read the version back, entry and all
            # While versions keep the sections, the paths of each mode are built once.
            tables = self._held_lines[2] if sections_kept and self._held_lines is not None else {}
            values = reflatten(state.values, held, policy, tables) if sections_kept else None
            self._copy.install(policy, entries, held.version, values)
            self._copy.observe_arrival(policy)
            self._held_lines = (policy, lines, tables)
        if self._outbox.pending:
            await self._outbox.deliver()
        return True

    def _loosens(self, state: ReadState, policy: Policy, lines: tuple[bytes, ...]) -> bool:
        """Whether installing ``policy`` in place of ``state`` could let more risk be taken."""
        if state.refused_version >= 0 or state.rewound_to >= 0:
            return True  # a later version would lift the fact that holds trading shut
        if policy.overrides or state.policy.overrides:
            # What an expiring change leaves in force depends on the time: compare what is in force now.
            return bool(risk_increases(state.policy, self._copy.in_force(policy)))
        if self._directions is None:
            self._directions = NoticeDirection()
        held_lines = (
            self._held_lines[1] if self._held_lines is not None and self._held_lines[0] is state.policy else None
        )
        return self._directions.loosens(state.policy, held_lines, policy, lines)

    async def _confirmed(self, published: Published) -> bool:
        """Whether the store's newest document is the notice's (one read); False also when it cannot be read."""
        try:
            stored = await self._backend.load()
        except StoreUnavailableError:
            return False  # the caller re-reads, and goes stale if the store is gone
        if confirms(stored, published):
            return True
        newest = stored.get("version") if stored is not None else None
        if not (isinstance(newest, int) and newest > published.version):  # not merely overtaken by a later write
            log.warning(
                "A change notice for version %d does not match the store's newest document (forged, or lost "
                "since); it was not installed, and the store is read instead.",
                published.version,
            )
        return False

    def _read(self, published: Published, held: Policy) -> tuple[Policy, tuple[bytes, ...], bool] | None:
        """Validate a notice's document, or return None to re-read.

        Returns:
            The policy, its text's member lines, and whether it keeps every section of
            ``held`` (it changes only its own record and perhaps the active mode).
        """
        document = published.document
        lines = member_lines(document) if isinstance(document, bytes) else None
        if lines is not None and self._held_lines is not None and self._held_lines[0] is held:
            # Most versions change only their own record and perhaps the mode: check just that.
            policy = policy_from_changed_lines(held, self._held_lines[1], lines)
            if policy is not None:
                return (policy, lines, True) if policy.version == published.version else None
        try:
            policy = build_policy_json(document) if isinstance(document, bytes) else build_policy(document)
        except PolicyValidationError:
            return None
        if policy.version != published.version:
            return None
        # The lines the next notice is compared with describe this policy exactly, whatever
        # the layout of the text it came in (nested members, repeated keys).
        return policy, canonical_lines(policy), False
