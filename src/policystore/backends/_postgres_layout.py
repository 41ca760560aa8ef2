"""How a version is written to PostgreSQL and announced: the commit statement, its notice, and reading notices.

A commit is one statement, so one round trip and one transaction: it moves the
namespace's head from the version before to the new one (compare-and-set: an
``UPDATE ... WHERE version = N - 1`` that matches no row when another writer
got there first, which PostgreSQL re-checks after waiting for that writer's
lock), inserts the version's row only if the head moved, and calls
``pg_notify`` for the inserted row, which PostgreSQL delivers when (and only
if) the transaction commits. With synchronous replication that is after the
standby has the version, so no process is told of a version a failover would
lose.

The notice has the shape of the Redis back end's: a JSON header
(``{"version": N, "entry": {...}}``), a newline and the document's JSON text,
one member per line, so a listener one version behind installs it without a
read back. NOTIFY takes at most 8,000 bytes; a larger notice is sent as
``{"version": N}`` alone and listeners read the version.

Unlike Redis, PostgreSQL lets every role that may connect to a database NOTIFY
on any channel, so a notice that carries content is signed: a first line
``sig:`` and the HMAC-SHA256 of the rest under the namespace's notice key, a
random value made with the namespace's head row, which only roles that can
read policystore's tables know. A listener installs content only from a notice
whose signature it checks; any other notice is at most a hint to read the
store. The first version of a namespace, made before its key exists, is
announced by its number alone.

Each write carries a random write id, stored in its row. When the reply to a
commit is lost, the commit is sent again; finding its version already stored
under its own write id, it reports the earlier success instead of a conflict
and writes nothing twice. Two writes never share an id, so a genuine conflict,
even between writes of identical content, stays one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

from policystore.backends.base import Published
from policystore.model.document_text import document_text
from policystore.model.history import HistoryEntry

__all__ = [
    "FIND_KEY",
    "FIND_WRITE",
    "NEWEST_TEXT",
    "NOTIFY_LIMIT",
    "VERSION_TEXT",
    "CommitCall",
    "CommitOutcome",
    "MaybeWrittenError",
    "Sending",
    "channel_for",
    "hint_of",
    "maybe_written",
    "sign",
]

#: NOTIFY's payload must be shorter than this many bytes (PostgreSQL's default build).
NOTIFY_LIMIT: Final = 8000
#: PostgreSQL truncates identifiers (channel names among them) to this many bytes.
_NAME_LIMIT: Final = 63
_ENCODE: Final = json.JSONEncoder(sort_keys=True).encode
#: The first line of a signed notice starts with this, the signature's hex digits follow.
_SIGNED: Final = "sig:"
_SIGNATURE_LENGTH: Final = len(_SIGNED) + 64 + 1  # "sig:", SHA-256 in hex, a newline

#: The namespace's notice key (none before its first version).
FIND_KEY: Final = "SELECT notice_key FROM policystore_head WHERE namespace = %s"
#: The namespace's newest document as the commit stored it: the text its notice carried
#: (the ``json`` type keeps the text it was given), so the two compare byte for byte. The
#: version is a value the row is looked up by, never a join filter: a plan cached while the
#: namespace held a few versions would otherwise read every version it holds on each call.
NEWEST_TEXT: Final = (
    "SELECT document::text FROM policystore_versions WHERE namespace = %s "
    "AND version = (SELECT version FROM policystore_head WHERE namespace = %s)"
)
#: A version's document as the commit stored it, from the namespace's history.
VERSION_TEXT: Final = "SELECT document::text FROM policystore_versions WHERE namespace = %s AND version = %s"

# In both statements the version's row and its notice exist only if the head moved: each
# step selects from the one before.

#: The first version of a namespace creates its head.
COMMIT_FIRST: Final = """
WITH moved AS (
    INSERT INTO policystore_head (namespace, version) VALUES (%(namespace)s, %(version)s)
    ON CONFLICT (namespace) DO NOTHING
    RETURNING version
), stored AS (
    INSERT INTO policystore_versions (namespace, version, document, entry, write_id)
    SELECT %(namespace)s, version, %(document)s::json, %(entry)s::json, %(write_id)s FROM moved
    RETURNING version
)
SELECT version, pg_notify(%(channel)s, %(notice)s) FROM stored
"""
#: Every later version moves it, compare-and-set on the version before.
COMMIT_NEXT: Final = """
WITH moved AS (
    UPDATE policystore_head SET version = %(version)s, updated_at = now()
    WHERE namespace = %(namespace)s AND version = %(version)s - 1
    RETURNING version
), stored AS (
    INSERT INTO policystore_versions (namespace, version, document, entry, write_id)
    SELECT %(namespace)s, version, %(document)s::json, %(entry)s::json, %(write_id)s FROM moved
    RETURNING version
)
SELECT version, pg_notify(%(channel)s, %(notice)s) FROM stored
"""
#: After a commit that wrote nothing: the head, and the write id stored at the version it tried to make.
FIND_WRITE: Final = """
SELECT
    (SELECT version FROM policystore_head WHERE namespace = %(namespace)s),
    (SELECT write_id FROM policystore_versions WHERE namespace = %(namespace)s AND version = %(version)s)
"""


def channel_for(namespace: str) -> str:
    """Return the NOTIFY channel of ``namespace``.

    A name too long for a PostgreSQL identifier is shortened with a digest of the
    whole, so two long namespaces never share a channel.
    """
    channel = f"policystore:{namespace}"
    if len(channel.encode()) <= _NAME_LIMIT:
        return channel
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:16]
    return f"policystore:{namespace[: _NAME_LIMIT - len('policystore:') - 17]}:{digest}"


@dataclass(frozen=True, slots=True)
class CommitCall:
    """One write ready to send; sending it again unchanged is safe.

    Attributes:
        version: the version the write makes.
        statement: :data:`COMMIT_FIRST` or :data:`COMMIT_NEXT`.
        params: the statement's parameters, the write id among them.
    """

    version: int
    statement: str
    params: dict[str, Any]

    @property
    def write_id(self) -> str:
        """The id that tells this write apart from every other."""
        return str(self.params["write_id"])

    @classmethod
    def build(cls, namespace: str, document: dict[str, Any], entry: HistoryEntry, key: str | None) -> CommitCall:
        """Serialise ``document`` and ``entry`` under a new write id, with the notice that announces them.

        Args:
            namespace: the namespace written to.
            document: the new version's document.
            entry: its history entry.
            key: the namespace's notice key, or None when it has none yet (its
                first version), which is then announced by its number alone.
        """
        version = int(document["version"])
        document_json = document_text(document)
        entry_json = _ENCODE(entry.to_dict())
        content = f'{{"version": {version}, "entry": {entry_json}}}\n{document_json}'
        if key is not None and len(content.encode()) + _SIGNATURE_LENGTH < NOTIFY_LIMIT:
            notice = f"{_SIGNED}{sign(key, content)}\n{content}"
        else:
            notice = f'{{"version": {version}}}'  # too large to carry, or no key to sign with: listeners read it
        params = {
            "namespace": namespace,
            "version": version,
            "document": document_json,
            "entry": entry_json,
            "write_id": uuid.uuid4().hex,
            "channel": channel_for(namespace),
            "notice": notice,
        }
        return cls(version, COMMIT_FIRST if version == 1 else COMMIT_NEXT, params)


@dataclass(slots=True)
class Sending:
    """Whether a commit's statement has been handed to a connection (and so may have been written)."""

    sent: bool = False


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """What sending a commit came to.

    Attributes:
        committed: the version is stored (by this send or by an earlier one of the same write).
        replayed: it was stored by an earlier send whose reply was lost.
        current: the store's version when the statement ran.
    """

    committed: bool
    replayed: bool
    current: int


class MaybeWrittenError(Exception):
    """A commit sent, then sent again, without an answer either time."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def maybe_written(reason: str, version: int) -> str:
    """The reason of a commit whose outcome is unknown: it may have been written."""
    return f"{reason}; version {version} may or may not have been written, so read it back first"


def sign(key: str, content: str) -> str:
    """Return the signature of a notice's content under a namespace's notice key, in hex."""
    return hmac.new(key.encode(), content.encode(), hashlib.sha256).hexdigest()


def hint_of(payload: str, key: str | None) -> int | Published | None:
    """Return what a notice announces: the version with its content, its number, or 0 (check).

    A signed notice is ``sig:`` and its signature, a newline, a JSON header
    (``{"version": N, "entry": {...}}``), a newline and the document's JSON text;
    a header alone announces the number. Content is returned only from a notice
    signed under ``key``; a notice that carries content unsigned announces its
    number at most. Anything else, from whoever else may notify on the channel,
    asks for a check.

    Returns:
        The hint, or None when the notice is signed but not under ``key`` (the
        caller may read the key again, in case the namespace was made anew).
    """
    signed = payload.startswith(_SIGNED)
    if signed:
        signature, _, payload = payload[len(_SIGNED) :].partition("\n")
        if key is None or not hmac.compare_digest(signature, sign(key, payload)):
            return None
    raw = payload.encode()
    head, _, document = raw.partition(b"\n")
    if not signed:
        document = b""  # content no one vouches for is not installed: at most, the number is read
    written = _HEADER.match(head) if document else None
    if written is not None:
        # As the commit writes it: the entry is left as text until an event needs it.
        return Published(int(written[1]), document, head[written.end() : -1])
    try:
        notice = json.loads(head)
        version = notice["version"]
    except (ValueError, TypeError, KeyError):
        return 0
    if not (isinstance(version, int) and not isinstance(version, bool) and version > 0):
        return 0
    entry = notice.get("entry")
    if document and isinstance(entry, dict):
        return Published(version, document, entry)
    return version


#: The header a commit writes: the version, then the entry's JSON object.
_HEADER: Final = re.compile(rb'\{"version": ([1-9][0-9]{0,18}), "entry": (?=\{.*\}\}$)', re.DOTALL)
