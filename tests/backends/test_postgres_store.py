"""PolicyStore on PostgreSQL: outages, kill -9, lost notices, large notices, namespaces, following by notice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from policystore.backends._postgres_layout import sign
from policystore.backends.postgres import PostgresBackend
from policystore.errors import StoreUnavailableError
from policystore.model.document_text import document_text
from policystore.model.history import FieldChange, HistoryEntry
from policystore.store.sources import Source
from policystore.store.store import PolicyStore
from support.postgres_server import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


async def eventually(condition: Callable[[], bool], what: str, deadline: float = 15.0) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            pytest.fail(f"{what} did not happen within {deadline} s")
        await asyncio.sleep(0.01)


def _backend(store: PolicyStore) -> PostgresBackend:
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    return backend


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PolicyStore]:
    store = await PolicyStore.open(postgres_url, refresh_interval=3600)
    yield store
    await store.close()


def _write_without_notice(server: PostgresServer, backend: PostgresBackend, mode: str) -> int:
    """Commit the next version through the tables but notify nobody, as if the notice were lost."""
    ((version, document),) = server.execute(
        "SELECT h.version, v.document FROM policystore_head h JOIN policystore_versions v "
        "ON v.namespace = h.namespace AND v.version = h.version WHERE h.namespace = %s",
        (backend.namespace,),
    )
    version += 1
    entry = HistoryEntry(
        version,
        datetime.now(UTC),
        "direct",
        "notice lost",
        (FieldChange("active_mode", document["active_mode"], mode),),
    )
    document |= {"version": version, "active_mode": mode}
    server.execute(
        "WITH moved AS (UPDATE policystore_head SET version = %s WHERE namespace = %s RETURNING version) "
        "INSERT INTO policystore_versions (namespace, version, document, entry, write_id) "
        "SELECT %s, version, %s::json, %s::json, 'direct' FROM moved",
        (version, backend.namespace, backend.namespace, json.dumps(document), json.dumps(entry.to_dict())),
    )
    return version


def _listening(backend: PostgresBackend) -> bool:
    """Whether ``backend`` listens: its listening connection has run LISTEN and takes statements.

    (The connection's last statement may be a fleet report or a confirm read, so the server's
    view of it does not say.)
    """
    return backend._listening.usable() is not None


class TestLostNotice:
    """A version whose notice never arrived is still found."""

    async def test_unannounced_version_found_by_refresh(
        self, store: PolicyStore, postgres_server: PostgresServer
    ) -> None:
        """refresh() compares versions and installs the unannounced one."""
        version = _write_without_notice(postgres_server, _backend(store), "DEFENSIVE")
        await store.refresh()
        assert (version, "DEFENSIVE") == (store.snapshot().version, store.get("active_mode"))

    async def test_unannounced_version_found_by_safety_net(
        self, postgres_url: str, postgres_server: PostgresServer
    ) -> None:
        """The periodic version check installs it and replays its events."""
        store = await PolicyStore.open(postgres_url, refresh_interval=0.2)
        events = store.watch()
        try:
            version = _write_without_notice(postgres_server, _backend(store), "DEFENSIVE")
            event = await asyncio.wait_for(anext(events), timeout=15)
            assert (version, "notice lost") == (event.version, event.reason)
            assert "DEFENSIVE" == store.get("active_mode")
        finally:
            await store.close()


class TestOutage:
    """The server down, then back."""

    async def test_down_reads_stale_writes_fail_then_converge(
        self, store: PolicyStore, postgres_url: str, postgres_server: PostgresServer
    ) -> None:
        """Reads answer from the last-known-good copy, writes fail, and the store catches up on return."""
        await store.switch_mode("DEFENSIVE", reason="before the outage")
        postgres_server.stop()

        with pytest.raises(StoreUnavailableError):
            await store.refresh()
        stale = store.explain("active_mode")
        assert (Source.LAST_KNOWN_GOOD, True, "DEFENSIVE", 2) == (stale.source, stale.stale, stale.value, stale.version)
        with pytest.raises(StoreUnavailableError) as caught:
            await store.switch_mode("NORMAL", reason="during the outage")
        assert "may or may not" not in str(caught.value)  # no connection, so nothing was sent
        assert await store.can_open_new_trades()

        postgres_server.start()
        other = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        await other.set_emergency_mode(True, reason="written elsewhere after the restart")
        await other.close()
        await eventually(lambda: store.snapshot().version == 3 and not store.stale, "reconverging to version 3")
        live = store.explain("emergency.active")
        assert (Source.STORE, False, True) == (live.source, live.stale, live.value)
        assert not await store.can_open_new_trades()

    async def test_kill9_after_acknowledged_writes_loses_nothing(
        self, store: PolicyStore, postgres_url: str, postgres_server: PostgresServer
    ) -> None:
        """Every acknowledged write survives kill -9 of the server (synchronous_commit=on), and writing resumes."""
        modes = ["DEFENSIVE", "NORMAL"] * 10
        for number, mode in enumerate(modes):
            await store.switch_mode(mode, reason=f"write {number}")
        expected = store.snapshot().document()
        postgres_server.kill9()
        postgres_server.start()

        reopened = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        try:
            assert expected == reopened.snapshot().document()
            history = await reopened.history(limit=100)
            assert list(range(21, 0, -1)) == [e.version for e in history]
            assert [f"write {n}" for n in range(20)] == [e.reason for e in reversed(history[:-1])]
            await reopened.switch_mode("DEFENSIVE", reason="after the restart")
            assert 22 == reopened.snapshot().version
        finally:
            await reopened.close()
        # The store that was open throughout reconnects by itself and writes again.
        await eventually(lambda: store.snapshot().version == 22, "the open store following the restarted server")
        await store.switch_mode("NORMAL", reason="from the store open throughout")
        assert 23 == store.snapshot().version


class TestLargeNotice:
    """A version too large for NOTIFY's 8,000 bytes."""

    async def test_policy_with_many_modes_reaches_follower(self, postgres_url: str) -> None:
        """A policy with many modes is announced by number, read back by the follower, and equal to the writer's."""
        writer = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        follower = await PolicyStore.open(postgres_url, refresh_interval=3600, lkg_path=None)
        heard: list[int] = []
        follower.subscribe(lambda event: heard.append(event.version))
        try:
            document = writer.snapshot().document()
            normal = document["modes"]["NORMAL"]
            document["modes"] |= {f"DESK_{n}": normal | {"max_positions": n + 1} for n in range(40)}
            big = await writer.replace_policy(document, reason="forty desks")
            assert len(json.dumps(big.document())) > 8000
            await eventually(lambda: follower.snapshot().version == big.version, "the large version reached")
            assert big.document() == follower.snapshot().document()
            assert 17 == follower.get("modes.DESK_16.max_positions")
            # The next, small again, comes with its notice's document.
            await writer.switch_mode("DESK_3", reason="small again")
            await eventually(lambda: follower.get("active_mode") == "DESK_3", "the next version reached")
            assert [2, 3] == sorted(set(heard))
        finally:
            await follower.close()
            await writer.close()


class TestNamespaces:
    """Several policies in one database."""

    async def test_two_namespaces_isolated(self, postgres_server: PostgresServer) -> None:
        """Writes, history and notices of one namespace never reach the other."""
        one = await PolicyStore.open(postgres_server.url(namespace="acct1-iso"), refresh_interval=3600)
        two = await PolicyStore.open(postgres_server.url(namespace="acct2-iso"), refresh_interval=3600)
        try:
            for number in range(4):
                await two.update({"strategies.moderate.cooldown_seconds": 10 + number}, reason="ahead")
            notices = _backend(two).notifications()
            assert 0 == await asyncio.wait_for(anext(notices), timeout=10)
            await one.switch_mode("DEFENSIVE", reason="only acct1")
            await two.update({"strategies.moderate.cooldown_seconds": 99}, reason="acct2 again")
            hint = await asyncio.wait_for(anext(notices), timeout=10)
            assert 6 == (hint if isinstance(hint, int) else hint.version)
            assert (2, "DEFENSIVE") == (one.snapshot().version, one.get("active_mode"))
            assert (6, "NORMAL") == (two.snapshot().version, two.get("active_mode"))
            assert [2, 1] == [e.version for e in await one.history()]
            await notices.aclose()
        finally:
            for store in (one, two):
                await store.close()
            for namespace in ("acct1-iso", "acct2-iso"):
                for table in ("policystore_versions", "policystore_head", "policystore_aux"):
                    postgres_server.execute(f"DELETE FROM {table} WHERE namespace = %s", (namespace,))  # noqa: S608 - our names


class TestFollowingByNotice:
    """A follower installs each version from its notice, whatever part of the policy it changes."""

    async def test_mixed_changes_follower_matches_writer_with_events(self, postgres_url: str) -> None:
        """Mode switches (compared line by line) and other changes (validated in full) alternate; nothing drifts."""
        writer = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        follower = await PolicyStore.open(postgres_url, refresh_interval=3600, lkg_path=None)
        heard: list[tuple[int, str]] = []
        installed_from_notice: list[int] = []
        notices = follower._follower.notices
        install = notices.install

        async def counting(published: Any) -> bool:
            done = await install(published)
            if done:
                installed_from_notice.append(published.version)
            return done

        notices.install = counting  # type: ignore[method-assign]
        await eventually(lambda: _listening(_backend(follower)), "the follower listening")
        try:
            writes: list[Callable[[], Any]] = [
                lambda: writer.switch_mode("DEFENSIVE", reason="calm"),
                lambda: writer.update({"modes.NORMAL.max_leverage": 2.5}, reason="tighten"),
                lambda: writer.switch_mode("NORMAL", reason="back"),
                lambda: writer.set_emergency_mode(True, reason="halt"),
                lambda: writer.switch_mode("AGGRESSIVE_SMALL_ACCOUNT", reason="try"),
            ]
            for n, write in enumerate(writes):
                if n == 2:  # a subscriber from here on: events carry the published entries
                    follower.subscribe(lambda event: heard.append((event.version, event.reason)))
                await write()
                version = writer.snapshot().version
                await eventually(lambda v=version: follower.snapshot().version == v, f"version {version} reached")
                assert writer.snapshot().document() == follower.snapshot().document()
                assert writer.get("risk.max_leverage") == follower.get("risk.max_leverage")
            assert [(4, "back"), (5, "halt"), (6, "try")] == list(dict.fromkeys(heard))
            # Every version came with its notice and was installed from it, without a read back.
            assert [2, 3, 4, 5, 6] == installed_from_notice
        finally:
            await follower.close()
            await writer.close()


class TestForgedNotice:
    """Any role that may connect to the database may NOTIFY on the namespace's channel."""

    async def test_forged_notice_never_installed(self, postgres_url: str, postgres_server: PostgresServer) -> None:
        """A well-formed notice of looser limits, unsigned or signed without the key, is never installed."""
        writer = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        follower = await PolicyStore.open(postgres_url, refresh_interval=3600, lkg_path=None)
        held: list[tuple[int, str]] = []
        # The follower's parts replace its read state through this one hook.
        copy = follower._copy
        set_state = copy._set_state

        def recording(state: Any) -> None:
            held.append((state.policy.version, state.policy.reason))
            set_state(state)

        copy._set_state = recording
        try:
            await writer.switch_mode("DEFENSIVE", reason="real 2")
            await eventually(lambda: follower.snapshot().version == 2, "version 2 reached")
            await eventually(lambda: _listening(_backend(follower)), "the follower listening")
            forged = writer.snapshot().document() | {"version": 3, "reason": "forged", "updated_by": "intruder"}
            forged["modes"]["DEFENSIVE"] = forged["modes"]["DEFENSIVE"] | {"max_leverage": 9.0}
            entry = HistoryEntry(3, datetime.now(UTC), "intruder", "forged", ())
            content = f'{{"version": 3, "entry": {json.dumps(entry.to_dict())}}}\n{document_text(forged)}'
            channel = _backend(follower).channel
            for payload in (content, f"sig:{sign('guessed', content)}\n{content}", f"sig:{'0' * 64}\n{content}"):
                postgres_server.execute("SELECT pg_notify(%s, %s)", (channel, payload))
            await writer.update({"modes.NORMAL.max_positions": 20}, reason="real 3")
            # Notices arrive in order: once the real version 3 is held, every forged one was handled.
            await eventually(lambda: follower.snapshot().reason == "real 3", "the real version 3 reached")
            assert [] == [state for state in held if state[1] == "forged"]
            assert (3.0, False) == (follower.get("risk.max_leverage"), follower.get("emergency.active"))
        finally:
            await follower.close()
            await writer.close()
