"""PostgresBackend against a real PostgreSQL server: compare-and-set, history, notices, schema, failures."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from policystore.backends._postgres_schema import SCHEMA_VERSION
from policystore.backends.base import Backend, Published
from policystore.backends.postgres import PostgresBackend
from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import default_policy
from support.postgres_server import PASSWORD, PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _version(n: int, mode: str = "NORMAL") -> tuple[dict[str, Any], HistoryEntry]:
    document = default_policy().document() | {"version": n, "active_mode": mode}
    return document, HistoryEntry(n, AT, "tester", f"write {n}", (FieldChange("active_mode", "NORMAL", mode),))


@pytest.fixture
async def backend(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend.from_url(postgres_url)
    await backend.connect()
    yield backend
    await backend.close()


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty database of its own (for the tests that put other tables in the way)."""
    name = f"schema_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)
    yield name
    postgres_server.drop_database(name)


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


def _sql(server: PostgresServer, query: str, *params: Any, database: str = "policystore") -> list[tuple[Any, ...]]:
    return server.execute(query, params, database=database)


class TestCommitAndRead:
    """Versions, documents and history written by the commit statement."""

    async def test_backend_protocol_implemented(self, backend: PostgresBackend) -> None:
        """PostgresBackend satisfies the Backend protocol."""
        assert isinstance(backend, Backend)

    async def test_empty_namespace_reads_nothing(self, backend: PostgresBackend) -> None:
        """A new namespace is at version 0 with no document and no history."""
        assert 0 == await backend.current_version()
        assert await backend.load() is None
        assert [] == await backend.history(10)
        assert [] == await backend.entries(0, 5)

    async def test_commits_readable_by_version(self, backend: PostgresBackend) -> None:
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

    async def test_stale_version_conflict_changes_nothing(self, backend: PostgresBackend) -> None:
        """A commit that is not the next version raises VersionConflictError and writes nothing."""
        await backend.commit(*_version(1))
        await backend.commit(*_version(2))
        for stale in (_version(2, "DEFENSIVE"), _version(1, "DEFENSIVE"), _version(5, "DEFENSIVE")):
            with pytest.raises(VersionConflictError) as caught:
                await backend.commit(*stale)
            assert (stale[1].version - 1, 2) == (caught.value.expected_version, caught.value.current_version)
        assert "NORMAL" == (await backend.load() or {})["active_mode"]
        assert 2 == len(await backend.history(10))

    async def test_entry_version_mismatch_conflict(self, backend: PostgresBackend) -> None:
        """A document and entry of different versions are refused."""
        document, _ = _version(1)
        with pytest.raises(VersionConflictError):
            await backend.commit(document, _version(2)[1])
        assert 0 == await backend.current_version()

    async def test_concurrent_commits_of_one_version_one_wins(self, backend: PostgresBackend) -> None:
        """Of many commits of the same next version sent at once, exactly one is stored."""
        await backend.commit(*_version(1))
        results = await asyncio.gather(
            *(backend.commit(*_version(2, f"MODE{n}")) for n in range(8)), return_exceptions=True
        )
        assert 1 == sum(result is None for result in results)
        assert all(isinstance(r, VersionConflictError) for r in results if r is not None)
        assert [2, 1] == [e.version for e in await backend.history(10)]

    async def test_records_set_read_delete(self, backend: PostgresBackend, postgres_server: PostgresServer) -> None:
        """Records are set, replaced, read back and deleted, each write stamped with the server's time."""
        await backend.records.put("tokens", "a", {"hash": "a"})
        await backend.records.put("tokens", "b", {"hash": "b"})
        await backend.records.put("tokens", "b", {"hash": "b2"})
        await backend.records.delete("tokens", "a")
        assert {"b": {"hash": "b2"}} == await backend.records.all("tokens")
        assert {} == await backend.records.all("other")
        stamped = _sql(
            postgres_server,
            "SELECT now() - updated_at < interval '1 minute' FROM policystore_aux WHERE namespace = %s",
            backend.namespace,
        )
        assert [(True,)] == stamped


class TestNotifications:
    """LISTEN/NOTIFY change notices."""

    async def test_listen_then_commit_yields_zero_then_version(self, backend: PostgresBackend) -> None:
        """The iterator yields 0 once listening, then each committed version (with its content once the
        namespace has a key, from version 2 on), and ends on close."""
        notices = backend.notifications()
        assert 0 == await _next(notices)
        await backend.commit(*_version(1))
        assert 1 == await _next(notices)
        document, entry = _version(2, "DEFENSIVE")
        await backend.commit(document, entry)
        hint = await _next(notices)
        assert isinstance(hint, Published)
        assert (2, entry) == (hint.version, hint.entry)
        assert isinstance(hint.document, bytes)
        assert document == json.loads(hint.document)
        await backend.close()
        with pytest.raises(StopAsyncIteration):
            await _next(notices)

    async def test_malformed_notice_yields_zero(
        self, backend: PostgresBackend, postgres_server: PostgresServer
    ) -> None:
        """A notice on the channel that is not one of ours asks for a check instead of failing."""
        notices = backend.notifications()
        assert 0 == await _next(notices)
        for garbage in ("not json", '{"version": "x"}', "[1]", ""):
            _sql(postgres_server, "SELECT pg_notify(%s, %s)", backend.channel, garbage)
            assert 0 == await _next(notices)
        _sql(postgres_server, "SELECT pg_notify(%s, %s)", backend.channel, json.dumps({"version": 7}))
        assert 7 == await _next(notices)

    async def test_document_over_notify_limit_announced_by_number(self, backend: PostgresBackend) -> None:
        """A version too large for NOTIFY is still committed and announced, by its number alone."""
        await backend.commit(*_version(1))
        document, entry = _version(2)
        document["modes"] |= {f"EXTRA_{n}": document["modes"]["NORMAL"] for n in range(40)}
        assert len(json.dumps(document)) > 8000
        notices = backend.notifications()
        assert 0 == await _next(notices)
        await backend.commit(document, entry)
        assert 2 == await _next(notices)
        assert document == await backend.load()

    async def test_server_restart_yields_zero_then_resumes(
        self, backend: PostgresBackend, postgres_server: PostgresServer
    ) -> None:
        """Losing the server yields 0 (check now), and notices flow again once it returns and is listened to."""
        notices = backend.notifications()
        assert 0 == await _next(notices)
        postgres_server.kill9()
        assert 0 == await _next(notices)
        postgres_server.start()
        # Zeros repeat while the iterator reconnects; keep consuming until it listens again.
        while not _sql(postgres_server, "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'"):
            assert 0 == await _next(notices)
        await backend.commit(*_version(1))
        hint = _number(await _next(notices))
        while hint == 0:
            hint = _number(await _next(notices))
        assert 1 == hint


class TestCorruptData:
    """Rows in the tables that policystore did not write."""

    async def test_non_object_document_raises_unavailable(
        self, backend: PostgresBackend, postgres_server: PostgresServer
    ) -> None:
        """A stored document that is not a JSON object raises StoreUnavailableError."""
        await backend.commit(*_version(1))
        _sql(
            postgres_server,
            "UPDATE policystore_versions SET document = '[1, 2]' WHERE namespace = %s",
            backend.namespace,
        )
        with pytest.raises(StoreUnavailableError, match="is a JSON list, not an object"):
            await backend.load()

    async def test_malformed_history_entry_raises_unavailable(
        self, backend: PostgresBackend, postgres_server: PostgresServer
    ) -> None:
        """A history entry that is not an entry is reported with its version."""
        await backend.commit(*_version(1))
        _sql(
            postgres_server,
            """UPDATE policystore_versions SET entry = '{"version": 1}' WHERE namespace = %s""",
            backend.namespace,
        )
        with pytest.raises(StoreUnavailableError, match="history entry 1 is malformed"):
            await backend.history(10)

    async def test_missing_history_entry_raises_unavailable(
        self, backend: PostgresBackend, postgres_server: PostgresServer
    ) -> None:
        """A hole in the history is reported, not skipped; a head without its version is too."""
        for n in (1, 2, 3):
            await backend.commit(*_version(n))
        _sql(
            postgres_server, "DELETE FROM policystore_versions WHERE namespace = %s AND version = 2", backend.namespace
        )
        with pytest.raises(StoreUnavailableError, match="history entry 2 is missing"):
            await backend.entries(0, 3)
        _sql(
            postgres_server, "DELETE FROM policystore_versions WHERE namespace = %s AND version = 3", backend.namespace
        )
        with pytest.raises(StoreUnavailableError, match="version 3 is missing"):
            await backend.load()


class TestSchema:
    """The tables: created on first open, versioned, and never altered when they do not fit."""

    async def test_first_open_creates_versioned_tables(self, postgres_server: PostgresServer, database: str) -> None:
        """A new database gets the four tables and the schema version, once, however many open it at once."""
        backends = [PostgresBackend.from_url(postgres_server.url(database=database)) for _ in range(4)]
        await asyncio.gather(*(backend.connect() for backend in backends))
        for backend in backends:
            await backend.close()
        tables = _sql(
            postgres_server,
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'policystore%%' ORDER BY 1",
            database=database,
        )
        assert [
            ("policystore_aux",),
            ("policystore_head",),
            ("policystore_schema",),
            ("policystore_versions",),
        ] == tables
        assert [(SCHEMA_VERSION,)] == _sql(postgres_server, "SELECT version FROM policystore_schema", database=database)

    async def test_connect_without_creating_writes_nothing(
        self, postgres_server: PostgresServer, database: str
    ) -> None:
        """connect(create=False) on a database without the tables creates none, reads as empty, refuses writes."""
        backend = PostgresBackend.from_url(postgres_server.url(database=database, namespace="n"))
        await backend.connect(create=False)
        assert (0, None, [], {}) == (
            await backend.current_version(),
            await backend.load(),
            await backend.history(10),
            await backend.records.all("tokens"),
        )
        for write in (backend.commit(*_version(1)), backend.records.put("tokens", "a", {"b": 1})):
            with pytest.raises(StoreUnavailableError, match="opened without creating them"):
                await write
        await backend.close()
        assert [] == _sql(
            postgres_server, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database=database
        )

    async def test_newer_schema_version_refused_unchanged(self, postgres_server: PostgresServer, database: str) -> None:
        """A database written by a newer policystore is refused in one sentence, and left as it was."""
        url = postgres_server.url(database=database, namespace="n")
        first = PostgresBackend.from_url(url)
        await first.connect()
        await first.commit(*_version(1))
        await first.close()
        _sql(postgres_server, "UPDATE policystore_schema SET version = 2", database=database)

        backend = PostgresBackend.from_url(url)
        with pytest.raises(StoreUnavailableError) as caught:
            await backend.connect()
        message = str(caught.value)
        assert "schema version 2, newer than the version 1" in message
        assert 1 == message.count(". ") + message.endswith(".")
        with pytest.raises(StoreUnavailableError, match="newer"):
            await backend.commit(*_version(2))
        await backend.close()
        assert [(2,)] == _sql(postgres_server, "SELECT version FROM policystore_schema", database=database)
        assert [(1,)] == _sql(postgres_server, "SELECT max(version) FROM policystore_versions", database=database)

    async def test_same_named_table_with_other_columns_refused_unchanged(
        self, postgres_server: PostgresServer, database: str
    ) -> None:
        """A table of one of policystore's names with other columns is refused, and nothing is created."""
        _sql(postgres_server, "CREATE TABLE policystore_head (id serial PRIMARY KEY, note text)", database=database)
        _sql(postgres_server, "INSERT INTO policystore_head (note) VALUES ('theirs')", database=database)
        backend = PostgresBackend.from_url(postgres_server.url(database=database))
        with pytest.raises(StoreUnavailableError) as caught:
            await backend.connect()
        await backend.close()
        assert "policystore_head" in str(caught.value)
        assert PASSWORD not in str(caught.value)
        tables = _sql(postgres_server, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database=database)
        assert [("policystore_head",)] == tables
        assert [(1, "theirs")] == _sql(postgres_server, "SELECT id, note FROM policystore_head", database=database)

    async def test_every_table_with_other_columns_refused(self, postgres_server: PostgresServer, database: str) -> None:
        """All four names taken by tables of another layout (the schema table included) are refused."""
        for table in ("policystore_schema", "policystore_head", "policystore_versions", "policystore_aux"):
            _sql(postgres_server, f"CREATE TABLE {table} (a integer)", database=database)
        backend = PostgresBackend.from_url(postgres_server.url(database=database))
        with pytest.raises(StoreUnavailableError, match="do not fit"):
            await backend.connect()
        await backend.close()


class TestUnreachable:
    """Every call fails with StoreUnavailableError in bounded time when the server is not there."""

    async def test_refused_port_every_call_unavailable(self) -> None:
        """With nothing listening, each call raises StoreUnavailableError and hides the password."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        backend = PostgresBackend.from_url(f"postgresql://u:hunter2@127.0.0.1:{port}/db?namespace=down&timeout=0.5")
        calls = [
            backend.connect(),
            backend.current_version(),
            backend.load(),
            backend.commit(*_version(1)),
            backend.history(5),
            backend.entries(0, 1),
            backend.records.all("tokens"),
            backend.records.put("tokens", "a", {"b": 1}),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailableError) as caught:
                await call
            assert "hunter2" not in str(caught.value)
            assert "may or may not" not in str(caught.value)  # nothing was sent
        await backend.close()

    async def test_wrong_password_reason_given_password_hidden(self, postgres_server: PostgresServer) -> None:
        """A refused login fails every call within the timeout, saying why, and never shows either password."""
        backend = PostgresBackend.from_url(postgres_server.url(namespace="n", password="wrong-pw"))  # noqa: S106 - a wrong one on purpose
        for call in (backend.connect(), backend.commit(*_version(1))):
            with pytest.raises(StoreUnavailableError) as caught:
                await call
            message = str(caught.value)
            assert "password authentication failed" in message
            assert "wrong-pw" not in message
            assert PASSWORD not in message
        await backend.close()

    async def test_silent_server_calls_bounded(self, silent_port: int) -> None:
        """A server that accepts connections and never answers makes calls fail, not hang."""
        backend = PostgresBackend.from_url(f"postgresql://u@127.0.0.1:{silent_port}/db?timeout=0.3")
        with pytest.raises(StoreUnavailableError, match=r"within 0\.3 s"):
            await backend.current_version()
        notices = backend.notifications()
        assert 0 == await _next(notices)  # the listener gives up on the connection and says: check
        await backend.close()
        await notices.aclose()
