"""The read that confirms a loosening notice on PostgreSQL, and notices signed with the namespace's own key.

The notice key is in ``policystore_head``, so any role that may read the tables
can sign a notice: a signature says who could have sent it, not that the store
holds it. A notice that loosens is installed only once one read finds its
document in the store, byte for byte or equal as JSON.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from policystore.backends._postgres_layout import CommitCall, sign
from policystore.backends.base import Published
from policystore.backends.postgres import PostgresBackend
from policystore.errors import StoreUnavailableError
from policystore.model.document_text import document_text
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import default_policy
from policystore.store.store import PolicyStore
from support.postgres_server import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _version(n: int, mode: str = "NORMAL") -> tuple[dict[str, Any], HistoryEntry]:
    document = default_policy().document() | {"version": n, "active_mode": mode}
    return document, HistoryEntry(n, AT, "tester", f"write {n}", (FieldChange("active_mode", "NORMAL", mode),))


async def eventually(condition: Callable[[], bool], what: str, deadline: float = 15.0) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            pytest.fail(f"{what} did not happen within {deadline} s")
        await asyncio.sleep(0.01)


def _listening(backend: PostgresBackend) -> bool:
    """Whether ``backend`` listens: its listening connection has run LISTEN and takes statements.

    (The connection's last statement may be a fleet report or a confirm read, so the server's
    view of it does not say.)
    """
    return backend._listening.usable() is not None


@pytest.fixture
async def backend(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend.from_url(postgres_url)
    await backend.connect()
    yield backend
    await backend.close()


class TestNewestText:
    """PostgresBackend.newest_text: the newest document as its commit stored it."""

    async def test_newest_text_is_the_text_the_notice_carried(self, backend: PostgresBackend) -> None:
        """The stored text of the newest version is, byte for byte, the document its notice carried."""
        assert await backend.newest_text() is None
        await backend.commit(*_version(1))
        notices = backend.notifications()
        assert 0 == await asyncio.wait_for(anext(notices), 10)
        document, entry = _version(2, "DEFENSIVE")
        await backend.commit(document, entry)
        hint = await asyncio.wait_for(anext(notices), 10)
        assert isinstance(hint, Published)
        assert isinstance(hint.document, bytes)
        assert hint.document == await backend.newest_text()
        assert document == json.loads(await backend.newest_text() or b"null")

    async def test_newest_text_unreachable_server_unavailable(self) -> None:
        """A read from a server that cannot be reached raises StoreUnavailableError within the timeout."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again below: nothing listens there
        backend = PostgresBackend.from_url(f"postgresql://u:pw@127.0.0.1:{port}/db?namespace=down&timeout=0.5")
        try:
            with pytest.raises(StoreUnavailableError):
                await asyncio.wait_for(backend.newest_text(), 5)
        finally:
            await backend.close()

    async def test_newest_text_same_on_listening_and_pooled_connections(
        self, backend: PostgresBackend, postgres_url: str
    ) -> None:
        """A back end that listens reads the text on its listening connection, one that does not on its pool:
        both read the same bytes."""
        await backend.commit(*_version(1))
        notices = backend.notifications()
        assert 0 == await asyncio.wait_for(anext(notices), 10)
        other = PostgresBackend.from_url(postgres_url)
        try:
            await other.connect()
            expected = document_text(_version(1)[0]).encode()
            assert expected == await backend.newest_text() == await other.newest_text()
        finally:
            await other.close()


class TestSignedForgery:
    """A notice signed with the namespace's key by someone who can read it, but not write."""

    async def test_signed_loosening_notice_not_installed(
        self, postgres_url: str, postgres_server: PostgresServer
    ) -> None:
        """A loosening notice signed with the real key is not installed: the store does not hold its document."""
        writer = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        follower = await PolicyStore.open(postgres_url, refresh_interval=3600, lkg_path=None)
        held: list[tuple[int, str]] = []
        copy = follower._copy
        set_state = copy._set_state

        def recording(state: Any) -> None:
            held.append((state.policy.version, state.policy.reason))
            set_state(state)

        copy._set_state = recording
        try:
            await writer.switch_mode("DEFENSIVE", reason="real 2")
            await eventually(lambda: follower.snapshot().reason == "real 2", "version 2 reached")
            backend = writer.backend
            assert isinstance(backend, PostgresBackend)
            ((key,),) = postgres_server.execute(
                "SELECT notice_key FROM policystore_head WHERE namespace = %s", (backend.namespace,)
            )
            forged = writer.snapshot().document() | {"version": 3, "reason": "forged", "updated_by": "intruder"}
            forged["modes"]["DEFENSIVE"] = forged["modes"]["DEFENSIVE"] | {"max_leverage": 9.0}
            entry = HistoryEntry(3, datetime.now(UTC), "intruder", "forged", ())
            content = f'{{"version": 3, "entry": {json.dumps(entry.to_dict())}}}\n{document_text(forged)}'
            notice = f"sig:{sign(key, content)}\n{content}"
            postgres_server.execute("SELECT pg_notify(%s, %s)", (backend.channel, notice))
            await writer.update({"modes.NORMAL.max_positions": 20}, reason="real 3")
            # Notices arrive in order: once the real version 3 is held, the forged one was handled.
            await eventually(lambda: follower.snapshot().reason == "real 3", "the real version 3 reached")
            assert [] == [state for state in held if state[1] == "forged"]
            assert 3.0 == follower.get("risk.max_leverage")
        finally:
            await follower.close()
            await writer.close()

    async def test_loosening_notice_of_stored_version_installed_after_one_read(self, postgres_url: str) -> None:
        """A tightening version is installed from its notice at once; a loosening one after one read of its text."""
        writer = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        follower = await PolicyStore.open(postgres_url, refresh_interval=3600, lkg_path=None)
        reads: list[str] = []
        backend = follower.backend
        assert isinstance(backend, PostgresBackend)
        load, newest_text = backend.load, backend.newest_text

        async def counted_load(version: int | None = None) -> dict[str, Any] | None:
            reads.append("load")
            return await load(version)

        def counted_text() -> asyncio.Future[bytes | None]:
            reads.append("text")
            return newest_text()

        backend.load = counted_load  # type: ignore[method-assign]
        backend.newest_text = counted_text  # type: ignore[method-assign]
        try:
            await eventually(lambda: _listening(backend), "the follower listening")
            await writer.switch_mode("DEFENSIVE", reason="tighten")
            await eventually(lambda: follower.snapshot().reason == "tighten", "the tightening reached")
            reads.clear()  # the reads of the follower's start are done: notices are handled in order
            await writer.switch_mode("NORMAL", reason="loosen")
            await eventually(lambda: follower.snapshot().reason == "loosen", "the loosening reached")
            assert ["text"] == reads
            assert 5.0 == follower.get("risk.max_leverage")
        finally:
            await follower.close()
            await writer.close()


class TestOvertakenNotice:
    """A loosening notice whose confirming read finds a later version already written."""

    async def test_version_text_is_each_versions_stored_text(self, backend: PostgresBackend) -> None:
        """Every version's stored text is read back by number, listening or not; a missing one is None."""
        await backend.commit(*_version(1))
        await backend.commit(*_version(2, "DEFENSIVE"))
        first = document_text(_version(1)[0]).encode()
        assert first == await backend.version_text(1)
        assert await backend.version_text(3) is None
        notices = backend.notifications()
        assert 0 == await asyncio.wait_for(anext(notices), 10)
        assert first == await backend.version_text(1)
        assert document_text(_version(2, "DEFENSIVE")[0]).encode() == await backend.version_text(2)
        assert await backend.version_text(3) is None

    async def test_overtaken_loosening_installed_from_its_own_stored_version(
        self, postgres_url: str, postgres_server: PostgresServer
    ) -> None:
        """Two versions committed back to back: the first, which loosens, is confirmed by its own stored text
        (the newest is already the second) and both are installed from their notices, nothing read back."""
        writer = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        follower = await PolicyStore.open(postgres_url, refresh_interval=3600, lkg_path=None)
        backend = follower.backend
        assert isinstance(backend, PostgresBackend)
        reads: list[str] = []
        load, newest_text, version_text = backend.load, backend.newest_text, backend.version_text

        async def counted_load(version: int | None = None) -> dict[str, Any] | None:
            reads.append("load")
            return await load(version)

        def counted_newest() -> asyncio.Future[bytes | None]:
            reads.append("newest")
            return newest_text()

        def counted_version(version: int) -> asyncio.Future[bytes | None]:
            reads.append(f"version {version}")
            return version_text(version)

        backend.load = counted_load  # type: ignore[method-assign]
        backend.newest_text = counted_newest  # type: ignore[method-assign]
        backend.version_text = counted_version  # type: ignore[method-assign]
        try:
            await eventually(lambda: _listening(backend), "the follower listening")
            await writer.switch_mode("DEFENSIVE", reason="tighten")
            await eventually(lambda: follower.snapshot().reason == "tighten", "version 2 reached")
            reads.clear()
            ((key,),) = postgres_server.execute(
                "SELECT notice_key FROM policystore_head WHERE namespace = %s", (backend.namespace,)
            )
            held = follower.snapshot().document()
            for version, mode in ((3, "NORMAL"), (4, "DEFENSIVE")):
                at = datetime.now(UTC)
                document = held | {"version": version, "active_mode": mode, "reason": f"r{version}"}
                document["updated_at"] = at.isoformat()
                change = FieldChange("active_mode", held["active_mode"], mode)
                entry = HistoryEntry(version, at, "tester", f"r{version}", (change,))
                call = CommitCall.build(backend.namespace, document, entry, key)
                # Both committed before the follower's loop runs again (this call blocks it).
                postgres_server.execute(call.statement, call.params)  # type: ignore[arg-type]
                held = document
            await eventually(lambda: follower.snapshot().reason == "r4", "version 4 reached")
            assert ["newest", "version 3"] == reads
        finally:
            await follower.close()
            await writer.close()

    async def test_forged_overtaken_loosening_not_installed(
        self, postgres_url: str, postgres_server: PostgresServer
    ) -> None:
        """A signed loosening notice for a version the store holds otherwise, already overtaken, is not installed."""
        writer = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        follower = await PolicyStore.open(postgres_url, refresh_interval=3600, lkg_path=None)
        backend = follower.backend
        assert isinstance(backend, PostgresBackend)
        held: list[str] = []
        copy = follower._copy
        set_state = copy._set_state

        def recording(state: Any) -> None:
            held.append(state.policy.reason)
            set_state(state)

        copy._set_state = recording
        try:
            await eventually(lambda: _listening(backend), "the follower listening")
            await writer.switch_mode("DEFENSIVE", reason="tighten")
            await eventually(lambda: follower.snapshot().reason == "tighten", "version 2 reached")
            ((key,),) = postgres_server.execute(
                "SELECT notice_key FROM policystore_head WHERE namespace = %s", (backend.namespace,)
            )
            base = follower.snapshot().document()
            forged = base | {"version": 3, "reason": "forged", "updated_by": "intruder"}
            forged["modes"] = base["modes"] | {"DEFENSIVE": base["modes"]["DEFENSIVE"] | {"max_leverage": 9.0}}
            entry = HistoryEntry(3, datetime.now(UTC), "intruder", "forged", ())
            content = f'{{"version": 3, "entry": {json.dumps(entry.to_dict())}}}\n{document_text(forged)}'
            # The forged notice, then two real versions, all before the follower's loop runs again.
            postgres_server.execute(
                "SELECT pg_notify(%s, %s)", (backend.channel, f"sig:{sign(key, content)}\n{content}")
            )
            for version in (3, 4):
                at = datetime.now(UTC)
                document = base | {"version": version, "reason": f"r{version}", "updated_at": at.isoformat()}
                call = CommitCall.build(
                    backend.namespace, document, HistoryEntry(version, at, "tester", f"r{version}", ()), key
                )
                postgres_server.execute(call.statement, call.params)  # type: ignore[arg-type]
                base = document
            await eventually(lambda: follower.snapshot().reason == "r4", "version 4 reached")
            assert "forged" not in held
            assert 3.0 == follower.get("risk.max_leverage")
        finally:
            await follower.close()
            await writer.close()
