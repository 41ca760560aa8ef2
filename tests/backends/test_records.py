"""Records beside the policy (``backend.records``): the same promises on every back end, real servers included."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio

from policystore import PolicyValidationError
from policystore.backends.base import Backend, RecordStore
from policystore.backends.postgres import PostgresBackend
from policystore.backends.redis import RedisBackend
from policystore.backends.sqlite import SQLiteBackend
from policystore.server.tokens import TokenStore, hash_token
from policystore.store.urls import backend_for_url
from support.postgres_server import PostgresServer
from support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)

#: A token record as the store kept it before records existed: JSON text with spaces, keys unsorted.
OLD_TOKEN = json.dumps({"role": "admin", "created_at": "2026-01-02T03:04:05+00:00", "sha256": hash_token("ps_old")})


@pytest.fixture
async def backend(store_url: str) -> AsyncIterator[Backend]:
    """A connected back end of each kind in turn, on a fresh store."""
    made = backend_for_url(store_url)
    await made.connect()
    yield made
    await made.close()


async def _write_raw(backend: Backend, request: pytest.FixtureRequest, collection: str, key: str, text: str) -> None:
    """Store ``text`` under ``key`` the way the back end's layout keeps it, bypassing the records."""
    if isinstance(backend, SQLiteBackend):
        with sqlite3.connect(backend.path) as conn:
            conn.execute("INSERT INTO aux (tbl, key, value) VALUES (?, ?, ?)", (collection, key, text))
        conn.close()
    elif isinstance(backend, RedisBackend):
        server: RedisServer = request.getfixturevalue("redis_server")
        client = redis.asyncio.Redis(port=server.port)
        try:
            await client.hset(backend.keys.aux(collection), key, text)
        finally:
            await client.aclose()
    else:
        assert isinstance(backend, PostgresBackend)
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        postgres.execute(
            "INSERT INTO policystore_aux (namespace, tbl, key, value) VALUES (%s, %s, %s, %s)",
            (backend.namespace, collection, key, text),
        )


class TestRecords:
    """put, get, all, add, delete: one atomic step each, on every back end."""

    async def test_every_back_end_offers_records(self, backend: Backend) -> None:
        """The records are part of the back-end protocol, and every back end of ours has them."""
        assert isinstance(backend, Backend)
        assert isinstance(backend.records, RecordStore)

    async def test_put_get_all_delete_round_trip(self, backend: Backend) -> None:
        """A record put is read back equal, alone or with its collection; deleted, it is gone."""
        records = backend.records
        await records.put("proposals", "p1", {"changes": {"risk.max_leverage": 3.0}, "approved_by": ["ada"]})
        await records.put("proposals", "p2", {"status": "pending", "note": "zoë ✓"})
        await records.put("proposals", "p1", {"status": "applied"})

        assert {"status": "applied"} == await records.get("proposals", "p1")
        assert {"p1": {"status": "applied"}, "p2": {"status": "pending", "note": "zoë ✓"}} == await records.all(
            "proposals"
        )
        assert (True, False) == (await records.delete("proposals", "p1"), await records.delete("proposals", "p1"))
        assert (None, ["p2"]) == (await records.get("proposals", "p1"), list(await records.all("proposals")))

    async def test_add_stores_only_where_no_record_is(self, backend: Backend) -> None:
        """add is put-if-absent: the first add wins, a later one changes nothing and says so."""
        records = backend.records
        first = await records.add("approvals", "p1/ada", {"at": 1})
        second = await records.add("approvals", "p1/ada", {"at": 2})

        assert (True, False) == (first, second)
        assert {"at": 1} == await records.get("approvals", "p1/ada")

    async def test_concurrent_adds_of_one_key_exactly_one_wins(self, backend: Backend) -> None:
        """Eight adds of one key at once: one stores, seven are told the key is taken."""
        results = await asyncio.gather(*(backend.records.add("fleet", "m1", {"n": n}) for n in range(8)))

        assert 1 == sum(results)
        stored = await backend.records.get("fleet", "m1")
        assert stored is not None
        assert results.index(True) == stored["n"]

    async def test_collections_are_apart(self, backend: Backend) -> None:
        """One key in two collections is two records; an empty collection reads as empty."""
        await backend.records.put("tokens", "k", {"of": "tokens"})
        await backend.records.put("fleet", "k", {"of": "fleet"})

        assert {"k": {"of": "tokens"}} == await backend.records.all("tokens")
        assert {"k": {"of": "fleet"}} == await backend.records.all("fleet")
        assert {} == await backend.records.all("proposals")

    async def test_records_are_no_part_of_the_policy(self, backend: Backend) -> None:
        """Writing records makes no version."""
        await backend.records.put("tokens", "k", {"a": 1})

        assert 0 == await backend.current_version()

    @pytest.mark.parametrize(
        "record",
        [["a list"], "text", {"when": datetime(2026, 1, 1, tzinfo=UTC)}, {"x": math.nan}],
        ids=["list", "string", "datetime", "nan"],
    )
    async def test_record_json_cannot_carry_refused_and_nothing_written(self, backend: Backend, record: Any) -> None:
        """What is no JSON object, or holds what JSON cannot carry, is refused naming 'record'; nothing is written."""
        with pytest.raises(PolicyValidationError) as caught:
            await backend.records.put("c", "k", record)

        assert ("record",) == caught.value.paths
        assert {} == await backend.records.all("c")

    @pytest.mark.parametrize(
        ("collection", "key", "field"),
        [
            ("", "k", "collection"),
            ("a b", "k", "collection"),
            ("x" * 65, "k", "collection"),
            ("c", "", "key"),
            ("c", "line\nbreak", "key"),
            ("c", "nul\x00", "key"),
            ("c", "x" * 257, "key"),
        ],
        ids=["empty-collection", "space", "long-collection", "empty-key", "newline", "nul", "long-key"],
    )
    async def test_bad_names_refused_naming_the_field(
        self, backend: Backend, collection: str, key: str, field: str
    ) -> None:
        """A collection or key no back end can keep is refused before anything is sent."""
        for call in (
            backend.records.put(collection, key, {}),
            backend.records.add(collection, key, {}),
            backend.records.get(collection, key),
            backend.records.delete(collection, key),
        ):
            with pytest.raises(PolicyValidationError) as caught:
                await call
            assert (field,) == caught.value.paths

    async def test_a_second_back_end_on_the_same_store_reads_them(self, store_url: str, backend: Backend) -> None:
        """Records live in the store, not the process's object: another back end at the URL sees them."""
        await backend.records.put("tokens", "k", {"a": 1})
        other = backend_for_url(store_url)
        await other.connect()
        try:
            assert {"a": 1} == await other.records.get("tokens", "k")
        finally:
            await other.close()


class TestStoredBeforeRecords:
    """Token data written before records existed keeps being read, from the same tables and keys."""

    @pytest.fixture
    def persistent(self, backend: Backend) -> Backend:
        """Only back ends whose data outlives the process have data written before."""
        if backend.url.startswith("memory://"):
            pytest.skip("a memory store holds nothing written by an earlier version")
        return backend

    async def test_old_token_row_read_and_authenticates(
        self, persistent: Backend, request: pytest.FixtureRequest
    ) -> None:
        """A token stored as the older code stored it (JSON text in the aux layout) still signs in."""
        await _write_raw(persistent, request, "tokens", "ada", OLD_TOKEN)

        found = await TokenStore(persistent).authenticate("ps_old")

        assert json.loads(OLD_TOKEN) == await persistent.records.get("tokens", "ada")
        assert found is not None
        assert ("ada", "admin") == (found.name, found.role.value)

    @pytest.mark.parametrize("text", ["not json", "[1, 2]", '"text"'], ids=["not-json", "list", "string"])
    async def test_value_that_is_no_json_object_reads_as_absent(
        self, persistent: Backend, request: pytest.FixtureRequest, text: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A damaged value grants nothing: absent from all() and get(), logged, and the others still read."""
        await _write_raw(persistent, request, "tokens", "ada", OLD_TOKEN)
        await _write_raw(persistent, request, "tokens", "broken", text)

        assert ["ada"] == list(await persistent.records.all("tokens"))
        assert await persistent.records.get("tokens", "broken") is None
        assert "is not a JSON object" in caplog.text
        assert (False, True) == (
            await persistent.records.add("tokens", "broken", {}),
            await persistent.records.delete("tokens", "broken"),
        )


class TestTokensThroughRecords:
    """The server's tokens reach storage through the records on every back end."""

    async def test_two_creations_of_one_name_at_once_one_refused(self, backend: Backend) -> None:
        """Creating one name twice at once stores one token; the other creation is refused naming the name."""
        tokens = TokenStore(backend)
        results = await asyncio.gather(
            tokens.create("ada", "admin"), tokens.create("ada", "viewer"), return_exceptions=True
        )

        secrets = [r for r in results if isinstance(r, str)]
        refused = [r for r in results if isinstance(r, PolicyValidationError)]
        assert (1, 1) == (len(secrets), len(refused))
        assert ("name",) == refused[0].paths
        assert await tokens.authenticate(secrets[0]) is not None

    async def test_revoke_of_a_name_no_token_may_have_is_refused_naming_it(self, backend: Backend) -> None:
        """A name that breaks the naming rule names no token: refused as unknown, naming the field 'name'."""
        with pytest.raises(PolicyValidationError) as caught:
            await TokenStore(backend).revoke("two\nlines")

        assert ("name",) == caught.value.paths
