"""The records of a Redis store: one hash per collection, ``policystore:NAMESPACE:aux:COLLECTION``.

Each field of the hash is a record's key and its value the record's JSON text.
Every call is one Redis command, so each is atomic on its own: ``HSETNX`` adds
a record only where none is. Values are read as the bytes Redis holds, whatever
the client's ``decode_responses``.

:meth:`RedisRecords.put_unlogged` writes a record that its writer rewrites
often (a fleet member's report) without logging the write to the append-only
file or to replicas. With ``appendfsync always`` every logged write is an
fsync before Redis answers anyone; every member reports the versions it
installs (up to 20 times a second), so logged reports would cost the server an
fsync per member and report, each one in the way of the next commit and of every other command.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar

from redis.asyncio import Redis

from policystore.backends._records import check_names, decode_record, encode_record
from policystore.backends._redis_layout import RedisKeys, raw_reply

__all__ = ["RedisRecords"]

log = logging.getLogger("policystore.redis")
T = TypeVar("T")

#: HSET, neither appended to the append-only file nor sent to replicas.
_UNLOGGED_HSET: Final = "redis.set_repl(redis.REPL_NONE)\nreturn redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])"


class _Call(Protocol):
    """The back end's way to run one operation within its timeout."""

    def __call__(self, what: str, operation: Callable[[Redis], Awaitable[T]]) -> Awaitable[T]:
        """Run ``operation``; raise StoreUnavailableError, saying ``what`` failed, when Redis does."""


class _Tell(Protocol):
    """The back end's way to send one command whose reply no one needs, on its own connection."""

    def __call__(self, what: str, *words: str | bytes) -> Awaitable[None]:
        """Send the command; raise StoreUnavailableError, saying ``what`` failed, when that is seen."""


class RedisRecords:
    """Records (see :class:`~policystore.backends.base.RecordStore`) in a Redis namespace's hashes.

    Args:
        call: runs one operation on the back end's client, within its timeout.
        keys: the namespace's keys.
        url: the store's URL, safe to show, for messages.
        tell: sends one command whose reply no one needs on the back end's own connection
            (see :meth:`DirectCalls.tell <policystore.backends._redis_reads.DirectCalls.tell>`),
            for :meth:`put_unlogged`.
    """

    def __init__(self, call: _Call, keys: RedisKeys, url: str, *, tell: _Tell) -> None:
        self._call = call
        self._keys = keys
        self._url = url
        self._tell = tell

    async def all(self, collection: str) -> dict[str, dict[str, Any]]:
        """Return every record of ``collection`` by key; a key that is not UTF-8 text is skipped (logged)."""
        check_names(collection)
        name = self._keys.aux(collection)
        raw = await self._call(f"reading collection {collection}", lambda r: raw_reply(r, "HGETALL", name))
        found = {}
        for field, value in raw.items():
            try:
                key = field.decode()
            except UnicodeDecodeError:
                # Not written by policystore: like any damaged record, it grants nothing.
                log.warning(
                    "Collection %s of %s holds a key that is not UTF-8 text; it is ignored.", collection, self._url
                )
                continue
            record = decode_record(value, collection=collection, key=key, where=self._url)
            if record is not None:
                found[key] = record
        return found

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Return the record at ``key``, or None."""
        check_names(collection, key)
        name = self._keys.aux(collection)
        raw = await self._call(f"reading collection {collection}", lambda r: raw_reply(r, "HGET", name, key))
        return None if raw is None else decode_record(raw, collection=collection, key=key, where=self._url)

    async def put(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` at ``key``, replacing any record there."""
        check_names(collection, key)
        text, name = encode_record(record), self._keys.aux(collection)
        await self._call(f"writing collection {collection}", lambda r: raw_reply(r, "HSET", name, key, text))

    async def put_unlogged(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` at ``key`` as :meth:`put` does, without logging the write (see the module's notes).

        Readers of this Redis see it at once; a restart, or a replica promoted
        in a failover, holds the last record :meth:`put` wrote there instead.
        Once the first such write on a connection worked, the next ones are not
        answered (a write in every process for every version): one that fails
        then fails unseen, and the record keeps the last one that worked, as
        old as the last :meth:`put` at most, which shows the failure.
        """
        check_names(collection, key)
        text, name = encode_record(record), self._keys.aux(collection)
        await self._tell(f"writing collection {collection}", "EVAL", _UNLOGGED_HSET, "1", name, key, text)

    async def add(self, collection: str, key: str, record: dict[str, Any]) -> bool:
        """Store ``record`` at ``key`` unless a record is there; return whether it was stored."""
        check_names(collection, key)
        text, name = encode_record(record), self._keys.aux(collection)
        added = await self._call(f"writing collection {collection}", lambda r: raw_reply(r, "HSETNX", name, key, text))
        return bool(added)

    async def delete(self, collection: str, key: str) -> bool:
        """Remove the record at ``key``; return whether there was one."""
        check_names(collection, key)
        name = self._keys.aux(collection)
        removed = await self._call(f"writing collection {collection}", lambda r: raw_reply(r, "HDEL", name, key))
        return bool(removed)
