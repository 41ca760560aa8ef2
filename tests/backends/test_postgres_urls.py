"""PostgreSQL store URLs, notices and the schema check, without a server (back ends connect lazily)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policystore.backends._postgres_calls import describe
from policystore.backends._postgres_layout import NOTIFY_LIMIT, CommitCall, channel_for, hint_of, sign
from policystore.backends._postgres_schema import EXPECTED_COLUMNS, SCHEMA_VERSION, schema_problem
from policystore.backends._postgres_urls import NAMESPACE_RE
from policystore.backends._redis_urls import NAMESPACE_RE as REDIS_NAMESPACE_RE
from policystore.backends.base import Published
from policystore.backends.postgres import PostgresBackend
from policystore.errors import PolicyValidationError
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import default_policy
from policystore.store.urls import backend_for_url, default_lkg_path

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _entry(version: int) -> HistoryEntry:
    return HistoryEntry(version, AT, "tester", f"write {version}", (FieldChange("active_mode", "NORMAL", "DEFENSIVE"),))


def _rows(columns: dict[str, tuple[tuple[str, str], ...]]) -> list[tuple[str, str, str, str]]:
    return [(table, "r", name, kind) for table, cols in columns.items() for name, kind in cols]


class TestFromUrl:
    """postgresql:// and postgres:// URLs in libpq's forms."""

    def test_plain_url_default_namespace_and_timeout(self) -> None:
        """Without options the namespace is 'default', every call gets one second, and the primary is asked for."""
        backend = PostgresBackend.from_url("postgresql://u@127.0.0.1:5432/db")
        assert ("default", 1.0) == (backend.namespace, backend.timeout)
        assert "postgresql://u@127.0.0.1:5432/db?target_session_attrs=read-write" == backend._target.conninfo

    def test_query_options_taken_out_for_libpq(self) -> None:
        """namespace= and timeout= are policystore's; libpq's own options reach libpq exactly as written."""
        backend = PostgresBackend.from_url(
            "postgres://u@h/db?sslmode=disable&namespace=acct1&application_name=a%20b&timeout=0.25"
        )
        assert ("acct1", 0.25) == (backend.namespace, backend.timeout)
        assert "postgres://u@h/db?sslmode=disable&application_name=a%20b&target_session_attrs=read-write" == (
            backend._target.conninfo
        )

    @pytest.mark.parametrize(
        "url",
        [
            "postgresql://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write",
            "postgresql:///db?host=h1,h2&port=5432,5433&user=u",
            "postgresql://u@h1,h2:5433/db?target_session_attrs=any",
        ],
    )
    def test_several_hosts_accepted_as_libpq_takes_them(self, url: str) -> None:
        """Every multi-host form libpq takes is accepted, and an explicit target_session_attrs is kept."""
        backend = PostgresBackend.from_url(url)
        assert 1 == backend._target.conninfo.count("target_session_attrs=")

    def test_password_url_redacted(self) -> None:
        """The shown URL never holds the password."""
        backend = PostgresBackend.from_url("postgresql://user:s3cret@h1:5432,h2:5433/db?namespace=a")
        assert "postgresql://user:***@h1:5432,h2:5433/db?namespace=a" == backend.url

    def test_store_url_routes_to_postgres_backend(self) -> None:
        """backend_for_url builds a PostgresBackend for both schemes."""
        for url in ("postgresql://u@h/db", "postgres://u@h/db", "POSTGRESQL://u@h/db"):
            assert isinstance(backend_for_url(url), PostgresBackend)

    def test_last_known_good_in_cache_folder_without_password(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The last-known-good copy lives in the cache folder, named by the URL without its password."""
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        with_password = default_lkg_path("postgresql://u:one@h/db")
        assert with_password is not None
        assert tmp_path / "policystore" == with_password.parent
        assert with_password == default_lkg_path("postgresql://u:two@h/db")
        assert with_password != default_lkg_path("postgresql://u:one@h/db?namespace=other")

    @pytest.mark.parametrize(
        ("url", "fragment"),
        [
            ("postgresql://u@h/db?namespace=bad%20name", "namespace"),
            ("postgresql://u@h/db?namespace=", "namespace"),
            ("postgresql://u@h/db?timeout=0", "timeout"),
            ("postgresql://u@h/db?timeout=soon", "timeout"),
            ("postgresql://u@h/db?timeout=61", "timeout"),
            ("postgresql://u@h:port/db", "the port 'port' is not a number"),
            ("postgresql://u@h/db?nonsense=1", 'invalid URI query parameter: "nonsense"'),
        ],
    )
    def test_malformed_url_refused_naming_part(self, url: str, fragment: str) -> None:
        """A malformed URL raises PolicyValidationError naming what is wrong."""
        with pytest.raises(PolicyValidationError) as caught:
            PostgresBackend.from_url(url)
        assert fragment in str(caught.value)

    def test_malformed_url_message_hides_password(self) -> None:
        """A URL refused by libpq is quoted without its password, in the URL and in libpq's own words."""
        with pytest.raises(PolicyValidationError) as caught:
            PostgresBackend.from_url("postgresql://u:hunter2@h/db?nonsense=1")
        assert "hunter2" not in str(caught.value)

    @pytest.mark.parametrize("name", ["acct1", "a.b-c_d", "x" * 64, "x" * 65, "", "a b", "a:b", "ü"])
    def test_namespace_rule_same_as_redis(self, name: str) -> None:
        """A namespace is valid for PostgreSQL exactly when it is valid for Redis."""
        assert bool(REDIS_NAMESPACE_RE.match(name)) == bool(NAMESPACE_RE.match(name))


class TestChannel:
    """NOTIFY channel names."""

    def test_long_namespaces_get_distinct_channels_within_identifier_limit(self) -> None:
        """Two 64-character namespaces that share a long prefix never share a channel, and each fits 63 bytes."""
        one, two = "a" * 63 + "1", "a" * 63 + "2"
        assert channel_for(one) != channel_for(two)
        assert all(len(channel_for(name).encode()) <= 63 for name in (one, two))
        assert "policystore:acct1" == channel_for("acct1")


KEY = "a-notice-key"


class TestNotice:
    """The commit's notice and what a listener makes of it."""

    def test_signed_notice_carries_version_entry_and_document(self) -> None:
        """A notice within NOTIFY's limit, signed under the key, is read back as the version with its content."""
        document = default_policy().document() | {"version": 2}
        call = CommitCall.build("n", document, _entry(2), KEY)
        hint = hint_of(call.params["notice"], KEY)
        assert isinstance(hint, Published)
        assert (2, _entry(2)) == (hint.version, hint.entry)
        assert isinstance(hint.document, bytes)
        assert document == json.loads(hint.document)

    def test_notice_under_other_key_not_verified(self) -> None:
        """A notice signed under another key, or read without one, is not taken: the caller may read the key again."""
        call = CommitCall.build("n", default_policy().document() | {"version": 2}, _entry(2), KEY)
        assert hint_of(call.params["notice"], "another-key") is None
        assert hint_of(call.params["notice"], None) is None

    def test_tampered_notice_not_verified(self) -> None:
        """Changing one character of a signed notice's content makes it fail its signature."""
        notice = CommitCall.build("n", default_policy().document() | {"version": 2}, _entry(2), KEY).params["notice"]
        tampered = notice.replace('"max_leverage": 5.0', '"max_leverage": 9.0', 1)
        assert tampered != notice
        assert hint_of(tampered, KEY) is None

    def test_unsigned_content_announces_number_only(self) -> None:
        """Content no one signed, however well formed, is never handed over: only its number is, to be read."""
        content = CommitCall.build("n", default_policy().document() | {"version": 2}, _entry(2), KEY).params["notice"]
        unsigned = content.partition("\n")[2]
        assert 2 == hint_of(unsigned, KEY)
        forged = "sig:" + sign("guessed", unsigned) + "\n" + unsigned
        assert hint_of(forged, KEY) is None

    def test_first_version_without_key_announced_by_number(self) -> None:
        """A namespace's first version, made before its key exists, is announced by its number alone."""
        call = CommitCall.build("n", default_policy().document() | {"version": 1}, _entry(1), None)
        assert '{"version": 1}' == call.params["notice"]
        assert 1 == hint_of(call.params["notice"], None)

    def test_notice_over_limit_carries_version_only(self) -> None:
        """A document too large for NOTIFY is announced by its number alone, under the limit."""
        document = default_policy().document() | {"version": 3, "reason": "x" * NOTIFY_LIMIT}
        call = CommitCall.build("n", document, _entry(3), KEY)
        assert len(call.params["notice"].encode()) < NOTIFY_LIMIT
        assert 3 == hint_of(call.params["notice"], KEY)

    @pytest.mark.parametrize(
        "payload", ["", "not json", '{"version": "7"}', '{"version": 0}', '{"version": true}', "[1]", '{"v": 1}']
    )
    def test_malformed_notice_asks_for_check(self, payload: str) -> None:
        """Anything that is not a notice of a positive version is 0: check the store."""
        assert 0 == hint_of(payload, KEY)

    def test_write_ids_differ_per_write(self) -> None:
        """Two writes of identical content carry different write ids (so a real conflict stays one)."""
        document = default_policy().document() | {"version": 2}
        first, second = (CommitCall.build("n", document, _entry(2), KEY) for _ in range(2))
        assert first.write_id != second.write_id


class TestSchemaCheck:
    """Whether a database's tables of policystore's names fit."""

    def test_matching_tables_and_version_fit(self) -> None:
        """The expected tables with this version's number are accepted."""
        assert schema_problem(_rows(EXPECTED_COLUMNS), [SCHEMA_VERSION]) is None

    def test_newer_version_refused_saying_upgrade(self) -> None:
        """A newer schema version is refused, whatever its columns, and the reason says to upgrade."""
        problem = schema_problem(_rows({"policystore_schema": EXPECTED_COLUMNS["policystore_schema"]}), [2])
        assert problem is not None
        assert "newer" in problem
        assert "upgrade policystore" in problem

    def test_other_columns_refused_naming_table(self) -> None:
        """A table of the same name with other columns is refused, naming the table and both column lists."""
        columns = dict(EXPECTED_COLUMNS) | {"policystore_aux": (("name", "text"), ("value", "integer"))}
        problem = schema_problem(_rows(columns), [SCHEMA_VERSION])
        assert problem is not None
        assert "table policystore_aux has the columns (name text, value integer)" in problem

    def test_missing_tables_refused(self) -> None:
        """Some of the tables without the others is refused, naming the missing ones."""
        problem = schema_problem(_rows({"policystore_head": EXPECTED_COLUMNS["policystore_head"]}), None)
        assert problem is not None
        assert "not policystore_schema, policystore_versions, policystore_aux" in problem

    def test_view_of_same_name_refused(self) -> None:
        """A view in the place of a table is refused."""
        rows = [("policystore_head", "v", "namespace", "text")]
        assert "policystore_head is not a table" in (schema_problem(rows, None) or "")


class TestDescribe:
    """Driver errors as they appear inside one-sentence messages."""

    def test_multi_host_failure_one_line_per_host_without_hints(self) -> None:
        """psycopg's report of several failed hosts becomes one line naming each host's failure, hints dropped."""
        text = (
            'connection failed: connection to server at "h2", port 2 failed: Connection refused\n'
            "\tIs the server running on that host and accepting TCP/IP connections?\n"
            "Multiple connection attempts failed. All failures were:\n"
            "- host: 'h1', port: '1': connection failed: server is in hot standby mode\n"
            "- host: 'h2', port: '2': connection failed: Connection refused\n"
            "\tIs the server running on that host and accepting TCP/IP connections?"
        )
        assert (
            "host: 'h1', port: '1': connection failed: server is in hot standby mode; "
            "host: 'h2', port: '2': connection failed: Connection refused"
        ) == describe(RuntimeError(text))

    def test_empty_error_named_by_type(self) -> None:
        """An error with no text is named by its type."""
        assert "TimeoutError" == describe(TimeoutError())
