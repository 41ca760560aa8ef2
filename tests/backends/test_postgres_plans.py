"""The reads of the newest version stay one-row lookups however the server plans them.

A statement prepared on a long-lived connection keeps a generic plan, made once
from the statistics of the moment (often a namespace with a few versions). A plan
that finds the newest row by a join filter reads every version of the namespace on
each call, and a namespace gains a version with every write: each confirming read of
a loosening notice would cost more as the store ages. With the plan forced generic,
the row must still be found by both key columns.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import psycopg
import pytest

from policystore.backends._postgres_layout import NEWEST_TEXT, VERSION_TEXT
from policystore.backends.postgres import _NEWEST
from policystore.store.store import PolicyStore
from support.postgres_server import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _generic_plan(conn: psycopg.Connection[Any], query: str, params: tuple[object, ...]) -> dict[str, Any]:
    """The plan of ``query`` as a prepared statement's cached generic plan, with its run's counts."""
    count = iter(range(1, query.count("%s") + 1))
    numbered = re.sub("%s", lambda _: f"${next(count)}", query)
    conn.execute("DEALLOCATE ALL")
    conn.execute(f"PREPARE probe AS {numbered}")
    arguments = ", ".join(psycopg.sql.quote(p, conn) if isinstance(p, str) else str(p) for p in params)
    (row,) = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE probe({arguments})").fetchall()
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


@pytest.mark.parametrize(
    ("query", "takes_version"),
    [(NEWEST_TEXT, False), (_NEWEST, False), (VERSION_TEXT, True)],
    ids=["newest text", "newest document", "version text"],
)
async def test_a_version_is_read_by_both_key_columns_even_by_a_generic_plan(
    postgres_server: PostgresServer, query: str, *, takes_version: bool
) -> None:
    """Planned before the namespace grew, then run on 60 versions: one row read, found by namespace and version."""
    namespace = f"plan{uuid.uuid4().hex[:8]}"
    store = await PolicyStore.open(postgres_server.url(namespace=namespace), watch=False, lkg_path=None)
    try:
        for n in range(60):
            await store.update({"strategies.moderate.cooldown_seconds": n}, reason="growing history")
        with psycopg.connect(postgres_server.conninfo(), autocommit=True) as conn:
            conn.execute("SET plan_cache_mode = force_generic_plan")
            params: tuple[object, ...] = (namespace, 30) if takes_version else (namespace,) * query.count("%s")
            plan = _generic_plan(conn, query, params)
    finally:
        await store.close()

    scans = [node for node in _nodes(plan) if node.get("Relation Name") == "policystore_versions"]
    assert scans, plan
    for scan in scans:
        assert scan["Node Type"] in {"Index Scan", "Index Only Scan"}, scan
        assert "version" in scan.get("Index Cond", ""), scan
        assert scan["Actual Rows"] <= 1, scan
    assert not any("Join Filter" in node for node in _nodes(plan)), plan
