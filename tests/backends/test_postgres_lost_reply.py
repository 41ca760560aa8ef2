"""A commit whose reply is lost after PostgreSQL committed it: never a false conflict, a duplicate or a false success.

A proxy between the back end and a real server forwards every message but, for
the chosen number of commits, swallows the server's whole reply (up to and
including ReadyForQuery, which the server sends only once the transaction has
committed) and drops the connection, exactly as a network failure after the
commit would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from policystore.backends._postgres_layout import CommitCall, Sending
from policystore.backends.postgres import PostgresBackend
from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import default_policy
from policystore.store.store import PolicyStore
from support.postgres_server import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
#: ReadyForQuery: the last message of every reply ('Z', length 5, one status byte).
READY = b"Z\x00\x00\x00\x05"


def _version(n: int, mode: str = "NORMAL") -> tuple[dict[str, Any], HistoryEntry]:
    document = default_policy().document() | {"version": n, "active_mode": mode}
    return document, HistoryEntry(n, AT, "tester", f"write {n}", (FieldChange("active_mode", "NORMAL", mode),))


class ReplyDropper:
    """A loopback TCP proxy to PostgreSQL that loses the replies of the next ``drops`` commits.

    A commit is recognised by ``pg_notify`` in the statement the client sends.
    Its reply is held until ReadyForQuery arrives (the transaction has then
    committed), then thrown away with both connections.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.drops = 0
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writers += [client_writer, server_writer]
        commit_sent = asyncio.Event()

        async def upstream() -> None:
            while data := await client_reader.read(65536):
                if b"pg_notify" in data and self.drops > 0:
                    self.drops -= 1
                    commit_sent.set()
                server_writer.write(data)
                await server_writer.drain()

        async def downstream() -> None:
            held = b""
            while data := await server_reader.read(65536):
                if commit_sent.is_set():
                    held += data
                    if READY in held:  # committed: the reply is complete, and now lost
                        self.dropped += 1
                        return
                    continue
                client_writer.write(data)
                await client_writer.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client_writer, server_writer):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


@pytest.fixture
async def dropper(postgres_server: PostgresServer) -> AsyncIterator[ReplyDropper]:
    proxy = ReplyDropper(postgres_server.port)
    yield proxy
    await proxy.stop()


@pytest.fixture
async def proxied_url(dropper: ReplyDropper, postgres_url: str) -> str:
    port = await dropper.start()
    return postgres_url.replace(f":{dropper.port}/", f":{port}/")


@pytest.fixture
async def backend(proxied_url: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend.from_url(proxied_url)
    await backend.connect()
    yield backend
    await backend.close()


@pytest.fixture
async def direct(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    """A back end on the same namespace that bypasses the proxy."""
    backend = PostgresBackend.from_url(postgres_url)
    yield backend
    await backend.close()


class TestLostReply:
    """The reply to a commit that PostgreSQL committed never reaches the writer."""

    async def test_lost_reply_resent_reports_success(
        self, backend: PostgresBackend, direct: PostgresBackend, dropper: ReplyDropper
    ) -> None:
        """The re-sent commit finds its own write in place and succeeds instead of raising a conflict."""
        await backend.commit(*_version(1))
        dropper.drops = 1
        document, entry = _version(2, "DEFENSIVE")
        await backend.commit(document, entry)
        assert 1 == dropper.dropped
        assert 2 == await direct.current_version()
        assert document == await direct.load()
        assert [entry] == await direct.history(1)

    async def test_lost_reply_store_update_written_once(
        self, proxied_url: str, direct: PostgresBackend, dropper: ReplyDropper
    ) -> None:
        """A store update whose reply is lost is written once, not applied again on top of itself."""
        store = await PolicyStore.open(proxied_url, watch=False, lkg_path=None)
        try:
            dropper.drops = 1
            new = await store.switch_mode("DEFENSIVE", reason="reply lost")
            assert (1, 2) == (dropper.dropped, new.version)
            assert 2 == await direct.current_version()
            assert ["reply lost", "initial policy"] == [e.reason for e in await direct.history(10)]
        finally:
            await store.close()

    async def test_lost_reply_expected_version_no_false_conflict(self, proxied_url: str, dropper: ReplyDropper) -> None:
        """With expected_version the caller gets its new version, not a VersionConflictError."""
        store = await PolicyStore.open(proxied_url, watch=False, lkg_path=None)
        try:
            dropper.drops = 1
            new = await store.switch_mode("DEFENSIVE", reason="reply lost", expected_version=1)
            assert 2 == new.version
        finally:
            await store.close()

    async def test_every_reply_lost_outcome_unknown_unavailable(
        self, backend: PostgresBackend, direct: PostgresBackend, dropper: ReplyDropper
    ) -> None:
        """When no reply ever arrives the write is reported unavailable with an unknown outcome, never as done."""
        dropper.drops = 1000
        with pytest.raises(StoreUnavailableError, match="may or may not have been written"):
            await backend.commit(*_version(1))
        assert 2 == dropper.dropped
        # It did land: the error must not have claimed that nothing was written.
        assert 1 == await direct.current_version()

    async def test_resent_commit_after_other_writer_succeeds(self, direct: PostgresBackend) -> None:
        """A re-sent commit that arrives after another writer moved on still recognises its own version."""
        call = CommitCall.build(direct.namespace, *_version(1), None)
        first = await direct._commit_once(call, Sending())
        await direct.commit(*_version(2, "DEFENSIVE"))
        replay = await direct._commit_once(call, Sending())
        assert (True, False, True, True) == (first.committed, first.replayed, replay.committed, replay.replayed)
        assert 2 == await direct.current_version()
        assert [2, 1] == [e.version for e in await direct.history(10)]

    async def test_same_change_twice_still_conflicts(self, direct: PostgresBackend) -> None:
        """Two writes with identical content are two writes: the second one conflicts."""
        await direct.commit(*_version(1))
        with pytest.raises(VersionConflictError):
            await direct.commit(*_version(1))
        assert 1 == len(await direct.history(10))


async def test_other_statements_pass_the_proxy(postgres_server: PostgresServer, postgres_url: str) -> None:
    """The proxy leaves statements other than commits alone (a check of the test's own tool)."""
    proxy = ReplyDropper(postgres_server.port)
    port = await proxy.start()
    backend = PostgresBackend.from_url(postgres_url.replace(f":{postgres_server.port}/", f":{port}/"))
    try:
        proxy.drops = 1
        assert 0 == await backend.current_version()
        assert 0 == proxy.dropped
    finally:
        await backend.close()
        await proxy.stop()
