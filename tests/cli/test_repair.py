"""Repairing a store whose newest version is invalid, from the command line, on SQLite and on a real Redis.

The newest version is written behind policystore's back: a well-formed
document that breaks the model's rules. Readers keep the last good version and
refuse new trades; ``rollback`` and ``import`` (whole-document writes) may
write over it, as the Python API does; every other write still exits 5.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from cli_support import Cli, clean_environment, one_sentence

from policystore.backends.redis import RedisBackend
from policystore.model.history import HistoryEntry


def _invalid(document: dict) -> tuple[dict, dict]:
    """The next version of ``document`` with a limit out of range, and its history entry."""
    version = document["version"] + 1
    broken = document | {"version": version}
    broken["modes"]["NORMAL"]["max_positions"] = 0  # below the minimum of 1
    entry = HistoryEntry(version, datetime.now(UTC), "intruder", "out of range", ())
    return broken, entry.to_dict()


def _corrupt_sqlite(cli: Cli, tmp_path: Path) -> None:
    document, entry = _invalid(cli.json("export", "-", "--format", "json"))
    with sqlite3.connect(tmp_path / "policy.db") as conn:
        conn.execute(
            "INSERT INTO policy_versions (version, document, entry) VALUES (?, ?, ?)",
            (document["version"], json.dumps(document), json.dumps(entry)),
        )


def _corrupt_redis(cli: Cli) -> None:
    document, entry = _invalid(cli.json("export", "-", "--format", "json"))
    keys = RedisBackend.from_url(cli.url).keys
    port = int(cli.url.split(":")[2].split("/")[0])
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.set(keys.document, json.dumps(document))
            pipe.hset(keys.documents, str(document["version"]), json.dumps(document))
            pipe.hset(keys.history, str(document["version"]), json.dumps(entry))
            pipe.set(keys.version, document["version"])
            pipe.execute()
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "redis"])
def corrupted(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """A store at version 2 (DEFENSIVE, valid) whose newest version 3 fails validation."""
    url = f"sqlite:///{tmp_path}/policy.db" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    cli = Cli(url, clean_environment(tmp_path), tmp_path)
    cli("init")
    cli("mode", "DEFENSIVE", "--reason", "last good")
    if request.param == "sqlite":
        _corrupt_sqlite(cli, tmp_path)
    else:
        _corrupt_redis(cli)
    return cli


class TestRepairInvalidNewestVersion:
    """rollback and import write over an invalid newest version; other writes still exit 5."""

    def test_rollback_over_invalid_newest_version_writes_the_next_version(self, corrupted: Cli) -> None:
        """rollback 2 makes version 4 with version 2's content, and the store reads live again."""
        result = corrupted("rollback", "2", "--reason", "repair")

        assert "as version 4" in result.stdout
        assert "invalid" in result.stderr  # the warning says what is being written over
        explained = corrupted.json("explain", "active_mode")
        assert ("DEFENSIVE", "store", 4, False) == (
            explained["value"],
            explained["source"],
            explained["version"],
            explained["stale"],
        )

    def test_import_over_invalid_newest_version_writes_the_file(self, corrupted: Cli, tmp_path: Path) -> None:
        """An exported good policy, imported, becomes version 4."""
        document = corrupted.json("export", "-", "--format", "json")  # the last good version, read stale
        document["modes"]["NORMAL"]["max_positions"] = 12
        (tmp_path / "good.json").write_text(json.dumps(document))

        corrupted("import", "good.json", "--reason", "repair")

        assert (4, 12) == (corrupted.version(), corrupted.json("get", "modes.NORMAL.max_positions"))

    @pytest.mark.parametrize(
        "args",
        [
            ("set", "modes.NORMAL.max_positions", "10", "--reason", "patch"),
            ("mode", "NORMAL", "--reason", "switch"),
            ("emergency", "on", "--reason", "stop"),
        ],
        ids=["set", "mode", "emergency"],
    )
    def test_other_live_commands_over_invalid_newest_version_still_exit_5(self, corrupted: Cli, args) -> None:
        """Only whole-document writes may proceed: a patch cannot be applied to a version that cannot be read."""
        result = corrupted(*args, code=5)

        assert "invalid" in one_sentence(result.stderr)


class TestUnreachableStoreStillRefused:
    """A store that cannot be reached at all is no repair: rollback and import exit 5."""

    @pytest.fixture
    def unreachable(self, tmp_path: Path) -> Cli:
        """A Redis URL on a loopback port where nothing listens."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return Cli(f"redis://127.0.0.1:{port}/0?timeout=0.5", clean_environment(tmp_path), tmp_path)

    def test_rollback_unreachable_store_exits_5(self, unreachable: Cli) -> None:
        """Nothing was refused as invalid: the store is down, so the write fails."""
        assert "cannot be reached" in one_sentence(unreachable("rollback", "1", "--reason", "x", code=5).stderr)

    def test_import_unreachable_store_exits_5(self, unreachable: Cli, tmp_path: Path) -> None:
        """Same for import."""
        (tmp_path / "p.json").write_text(json.dumps({"active_mode": "NORMAL"}))

        unreachable("import", "p.json", "--reason", "x", code=5)
