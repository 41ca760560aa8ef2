"""RedisBackend against a real redis-server: compare-and-set, history, notices, failures."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.connection import Connection

from policystore.backends._redis_layout import notice_hint as _hint
from policystore.backends.base import Backend, Published
from policystore.backends.redis import RedisBackend
from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import default_policy

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _version(n: int, mode: str = "NORMAL") -> tuple[dict[str, Any], HistoryEntry]:
    document = default_policy().document() | {"version": n, "active_mode": mode}
    return document, HistoryEntry(n, AT, "tester", f"write {n}", (FieldChange("active_mode", "NORMAL", mode),))


class _OwnConnection(Connection):
    """A caller's own connection class: the subscription is read through redis-py's reader."""


#: The ways a back end is made: from a URL, and from a caller's client, plain or decoding
#: (``decode_responses=True``, the common way such clients are made), read directly or by redis-py.
CLIENT_KINDS = ("url", "client", "decoding client", "decoding client, redis-py reader")


def _make_backend(redis_url: str, kind: str) -> RedisBackend:
    if kind == "url":
        return RedisBackend.from_url(redis_url)
    base, _, query = redis_url.partition("?")
    options: dict[str, Any] = {"decode_responses": kind.startswith("decoding")}
    if kind.endswith("redis-py reader"):
        options["connection_class"] = _OwnConnection
    client = redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool.from_url(base, **options))
    return RedisBackend.from_client(client, namespace=query.removeprefix("namespace="))


@pytest.fixture(params=CLIENT_KINDS)
async def backend(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RedisBackend]:
    """A back end of each kind in turn: every test below holds for all of them alike."""
    backend = _make_backend(redis_url, request.param)
    await backend.connect()
    yield backend
    await backend.close()
    if request.param != "url":
        await backend._client.aclose()


@pytest.fixture
async def url_backend(redis_url: str) -> AsyncIterator[RedisBackend]:
    """A back end made from a URL, whose client re-sends once after a reconnect (a caller's client may not)."""
    backend = RedisBackend.from_url(redis_url)
    await backend.connect()
    yield backend
    await backend.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url.split("?", maxsplit=1)[0])
    yield client
    await client.aclose()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose listener accepts connections but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def _next(iterator: AsyncIterator[int | Published]) -> int | Published:
    return await asyncio.wait_for(anext(iterator), timeout=10)


def _number(hint: int | Published) -> int:
    return hint.version if isinstance(hint, Published) else hint


class TestCommitAndRead:
    """Versions, documents and history written by the Lua script."""

    async def test_backend_protocol_implemented(self, backend: RedisBackend) -> None:
        """RedisBackend satisfies the Backend protocol."""
        assert isinstance(backend, Backend)

    async def test_empty_namespace_reads_nothing(self, backend: RedisBackend) -> None:
        """A new namespace is at version 0 with no document and no history."""
        assert 0 == await backend.current_version()
        assert await backend.load() is None
        assert [] == await backend.history(10)

    async def test_commits_readable_by_version(self, backend: RedisBackend) -> None:
        """Each committed version is readable as newest, by number, and in history."""
        first, second = _version(1), _version(2, "DEFENSIVE")
        await backend.commit(*first)
        await backend.commit(*second)
        assert 2 == await backend.current_version()
        assert second[0] == await backend.load()
        assert first[0] == await backend.load(1)
        assert await backend.load(3) is None
        assert [2, 1] == [e.version for e in await backend.history(10)]
        assert [1] == [e.version for e in await backend.history(10, before=2)]
        assert [second[1]] == await backend.history(1)
        assert [first[1], second[1]] == await backend.entries(0, 2)

    async def test_stale_version_conflict_changes_nothing(self, backend: RedisBackend) -> None:
        """A commit that is not the next version raises VersionConflictError and writes nothing."""
        await backend.commit(*_version(1))
        await backend.commit(*_version(2))
        with pytest.raises(VersionConflictError) as caught:
            await backend.commit(*_version(2, "DEFENSIVE"))
        assert (1, 2) == (caught.value.expected_version, caught.value.current_version)
        assert "NORMAL" == (await backend.load() or {})["active_mode"]
        assert 2 == len(await backend.history(10))

    async def test_entry_version_mismatch_conflict(self, backend: RedisBackend) -> None:
        """A document and entry of different versions are refused."""
        document, _ = _version(1)
        with pytest.raises(VersionConflictError):
            await backend.commit(document, _version(2)[1])
        assert 0 == await backend.current_version()

    async def test_flushed_script_cache_commit_succeeds(self, backend: RedisBackend, raw: redis.asyncio.Redis) -> None:
        """After SCRIPT FLUSH (as after a restart) the commit reloads the script and succeeds."""
        await backend.commit(*_version(1))
        await raw.script_flush()
        await backend.commit(*_version(2))
        assert 2 == await backend.current_version()

    async def test_records_set_read_delete(self, backend: RedisBackend) -> None:
        """Records are set, read back and deleted."""
        await backend.records.put("tokens", "a", {"hash": "a"})
        await backend.records.put("tokens", "b", {"hash": "b"})
        await backend.records.delete("tokens", "a")
        assert {"b": {"hash": "b"}} == await backend.records.all("tokens")
        assert {} == await backend.records.all("other")


class TestNotifications:
    """Pub/sub change notices."""

    async def test_subscribe_then_commit_yields_zero_then_version(self, backend: RedisBackend) -> None:
        """The iterator yields 0 once subscribed, then each committed version with its content, and ends on close."""
        notices = backend.notifications()
        assert 0 == await _next(notices)
        document, entry = _version(1)
        await backend.commit(document, entry)
        hint = await _next(notices)
        assert isinstance(hint, Published)
        assert (1, entry) == (hint.version, hint.entry)
        assert isinstance(hint.document, bytes)
        assert document == json.loads(hint.document)
        await backend.close()
        with pytest.raises(StopAsyncIteration):
            await _next(notices)

    async def test_malformed_message_yields_zero(self, backend: RedisBackend, raw: redis.asyncio.Redis) -> None:
        """A message that is not {"version": N} asks for a check instead of failing."""
        notices = backend.notifications()
        assert 0 == await _next(notices)
        for garbage in (b"not json", b'{"version": "x"}', b"[1]"):
            await raw.publish(backend.keys.channel, garbage)
            assert 0 == await _next(notices)
        await raw.publish(backend.keys.channel, json.dumps({"version": 7}))
        assert 7 == await _next(notices)

    async def test_server_restart_yields_zero_then_resumes(
        self, url_backend: RedisBackend, raw: redis.asyncio.Redis, redis_server: Any
    ) -> None:
        """Losing the server yields 0 (check now), and notices flow again after it returns."""
        backend = url_backend
        notices = backend.notifications()
        assert 0 == await _next(notices)
        redis_server.kill9()
        assert 0 == await _next(notices)
        redis_server.start()
        # Zeros repeat while the iterator retries; keep consuming until it has resubscribed.
        while not (await raw.pubsub_numsub(backend.keys.channel))[0][1]:
            assert 0 == await _next(notices)
        await backend.commit(*_version(1))
        hint = _number(await _next(notices))
        while hint == 0:
            hint = _number(await _next(notices))
        assert 1 == hint


class TestCorruptData:
    """Data in Redis that was not written by policystore."""

    async def test_garbage_document_raises_unavailable(self, backend: RedisBackend, raw: redis.asyncio.Redis) -> None:
        """A document that is not JSON raises StoreUnavailableError naming the problem."""
        await raw.set(backend.keys.document, b"{garbage")
        with pytest.raises(StoreUnavailableError, match="not valid JSON"):
            await backend.load()

    async def test_non_object_document_raises_unavailable(
        self, backend: RedisBackend, raw: redis.asyncio.Redis
    ) -> None:
        """A JSON document that is not an object raises StoreUnavailableError."""
        await raw.set(backend.keys.document, b"[1, 2]")
        with pytest.raises(StoreUnavailableError, match="not an object"):
            await backend.load()

    async def test_garbage_version_blocks_reads_and_writes(
        self, backend: RedisBackend, raw: redis.asyncio.Redis
    ) -> None:
        """A version key that holds no integer fails reads and commits with a clear reason."""
        await raw.set(backend.keys.version, b"seven")
        with pytest.raises(StoreUnavailableError, match="not a version"):
            await backend.current_version()
        with pytest.raises(StoreUnavailableError, match="holds no integer"):
            await backend.commit(*_version(1))

    async def test_missing_history_entry_raises_unavailable(
        self, backend: RedisBackend, raw: redis.asyncio.Redis
    ) -> None:
        """A hole in the history is reported, not skipped."""
        await backend.commit(*_version(1))
        await backend.commit(*_version(2))
        await raw.hdel(backend.keys.history, "1")
        with pytest.raises(StoreUnavailableError, match="history entry 1 is missing"):
            await backend.entries(0, 2)

    @pytest.mark.parametrize(
        ("stored", "fragment"),
        [(b"{oops", "history entry 1 is not valid JSON"), (b'{"version": 1}', "history entry 1 is malformed")],
    )
    async def test_garbage_history_entry_raises_unavailable(
        self, backend: RedisBackend, raw: redis.asyncio.Redis, stored: bytes, fragment: str
    ) -> None:
        """A history entry that is not JSON, or not an entry, is reported with its version."""
        await backend.commit(*_version(1))
        await raw.hset(backend.keys.history, "1", stored)
        with pytest.raises(StoreUnavailableError, match=fragment):
            await backend.history(10)

    @pytest.mark.parametrize("which", ["documents", "history"])
    async def test_wrong_type_hash_commit_writes_nothing(
        self, backend: RedisBackend, raw: redis.asyncio.Redis, which: str
    ) -> None:
        """A hash key holding another type refuses the commit before anything is half written."""
        first = _version(1)
        await backend.commit(*first)
        key = getattr(backend.keys, which)
        await raw.delete(key)
        await raw.set(key, b"not a hash")
        with pytest.raises(StoreUnavailableError) as caught:
            await backend.commit(*_version(2, "DEFENSIVE"))
        assert (1, first[0]) == (await backend.current_version(), await backend.load())
        assert f"{key} holds a string, not a hash" in str(caught.value)
        assert "may or may not" not in str(caught.value)


class TestUnreachable:
    """Every call fails with StoreUnavailableError in bounded time when Redis is not there."""

    async def test_refused_port_every_call_unavailable(self) -> None:
        """With nothing listening, each call raises StoreUnavailableError and hides the password."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        backend = RedisBackend.from_url(f"redis://:hunter2@127.0.0.1:{port}/0?namespace=down")
        calls = [
            backend.connect(),
            backend.current_version(),
            backend.load(),
            backend.commit(*_version(1)),
            backend.history(5),
            backend.entries(0, 1),
            backend.records.all("t"),
            backend.records.put("t", "k", {"v": 1}),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailableError) as caught:
                await call
            assert "hunter2" not in str(caught.value)
            assert "***" in caught.value.url
        await backend.close()

    async def test_silent_server_times_out_unavailable(self, silent_port: int) -> None:
        """A server that accepts but never answers fails the call after the URL's timeout."""
        backend = RedisBackend.from_url(f"redis://127.0.0.1:{silent_port}/0?timeout=0.2")
        with pytest.raises(StoreUnavailableError, match=r"within 0\.2 s|Timeout"):
            await backend.current_version()
        with pytest.raises(StoreUnavailableError):
            await backend.commit(*_version(1))
        await backend.close()


class TestNoticeParsing:
    """How a notice's text is read (no server needed)."""

    def test_commit_header_entry_read_when_asked(self) -> None:
        """The header as the commit script writes it gives the version; the entry is read on demand."""
        document, entry = _version(7)
        head = json.dumps({"version": 7, "entry": entry.to_dict() | {"write_id": "abc"}})
        hint = _hint(f"{head}\n{json.dumps(document)}".encode())
        assert isinstance(hint, Published)
        assert (7, entry) == (hint.version, hint.entry)

    def test_entry_of_another_version_refused_when_read(self) -> None:
        """An entry naming another version, or one that is not JSON, raises when read."""
        document, entry = _version(7)
        for text in (json.dumps(entry.to_dict() | {"version": 8}), '{"version": 7, "at": x}'):
            hint = _hint(f'{{"version": 7, "entry": {text}}}\n{json.dumps(document)}'.encode())
            assert isinstance(hint, Published)
            with pytest.raises(ValueError, match=r"entry of version 8|Expecting value"):
                hint.entry  # noqa: B018 - reading it is the test

    @pytest.mark.parametrize(
        ("head", "expected"),
        [
            (b'{"version": 07, "entry": {}}', 0),  # not JSON: a check, not a version
            (b'{"version": 0, "entry": {}}', 0),
            (b'{"version": 5}', 5),  # a number alone
            (b'{"entry": {}, "version": 5}', "published"),  # another key order, read as JSON
        ],
    )
    def test_other_headers_read_as_json(self, head: bytes, expected: int | str) -> None:
        """Headers not in the script's exact form are read as JSON, with the same checks."""
        hint = _hint(head + b"\n{}")
        assert (isinstance(hint, Published) and expected == "published") or hint == expected


class TestNotText:
    """Bytes that are not UTF-8, where policystore writes only UTF-8: refused alike by every kind of client."""

    async def test_document_not_utf8_raises_unavailable(self, backend: RedisBackend, raw: redis.asyncio.Redis) -> None:
        """A decoding client's document read fails as a plain client's does: StoreUnavailableError, not a crash."""
        await raw.set(backend.keys.document, b'{"active_mode": "\xff"}')
        with pytest.raises(StoreUnavailableError, match="not valid JSON"):
            await backend.load()

    async def test_history_entry_not_utf8_raises_unavailable(
        self, backend: RedisBackend, raw: redis.asyncio.Redis
    ) -> None:
        """A history entry that is not text is reported with its version."""
        await backend.commit(*_version(1))
        await raw.hset(backend.keys.history, "1", b"\xfe\xff")
        with pytest.raises(StoreUnavailableError, match="history entry 1 is not valid JSON"):
            await backend.history(10)

    async def test_table_entry_not_utf8_is_ignored_and_others_read(
        self, backend: RedisBackend, raw: redis.asyncio.Redis
    ) -> None:
        """A record whose key or value is not text grants nothing; the others still read."""
        await backend.records.put("tokens", "good", {})
        await raw.hset(backend.keys.aux("tokens"), b"bad\xff", b"{}")
        await raw.hset(backend.keys.aux("tokens"), b"worse", b"\xff")

        assert {"good": {}} == await backend.records.all("tokens")

    async def test_notice_not_utf8_asks_for_a_check_and_notices_keep_coming(
        self, backend: RedisBackend, raw: redis.asyncio.Redis
    ) -> None:
        """A notice that is not text never ends the notifications: 0 (re-read), then later notices arrive."""
        notices = backend.notifications()
        assert 0 == await _next(notices)
        await raw.publish(backend.keys.channel, b"\xff\xfe not text")
        hint = await _next(notices)
        while isinstance(hint, int) and hint == 0 and not (await raw.pubsub_numsub(backend.keys.channel))[0][1]:
            hint = await _next(notices)  # a decoding reader resubscribed: wait until it listens again
        await backend.commit(*_version(1))
        versions = [_number(await _next(notices))]
        while versions[-1] == 0:
            versions.append(_number(await _next(notices)))
        assert 1 == versions[-1]
