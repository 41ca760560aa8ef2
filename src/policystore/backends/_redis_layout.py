"""How a policy is laid out in Redis: the keys of a namespace, the script that commits a version, raw replies.

Each write carries a random write id inside its history entry (the extra
``write_id`` field, which :meth:`HistoryEntry.from_dict` ignores). When the
reply to a commit is lost after Redis ran it, the client re-sends the same
call; the script then finds its version already taken by an entry identical
to the one it carries, so it reports the earlier success instead of a
conflict, and writes nothing twice. Two separate writes never share an id, so
a genuine conflict, even between writes of identical content, stays one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from policystore.backends._redis_urls import NAMESPACE_RE, invalid
from policystore.backends.base import Published
from policystore.model.document_text import document_text
from policystore.model.history import HistoryEntry

__all__ = ["COMMIT_LUA", "CommitCall", "CommitOutcome", "RedisKeys", "notice_hint", "raw_reply"]

WRITE_ID: Final = "write_id"
_ENCODE: Final = json.JSONEncoder(sort_keys=True).encode
_COMMITTED: Final = 1
_REPLAYED: Final = 2

# KEYS: version, document, documents, history. ARGV: new version, document, entry, channel, notice header.
# Returns {0, current} on a conflict, {1, new} after writing, {2, current} when this very
# entry is already stored at the new version (a re-sent call whose first reply was lost).
# Every check comes before the first write: Redis does not undo a script's earlier
# writes when a later command in it fails, so a failure must leave nothing half written.
COMMIT_LUA: Final = """
local raw = redis.call('GET', KEYS[1])
local current = 0
if raw then
  current = tonumber(raw)
  if not current then return redis.error_reply('policystore: the version key holds no integer') end
end
for _, key in ipairs({KEYS[3], KEYS[4]}) do
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'none' and kind ~= 'hash' then
    return redis.error_reply('policystore: ' .. key .. ' holds a ' .. kind .. ', not a hash')
  end
end
local new = tonumber(ARGV[1])
if current ~= new - 1 then
  if current >= new and redis.call('HGET', KEYS[4], ARGV[1]) == ARGV[3] then return {2, current} end
  return {0, current}
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\\n' .. ARGV[2])
return {1, new}
"""


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The Redis keys and channel of one namespace.

    Attributes:
        prefix: ``policystore:NAMESPACE:``, the start of every key.
        version: the newest version (an integer string).
        document: the newest document (JSON).
        documents: a hash of version -> document JSON, for rollback and diff.
        history: a hash of version -> history entry JSON.
        channel: where each commit publishes ``{"version": N, "entry": ...}``, a newline and the document.
    """

    prefix: str
    version: str
    document: str
    documents: str
    history: str
    channel: str

    @classmethod
    def for_namespace(cls, namespace: str) -> RedisKeys:
        """Return the keys of ``namespace``.

        Raises:
            PolicyValidationError: the name is empty, too long or has characters
                other than letters, digits, ``_``, ``.`` and ``-``.
        """
        if not NAMESPACE_RE.match(namespace):
            raise invalid(f"namespace {namespace!r} must be 1 to 64 letters, digits, '_', '.' or '-'")
        p = f"policystore:{namespace}:"
        return cls(p, p + "version", p + "document", p + "documents", p + "history", p + "changes")

    def aux(self, collection: str) -> str:
        """Return the hash key of record collection ``collection`` (named ``aux`` since before records)."""
        return f"{self.prefix}aux:{collection}"


def raw_reply(client: Redis, *command: str | int) -> Awaitable[Any]:
    """Send ``command`` and answer the reply's bytes undecoded, whatever the client's ``decode_responses``."""
    response: Awaitable[Any] = client.execute_command(*command, **{NEVER_DECODE: []})  # type: ignore[no-untyped-call]
    return response


@dataclass(frozen=True, slots=True)
class CommitCall:
    """One write ready to send to :data:`COMMIT_LUA`; re-sending it unchanged is safe.

    Attributes:
        version: the version the write makes.
        keys: the script's KEYS.
        args: the script's ARGV, the entry among them with its write id.
    """

    version: int
    keys: tuple[str, ...]
    args: tuple[str | int, ...]

    @classmethod
    def build(cls, keys: RedisKeys, document: dict[str, Any], entry: HistoryEntry) -> CommitCall:
        """Serialise ``document`` and ``entry`` under a new write id."""
        version = int(document["version"])
        stored_entry = entry.to_dict() | {WRITE_ID: uuid.uuid4().hex}
        document_json = document_text(document)
        entry_json = _ENCODE(stored_entry)
        # The notice carries the version itself, so a listener one version behind
        # installs it without reading it back (three round trips fewer per process):
        # a JSON header line, then the document's JSON text, one member per line, which
        # every listener validates straight from the text, or compares line by line
        # with the version it holds (see policystore.model.document_text).
        # The script appends the newline and the document: it is sent once, not twice.
        header = f'{{"version": {version}, "entry": {entry_json}}}'
        args = (version, document_json, entry_json, keys.channel, header)
        return cls(version, (keys.version, keys.document, keys.documents, keys.history), args)


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """What the commit script answered.

    Attributes:
        committed: the version is stored (by this call or by an earlier send of it).
        replayed: it was stored by an earlier send whose reply was lost.
        current: the store's version when the script ran.
    """

    committed: bool
    replayed: bool
    current: int

    @classmethod
    def from_reply(cls, reply: Any) -> CommitOutcome:
        """Read the script's ``{status, version}`` reply.

        Raises:
            ValueError, TypeError: the reply is not two integers.
        """
        status, current = (int(item) for item in reply)
        if status not in {0, _COMMITTED, _REPLAYED}:
            raise ValueError(f"unknown commit status {status}")
        return cls(status != 0, status == _REPLAYED, current)


def notice_hint(data: Any) -> int | Published:
    """Return what a change message announces: the version with its content, its number, or 0 (check).

    A notice is a JSON header (``{"version": N, "entry": {...}}``), then a
    newline and the document's JSON text; a header alone announces the number.
    """
    raw = data.encode() if isinstance(data, str) else data
    head, _, document = raw.partition(b"\n") if isinstance(raw, bytes) else (raw, b"", b"")
    written = _HEADER.match(head) if document else None
    if written is not None:
        # As the commit script writes it: the entry is left as text until an event needs it.
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
        return Published(version, document, entry)  # the entry is read when an event needs it
    return version


#: The header the commit script publishes: the version, then the entry's JSON object.
_HEADER: Final = re.compile(rb'\{"version": ([1-9][0-9]{0,18}), "entry": (?=\{.*\}\}$)', re.DOTALL)
