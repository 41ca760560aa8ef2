"""Change notices are hints, not the store: which ones a process may install without reading the store.

Anyone who can publish on a back end's change channel can send a notice; the
keys are written only by the commit. So a notice that would loosen what a process
holds (by :func:`~policystore.model.risk_direction.risk_increases`, the store's own
rule for the direction of risk) is installed only once the stored document
confirms it, one read of the newest document (or, when a later version was
written before that read, a second read of the notice's own version in the
store's history, which the commit wrote). A notice that only tightens is
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

from policystore.backends.base import Backend, NewestText, Published, VersionText
from policystore.errors import PolicyValidationError, StoreUnavailableError
from policystore.model.document_text import (
    canonical_lines,
    member_lines,
    policy_from_changed_lines,
    policy_from_changed_sections,
)
from policystore.model.paths import reflatten, reflatten_modes
from policystore.model.policy import RECORD_FIELDS, Policy
from policystore.model.risk_direction import risk_increases
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
        #: The content of the lines last asked about, by identity: the held lines are the
        #: same object from one notice to the next, and a notice's are asked about twice.
        self._contents: dict[int, tuple[tuple[bytes, ...], _Content]] = {}
        #: The last two sets of lines asked about, by identity, and their key: a notice is
        #: asked about twice (before its check and after), with the same two objects.
        self._last: tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[_Content, _Content]] | None = None

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
        key = self._key(held_lines, new_lines)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= _MEMORY:
                self._known.clear()
            known = self._known[key] = bool(risk_increases(held, new))
        return known

    def known(self, held_lines: tuple[bytes, ...], new_lines: tuple[bytes, ...]) -> bool | None:
        """Whether going from ``held_lines`` to ``new_lines`` loosens, when it was judged before; else None."""
        return self._known.get(self._key(held_lines, new_lines))

    def _key(self, held_lines: tuple[bytes, ...], new_lines: tuple[bytes, ...]) -> tuple[_Content, _Content]:
        last = self._last
        if last is not None and last[0] is held_lines and last[1] is new_lines:
            return last[2]
        key = self._content(held_lines), self._content(new_lines)
        self._last = (held_lines, new_lines, key)
        return key

    def _content(self, lines: tuple[bytes, ...]) -> _Content:
        cached = self._contents.get(id(lines))
        if cached is not None and cached[0] is lines:
            return cached[1]
        if len(self._contents) >= 4:  # noqa: PLR2004 - the held lines and a notice's, with room to spare
            self._contents.clear()
        content = self._contents[id(lines)] = (lines, _content(lines))
        return content[1]


def _consume(reading: asyncio.Future[Any]) -> None:
    """Take the outcome of a read no one waits for, so that a failure of it is not reported as unhandled."""
    if not reading.cancelled():
        reading.exception()


def _decoded(text: bytes | None) -> dict[str, Any] | None:
    """The stored document from its text, or None when there is none or it is not a JSON object."""
    try:
        stored = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return stored if isinstance(stored, dict) else None


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
        #: The back end, when it reads its newest document's text with the request sent at once.
        self._text = backend if isinstance(backend, NewestText) else None
        #: The back end, when it reads any version's text likewise.
        self._versions = backend if isinstance(backend, VersionText) else None

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
            document = published.document
            lines = member_lines(document) if isinstance(document, bytes) else None
            # A notice known to loosen what is held (judged before for the same two contents) sends
            # the read that confirms it before it is checked, so that the round trip overlaps the check.
            reading = (
                self._text.newest_text() if self._text is not None and self._known_to_loosen(state, lines) else None
            )
            try:
                if not await self._install(published, state, lines, reading):
                    return False
            finally:
                if reading is not None:
                    reading.add_done_callback(_consume)  # awaited or not, its failure is no one else's
        if self._outbox.pending:
            await self._outbox.deliver()
        return True

    async def _install(
        self,
        published: Published,
        state: ReadState,
        lines: tuple[bytes, ...] | None,
        reading: asyncio.Future[bytes | None] | None,
    ) -> bool:
        """The checks and the install of :meth:`install`, with the lock held."""
        held = state.policy
        read = self._read(published, held, lines)
        if read is None:
            return False
        policy, lines, sections_kept = read
        if policy.version == held.version:
            return policy.updated_at == held.updated_at
        if self._loosens(state, policy, lines) and not await self._confirmed(published, reading):
            return False
        try:
            # The entry is read only for an event (see LocalCopy.install).
            entries = [published.entry] if self._outbox.listening else []
        except (ValueError, TypeError, KeyError):
            return False  # a malformed entry: read the version back, entry and all
        # While versions keep the sections, the paths of each mode are built once; a version that
        # changes mode limits rebuilds those modes' paths, and anything else is flattened whole.
        tables = self._held_lines[2] if sections_kept and self._held_lines is not None else {}
        values: dict[str, Any] | None
        if sections_kept:
            values = reflatten(state.values, held, policy, tables)
        else:
            values = reflatten_modes(state.values, held, policy)
        self._copy.install(policy, entries, held.version, values)
        self._copy.observe_arrival(policy)
        self._held_lines = (policy, lines, tables)
        return True

    def _held_text(self, held: Policy) -> tuple[bytes, ...] | None:
        """The member lines of the policy held, when it was installed from a notice here."""
        return self._held_lines[1] if self._held_lines is not None and self._held_lines[0] is held else None

    def _known_to_loosen(self, state: ReadState, lines: tuple[bytes, ...] | None) -> bool:
        """Whether a notice with these member lines will be confirmed whatever its check finds.

        Only then is its read sent before the check: one that turns out not to be
        needed would be a read of the store for a notice that tightens.
        """
        if state.refused_version >= 0 or state.rewound_to >= 0:
            return True
        held_lines = self._held_text(state.policy)
        if self._directions is None or held_lines is None or lines is None:
            return False
        return self._directions.known(held_lines, lines) is True

    def _loosens(self, state: ReadState, policy: Policy, lines: tuple[bytes, ...]) -> bool:
        """Whether installing ``policy`` in place of ``state`` could let more risk be taken."""
        if state.refused_version >= 0 or state.rewound_to >= 0:
            return True  # a later version would lift the fact that holds trading shut
        if policy.overrides or state.policy.overrides:
            # What an expiring change leaves in force depends on the time: compare what is in force now.
            return bool(risk_increases(state.policy, self._copy.in_force(policy)))
        if self._directions is None:
            self._directions = NoticeDirection()
        return self._directions.loosens(state.policy, self._held_text(state.policy), policy, lines)

    async def _confirmed(self, published: Published, reading: asyncio.Future[bytes | None] | None) -> bool:
        """Whether the store's newest document is the notice's (one read); False also when it cannot be read.

        Args:
            published: the notice.
            reading: the read of the newest document's text, begun when the notice
                arrived; None to read it now.
        """
        try:
            if reading is None and self._text is not None:
                reading = self._text.newest_text()
            if reading is None:
                stored = await self._backend.load()
            else:
                text = await reading
                if text is not None and text == published.document:
                    return True  # the very text the commit stored
                stored = _decoded(text)
            if confirms(stored, published):
                return True
            newest = stored.get("version") if stored is not None else None
            if isinstance(newest, int) and newest > published.version:
                # Overtaken by a later write before the read: the store's history holds the notice's
                # version as it wrote it (a store that went back past it has written it again since).
                return await self._stored_as_announced(published)
        except StoreUnavailableError:
            return False  # the caller re-reads, and goes stale if the store is gone
        log.warning(
            "A change notice for version %d does not match the store's newest document (forged, or lost "
            "since); it was not installed, and the store is read instead.",
            published.version,
        )
        return False

    async def _stored_as_announced(self, published: Published) -> bool:
        """Whether the store's history holds the notice's version as the very text the notice carries (one read).

        Raises:
            StoreUnavailableError: the read failed.
        """
        if self._versions is None or not isinstance(published.document, bytes):
            return False  # the caller re-reads
        text = await self._versions.version_text(published.version)
        if text == published.document:
            return True
        if text is not None:
            log.warning(
                "A change notice for version %d does not match that version in the store's history (forged, "
                "or lost since); it was not installed, and the store is read instead.",
                published.version,
            )
        return False

    def _read(
        self, published: Published, held: Policy, lines: tuple[bytes, ...] | None
    ) -> tuple[Policy, tuple[bytes, ...], bool] | None:
        """Validate a notice's document (``lines``: its member lines, when it came as text), or None to re-read.

        Returns:
            The policy, its text's member lines, and whether it keeps every section of
            ``held`` (it changes only its own record and perhaps the active mode).
        """
        document = published.document
        held_lines = self._held_text(held)
        if lines is not None and held_lines is not None:
            # Most versions change only their own record and perhaps the mode: check just that.
            policy = policy_from_changed_lines(held, held_lines, lines)
            if policy is not None:
                return (policy, lines, True) if policy.version == published.version else None
            # A change of a limit changes one section: only that one is validated again.
            policy = policy_from_changed_sections(held, held_lines, lines)
            if policy is not None:
                return (policy, lines, False) if policy.version == published.version else None
        try:
            policy = build_policy_json(document) if isinstance(document, bytes) else build_policy(document)
        except PolicyValidationError:
            return None
        if policy.version != published.version:
            return None
        # The lines the next notice is compared with describe this policy exactly, whatever
        # the layout of the text it came in (nested members, repeated keys).
        return policy, canonical_lines(policy), False
