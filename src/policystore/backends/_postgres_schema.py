"""The tables a PostgreSQL store keeps, and the check that a database holds them as expected.

Every namespace shares one set of tables, the namespace being the first column
of each table's primary key, rather than a schema of its own per namespace: a
new namespace is then a row, not DDL (a role that may write but not create
tables can open one), one schema version covers every namespace in a database,
and the statements stay the same text for every namespace, so each connection
prepares them once.

Tables (in the connection's current schema, ``public`` unless the URL sets a
``search_path``):

``policystore_schema``
    one row: the version of this layout (:data:`SCHEMA_VERSION`).
``policystore_head``
    per namespace, the newest version; a commit moves it with compare-and-set
    (``UPDATE ... WHERE version = N - 1``). Also the namespace's notice key,
    random, made with the row, that signs its notices (see
    :mod:`._postgres_layout`).
``policystore_versions``
    per namespace and version, the document, its history entry and the write id
    of the commit that stored it (see :mod:`._postgres_layout`).
``policystore_aux``
    the records beside the policy (see :mod:`._postgres_records`): per
    namespace, collection (``tbl``) and key, the record's JSON text, with the
    server's time of each write: API tokens today; proposals (a key per
    proposal) and fleet records fit as they are. A fleet heartbeat is one upsert,
    ``INSERT INTO policystore_aux (namespace, tbl, key, value) VALUES (ns, 'fleet',
    member_id, record) ON CONFLICT (namespace, tbl, key) DO UPDATE SET value =
    EXCLUDED.value, updated_at = now()``, and a member is lost when
    ``now() - updated_at`` passes 5 s, measured by the server's clock alone, so
    the hosts' clocks need not agree.

The tables are created on first open, in one transaction under an advisory
lock, so processes that open a new database at once create them once. A
database that holds a newer layout, or tables of these names with other
columns, is refused and never altered.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg import AsyncConnection

__all__ = [
    "CREATE_STATEMENTS",
    "EXPECTED_COLUMNS",
    "FIND_COLUMNS",
    "LOCK_KEY",
    "SCHEMA_VERSION",
    "NoTablesError",
    "ensure_schema",
    "schema_problem",
]

log = logging.getLogger("policystore.postgres")

SCHEMA_VERSION: Final = 1
#: The advisory lock taken while the tables are checked or created ("policyst" in ASCII).
LOCK_KEY: Final = 0x706F6C6963797374

#: Each table's columns and their types, as ``format_type`` names them.
EXPECTED_COLUMNS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "policystore_schema": (("singleton", "boolean"), ("version", "integer")),
    "policystore_head": (
        ("namespace", "text"),
        ("version", "bigint"),
        ("updated_at", "timestamp with time zone"),
        ("notice_key", "text"),
    ),
    "policystore_versions": (
        ("namespace", "text"),
        ("version", "bigint"),
        ("document", "json"),
        ("entry", "json"),
        ("write_id", "text"),
        ("written_at", "timestamp with time zone"),
    ),
    "policystore_aux": (
        ("namespace", "text"),
        ("tbl", "text"),
        ("key", "text"),
        ("value", "text"),
        ("updated_at", "timestamp with time zone"),
    ),
}

CREATE_STATEMENTS: Final = (
    """CREATE TABLE policystore_schema (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version   integer NOT NULL
    )""",
    "INSERT INTO policystore_schema (version) VALUES (1)",  # SCHEMA_VERSION
    """CREATE TABLE policystore_head (
        namespace  text PRIMARY KEY,
        version    bigint NOT NULL CHECK (version > 0),
        updated_at timestamptz NOT NULL DEFAULT now(),
        notice_key text NOT NULL DEFAULT gen_random_uuid()::text || gen_random_uuid()::text
    )""",
    """CREATE TABLE policystore_versions (
        namespace  text NOT NULL,
        version    bigint NOT NULL CHECK (version > 0),
        document   json NOT NULL,
        entry      json NOT NULL,
        write_id   text NOT NULL,
        written_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (namespace, version)
    )""",
    """CREATE TABLE policystore_aux (
        namespace  text NOT NULL,
        tbl        text NOT NULL,
        key        text NOT NULL,
        value      text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (namespace, tbl, key)
    )""",
)

#: (table, kind, column, type) of every relation of the expected names in the current schema.
FIND_COLUMNS: Final = """
SELECT c.relname, c.relkind::text, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = current_schema() AND c.relname = ANY(%s)
ORDER BY c.relname, a.attnum
"""

_TABLE_KINDS: Final = frozenset({"r", "p"})


class NoTablesError(Exception):
    """The database holds none of policystore's tables, and they were not to be created."""


async def ensure_schema(conn: AsyncConnection[Any], *, create: bool = True) -> str | None:
    """Create the tables in a database that has none of them, or check the ones it has.

    Args:
        conn: a connection to the database.
        create: with False, create nothing.

    Returns:
        None when the tables are ready, else why the database is refused (nothing was changed).

    Raises:
        NoTablesError: ``create`` is False and the database has none of the tables.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        rows = await (await conn.execute(FIND_COLUMNS, (list(EXPECTED_COLUMNS),))).fetchall()
        if not rows and not create:
            raise NoTablesError
        if not rows:
            log.info("Creating the policystore tables (schema version %d)", SCHEMA_VERSION)
            for statement in CREATE_STATEMENTS:
                await conn.execute(statement)
            return None
        versions = None
        if any(row[0] == "policystore_schema" for row in rows):
            with contextlib.suppress(psycopg.errors.UndefinedColumn):
                async with conn.transaction():  # a savepoint: a foreign table may lack the column
                    found = await (await conn.execute("SELECT version FROM policystore_schema")).fetchall()
                    versions = [int(version) for (version,) in found]
        return schema_problem(rows, versions)


def schema_problem(
    rows: Sequence[tuple[str, str, str | None, str | None]], versions: Sequence[int] | None
) -> str | None:
    """Say why a database that holds tables of policystore's names cannot be used, or return None.

    Args:
        rows: what :data:`FIND_COLUMNS` returned (not empty: an empty database is simply set up).
        versions: the versions ``policystore_schema`` holds, or None when it could not be read.

    Returns:
        None when the tables are this version's, else the reason, as a clause for a one-sentence message.
    """
    # A newer version says more than its columns would: the version decides first.
    if versions is not None and (problem := _version_problem(versions)) is not None:
        return problem
    return _column_problem(rows) or (
        None
        if versions is not None
        else "policystore_schema holds no readable version, so the database was left unchanged"
    )


def _column_problem(rows: Sequence[tuple[str, str, str | None, str | None]]) -> str | None:
    """Say how the relations found differ from the expected tables, or return None when they match.

    Args:
        rows: what :data:`FIND_COLUMNS` returned; none at all means a new database.

    Returns:
        None when every table is there with exactly its columns (or none is), else
        the reason the database is refused, as a clause for a one-sentence message.
    """
    found: dict[str, list[tuple[str, str]]] = {}
    for table, kind, column, kind_of_column in rows:
        if kind not in _TABLE_KINDS:
            return f"{table} is not a table (its kind is {kind!r}), so the database was left unchanged"
        columns = found.setdefault(table, [])
        if column is not None and kind_of_column is not None:
            columns.append((column, kind_of_column))
    if not found:
        return None
    missing = [table for table in EXPECTED_COLUMNS if table not in found]
    if missing:
        held = ", ".join(sorted(found))
        return f"it holds {held} but not {', '.join(missing)}, so the database was left unchanged"
    for table, expected in EXPECTED_COLUMNS.items():
        if tuple(found[table]) != expected:
            return (
                f"table {table} has the columns ({_columns(found[table])}), not the ({_columns(expected)}) "
                "policystore uses, so it was left unchanged"
            )
    return None


def _version_problem(versions: Sequence[int]) -> str | None:
    """Say why the recorded schema version cannot be used, or return None when it is this one."""
    if list(versions) == [SCHEMA_VERSION]:
        return None
    if not versions:
        return "policystore_schema holds no version, so the database was left unchanged"
    newest = max(versions)
    if newest > SCHEMA_VERSION:
        return (
            f"it holds policystore schema version {newest}, newer than the version {SCHEMA_VERSION} this "
            "policystore knows, so upgrade policystore to use it"
        )
    return f"it holds policystore schema version {newest}, which this policystore does not know"


def _columns(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in columns)
