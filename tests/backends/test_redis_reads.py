"""The read that confirms a loosening notice: the stored text, on a connection of its own, sent at the call."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, Self

import pytest
import redis.asyncio
from redis.asyncio.connection import Connection

from policystore import PolicyChanged, PolicyStore, StoreUnavailableError
from policystore.backends._redis_layout import COMMIT_LUA, CommitCall
from policystore.backends._redis_subscription import endpoint_of
from policystore.backends.base import NewestText
from policystore.backends.redis import RedisBackend
from policystore.model.history import HistoryEntry
from policystore.model.policy import Policy, default_policy
from policystore.model.validation import build_policy
from support.redis_server import RedisServer
from support.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]
PASSWORD = "r3ads-pw"  # noqa: S105 - the test server's own
AT = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def guarded_server() -> Iterator[RedisServer]:
    """A redis-server that wants a password."""
    with RedisServer(options=("--requirepass", PASSWORD)) as server:
        yield server


@pytest.fixture
async def admin(guarded_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client on database 2 of the guarded server: the test's own view, and the forger's."""
    client = redis.asyncio.Redis(port=guarded_server.port, password=PASSWORD, db=2)
    yield client
    await client.aclose()


def _url(server: RedisServer, namespace: str, *, timeout: float = 1.0) -> str:
    return f"redis://:{PASSWORD}@127.0.0.1:{server.port}/2?namespace={namespace}&timeout={timeout}"


def _call(backend: RedisBackend, base: Policy, changes: dict[str, Any], by: str = "tester") -> CommitCall:
    """The commit of the version after ``base`` with ``changes`` (top-level members), laid out as a writer does."""
    document = base.document() | changes
    version = base.version + 1
    document |= {"version": version, "updated_at": AT.isoformat(), "updated_by": by, "reason": by}
    return CommitCall.build(backend.keys, document, HistoryEntry(version, AT, by, by, ()))


class _SilentServer:
    """A loopback server that accepts connections and never answers."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self.accepted: list[socket.socket] = []
        self.port = 0

    def __enter__(self) -> Self:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def __exit__(self, *_exc: object) -> None:
        for connection in self.accepted:
            connection.close()
        self._listener.close()


class TestNewestText:
    """RedisBackend.newest_text against real servers, and against one that never answers."""

    async def test_reads_the_stored_text_with_password_and_database(
        self, guarded_server: RedisServer, admin: redis.asyncio.Redis
    ) -> None:
        """The read authenticates, selects the URL's database and answers the very bytes the commit stored."""
        backend = RedisBackend.from_url(_url(guarded_server, "text"))
        try:
            await backend.connect()
            assert isinstance(backend, NewestText)
            assert await backend.newest_text() is None  # nothing written yet
            call = _call(backend, default_policy(), {"active_mode": "DEFENSIVE"})
            await backend.commit(*_document_and_entry(call))
            stored = await admin.get(backend.keys.document)
            assert (stored, stored) == (await backend.newest_text(), call.args[1].encode())
        finally:
            await backend.close()

    async def test_key_of_another_type_is_unavailable_then_read_again(
        self, guarded_server: RedisServer, admin: redis.asyncio.Redis
    ) -> None:
        """A refused read is StoreUnavailableError; the next read, once the key holds text, answers it."""
        backend = RedisBackend.from_url(_url(guarded_server, "wrongtype"))
        try:
            await admin.hset(backend.keys.document, "not", "text")
            with pytest.raises(StoreUnavailableError, match="refused"):
                await backend.newest_text()
            await admin.delete(backend.keys.document)
            await admin.set(backend.keys.document, b'{"version": 1}')
            assert b'{"version": 1}' == await backend.newest_text()
        finally:
            await backend.close()

    async def test_silent_server_times_out_and_its_connection_is_not_used_again(self) -> None:
        """No answer within the URL's timeout is StoreUnavailableError, and the next read opens a new connection.

        A reply that came late on the old connection could otherwise answer the next read.
        """
        with _SilentServer() as server:
            backend = RedisBackend.from_url(f"redis://127.0.0.1:{server.port}/0?namespace=silent&timeout=0.2")
            try:
                for connections in (1, 2):
                    with pytest.raises(StoreUnavailableError, match=r"no answer within 0\.2 s"):
                        await backend.newest_text()
                    await eventually(lambda n=connections: len(server.accepted) == n)
            finally:
                await backend.close()

    async def test_close_fails_a_waiting_read_at_once(self) -> None:
        """Closing the back end ends a read that waits for an answer that will not come, without its timeout."""
        with _SilentServer() as server:
            backend = RedisBackend.from_url(f"redis://127.0.0.1:{server.port}/0?namespace=closing&timeout=30")
            reading = backend.newest_text()
            await eventually(lambda: len(server.accepted) == 1)
            await backend.close()
            with pytest.raises(StoreUnavailableError, match="closed"):
                await reading

    async def test_killed_connection_is_replaced(self, guarded_server: RedisServer, admin: redis.asyncio.Redis) -> None:
        """After the server drops the connection, at most one read fails; the next opens another and answers."""
        backend = RedisBackend.from_url(_url(guarded_server, "killed"))
        try:
            await admin.set(backend.keys.document, b"{}")
            assert b"{}" == await backend.newest_text()
            await admin.client_kill_filter(_type="normal", skipme=True)
            with contextlib.suppress(StoreUnavailableError):
                await backend.newest_text()
            assert b"{}" == await backend.newest_text()
        finally:
            await backend.close()

    async def test_caller_client_it_cannot_serve_is_read_through_redis_py(self, redis_url: str) -> None:
        """A client with its own connection class keeps redis-py for the read too, and gets the same bytes."""

        class Traced(Connection):
            pass

        base, _, query = redis_url.partition("?")
        client = redis.asyncio.Redis.from_url(base, connection_class=Traced, decode_responses=True)
        assert endpoint_of(client) is None
        backend = RedisBackend.from_client(client, namespace=query.split("=", 1)[1])
        try:
            call = _call(backend, default_policy(), {"reason": "x"})
            await backend.commit(*_document_and_entry(call))
            assert call.args[1].encode() == await backend.newest_text()
        finally:
            await backend.close()
            await client.aclose()


class TestConfirmedFromItsText:
    """A store confirms a loosening notice with the one read, also when it sent it before checking the notice."""

    async def test_known_loosening_costs_one_get_and_is_installed(
        self, guarded_server: RedisServer, admin: redis.asyncio.Redis
    ) -> None:
        """The third switch to a looser mode, a pair of contents judged before, costs one GET more than a tightening."""
        store = await PolicyStore.open(_url(guarded_server, "known"), lkg_path=None, refresh_interval=3600)
        commit = admin.register_script(COMMIT_LUA)
        backend = store.backend
        assert isinstance(backend, RedisBackend)

        async def commands_for(mode: str) -> dict[str, int]:
            call = _call(backend, store.snapshot(), {"active_mode": mode})
            before = await admin.info("commandstats")
            await commit(keys=call.keys, args=call.args)
            await eventually(lambda: store.get("version") == call.version)
            after = await admin.info("commandstats")
            return {
                name: int(after.get(f"cmdstat_{name}", {}).get("calls", 0))
                - int(before.get(f"cmdstat_{name}", {}).get("calls", 0))
                for name in ("get", "hget", "hmget", "mget")
            }

        try:
            heard: list[PolicyChanged] = []
            for mode in ("DEFENSIVE", "AGGRESSIVE_SMALL_ACCOUNT", "DEFENSIVE"):  # settle, then teach the pair
                await commands_for(mode)
            tightening = await commands_for("DEFENSIVE")
            store.subscribe(heard.append)
            loosening = await commands_for("AGGRESSIVE_SMALL_ACCOUNT")
            assert tightening | {"get": tightening["get"] + 1} == loosening
            assert ("AGGRESSIVE_SMALL_ACCOUNT", [store.get("version")]) == (
                store.get("active_mode"),
                [event.version for event in heard],
            )
        finally:
            await store.close()

    async def test_forged_notice_of_a_known_loosening_is_not_installed(
        self, guarded_server: RedisServer, admin: redis.asyncio.Redis
    ) -> None:
        """The read sent early finds another text: the forged version is never held, nor announced."""
        store = await PolicyStore.open(_url(guarded_server, "forged"), lkg_path=None, refresh_interval=3600)
        commit = admin.register_script(COMMIT_LUA)
        backend = store.backend
        assert isinstance(backend, RedisBackend)
        try:
            for mode in ("DEFENSIVE", "AGGRESSIVE_SMALL_ACCOUNT", "DEFENSIVE", "AGGRESSIVE_SMALL_ACCOUNT", "DEFENSIVE"):
                call = _call(backend, store.snapshot(), {"active_mode": mode})
                await commit(keys=call.keys, args=call.args)
                await eventually(lambda v=call.version: store.get("version") == v)
            held: list[tuple[int, str]] = []
            store.subscribe(lambda event: held.append((event.version, event.by)))
            forged = _call(backend, store.snapshot(), {"active_mode": "AGGRESSIVE_SMALL_ACCOUNT"}, by="forger")
            _version, text, _entry, channel, header = forged.args
            await admin.publish(str(channel), f"{header}\n{text}")
            # Notices arrive in order: once the genuine one after it is held, the forged one was dealt with.
            genuine = _call(backend, store.snapshot(), {"reason": "after the forgery"})
            await commit(keys=genuine.keys, args=genuine.args)
            await eventually(lambda: store.get("version") == genuine.version)
            assert [(genuine.version, "tester")] == held
            assert ("DEFENSIVE", False) == (store.get("active_mode"), store.stale)
        finally:
            await store.close()


class TestOvertakenBeforeItsRead:
    """A loosening notice whose confirming read finds a later version: its own version in history confirms it."""

    async def test_loosening_overtaken_before_its_read_is_installed_without_reading_the_store_back(
        self, guarded_server: RedisServer, admin: redis.asyncio.Redis
    ) -> None:
        """Two commits sent at once: the looser one is confirmed by one GET and one HGET, and no history is read."""
        store = await PolicyStore.open(_url(guarded_server, "overtaken"), lkg_path=None, refresh_interval=3600)
        backend = store.backend
        assert isinstance(backend, RedisBackend)
        try:
            tighter = _call(backend, store.snapshot(), {"active_mode": "DEFENSIVE"})
            await admin.eval(COMMIT_LUA, len(tighter.keys), *tighter.keys, *tighter.args)
            await eventually(lambda: store.get("version") == tighter.version)
            heard: list[tuple[int, str]] = []
            store.subscribe(lambda event: heard.append((event.version, store.get("active_mode"))))
            looser = _call(backend, store.snapshot(), {"active_mode": "AGGRESSIVE_SMALL_ACCOUNT"})
            after = _call(backend, build_policy(json.loads(looser.args[1])), {"reason": "right after"})
            before = await admin.info("commandstats")
            # One round trip: both scripts run before the store's read of the first can reach Redis.
            pipe = admin.pipeline(transaction=False)
            for call in (looser, after):
                pipe.eval(COMMIT_LUA, len(call.keys), *call.keys, *call.args)
            await pipe.execute()
            await eventually(lambda: store.get("version") == after.version)
            stats = await admin.info("commandstats")
            reads = {name: _calls(stats, name) - _calls(before, name) for name in ("get", "hget", "hmget", "mget")}
            # Each commit script reads the version key once; the confirmation is one GET and one HGET.
            assert {"get": 2 + 1, "hget": 1, "hmget": 0, "mget": 0} == reads
            assert [(looser.version, "AGGRESSIVE_SMALL_ACCOUNT"), (after.version, "AGGRESSIVE_SMALL_ACCOUNT")] == heard
        finally:
            await store.close()

    async def test_forged_loosening_that_names_an_overtaken_version_is_not_installed(
        self, guarded_server: RedisServer, admin: redis.asyncio.Redis
    ) -> None:
        """A forged notice for a version the store has written otherwise is refused by its history, never held."""
        store = await PolicyStore.open(_url(guarded_server, "overforged"), lkg_path=None, refresh_interval=3600)
        backend = store.backend
        assert isinstance(backend, RedisBackend)
        try:
            tighter = _call(backend, store.snapshot(), {"active_mode": "DEFENSIVE"})
            await admin.eval(COMMIT_LUA, len(tighter.keys), *tighter.keys, *tighter.args)
            await eventually(lambda: store.get("version") == tighter.version)
            held: list[tuple[int, str]] = []
            store.subscribe(lambda event: held.append((event.version, event.by)))
            forged = _call(backend, store.snapshot(), {"active_mode": "AGGRESSIVE_SMALL_ACCOUNT"}, by="forger")
            genuine = _call(backend, store.snapshot(), {"reason": "the real one"})
            later = _call(backend, build_policy(json.loads(genuine.args[1])), {"reason": "and the next"})
            _version, text, _entry, channel, header = forged.args
            # The genuine versions are stored first, then the forgery names the first of them.
            pipe = admin.pipeline(transaction=False)
            for call in (genuine, later):
                pipe.eval(COMMIT_LUA, len(call.keys), *call.keys, *call.args)
            pipe.publish(str(channel), f"{header}\n{text}")
            await pipe.execute()
            await eventually(lambda: store.get("version") == later.version)
            assert [(genuine.version, "tester"), (later.version, "tester")] == held
            assert ("DEFENSIVE", False) == (store.get("active_mode"), store.stale)
        finally:
            await store.close()


def _document_and_entry(call: CommitCall) -> tuple[dict[str, Any], HistoryEntry]:
    """The document and entry a commit call was built from."""
    return json.loads(call.args[1]), HistoryEntry.from_dict(json.loads(call.args[2]))


class TestReadOnAnOpenConnection:
    """A read on the connection already open: settled by its reply, or failed by the timeout."""

    async def test_frozen_server_times_out_the_read_and_the_next_read_opens_another_connection(self) -> None:
        """With the server stopped (SIGSTOP) after a first read, the second fails in time; then a third answers."""
        with RedisServer() as server:
            backend = RedisBackend.from_url(server.url(namespace="frozen") + "&timeout=0.3")
            admin = redis.asyncio.Redis(port=server.port)
            try:
                await admin.set(backend.keys.document, b"{}")
                assert b"{}" == await backend.newest_text()
                assert server.pid is not None
                os.kill(server.pid, signal.SIGSTOP)
                try:
                    with pytest.raises(StoreUnavailableError, match=r"no answer within 0\.3 s"):
                        await backend.newest_text()
                finally:
                    os.kill(server.pid, signal.SIGCONT)
                assert b"{}" == await backend.newest_text()
            finally:
                await backend.close()
                await admin.aclose()


def _calls(stats: dict[str, Any], name: str) -> int:
    return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))


class TestCommandsWithoutReplies:
    """Fleet reports on the back end's own connection: answered once, then sent with CLIENT REPLY SKIP."""

    async def test_reports_after_the_first_ask_for_no_reply_and_reads_still_get_theirs(
        self, guarded_server: RedisServer, admin: redis.asyncio.Redis
    ) -> None:
        """Each report after the first is an EVAL behind a CLIENT REPLY SKIP; a read after them gets its own reply."""
        backend = RedisBackend.from_url(_url(guarded_server, "skips"))
        records = backend.records
        try:
            await records.put_unlogged("fleet", "member", {"version": 1})  # answered, then the server asked
            before = await admin.info("commandstats")
            for version in (2, 3, 4):
                await records.put_unlogged("fleet", "member", {"version": version})
            await admin.set(backend.keys.document, b'{"version": 4}')
            assert b'{"version": 4}' == await backend.newest_text()
            after = await admin.info("commandstats")
            sent = {name: _calls(after, name) - _calls(before, name) for name in ("eval", "client|reply")}
            assert {"eval": 3, "client|reply": 3} == sent
            assert {"version": 4} == await records.get("fleet", "member")
        finally:
            await backend.close()

    async def test_a_user_who_may_not_skip_replies_reports_with_every_reply(
        self, guarded_server: RedisServer, admin: redis.asyncio.Redis
    ) -> None:
        """With CLIENT denied by an ACL every report is answered, on one connection, and a read on it gets its reply."""
        await admin.execute_command("ACL", "SETUSER", "noclient", "on", ">pw", "~*", "&*", "+@all", "-client")
        url = f"redis://noclient:pw@127.0.0.1:{guarded_server.port}/2?namespace=noclient"
        backend = RedisBackend.from_url(url)
        records = backend.records
        try:
            await records.put_unlogged("fleet", "member", {"version": 1})
            assert {"version": 1} == await records.get("fleet", "member")
            connections = (await admin.info("stats"))["total_connections_received"]
            for version in (2, 3):
                await records.put_unlogged("fleet", "member", {"version": version})
                assert {"version": version} == await records.get("fleet", "member")
            await admin.set(backend.keys.document, b"{}")
            assert b"{}" == await backend.newest_text()
            assert connections == (await admin.info("stats"))["total_connections_received"]
        finally:
            await backend.close()
            await admin.execute_command("ACL", "DELUSER", "noclient")
