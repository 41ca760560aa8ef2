"""Only ``init`` (and ``serve --create``) makes a store: every other command names the missing one and exits 5."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cli_support import COMMAND, Cli, clean_environment, one_sentence

#: Every command that opens the store, with arguments that would succeed on a store that exists.
OPENING_COMMANDS = [
    ("show",),
    ("get", "risk.max_leverage"),
    ("explain", "risk.max_leverage"),
    ("paths",),
    ("mode",),
    ("mode", "DEFENSIVE", "--reason", "calm"),
    ("set", "modes.NORMAL.max_leverage", "4", "--reason", "tighter"),
    ("emergency", "on", "--reason", "outage"),
    ("history",),
    ("diff", "1"),
    ("rollback", "1", "--reason", "undo"),
    ("export", "-"),
    ("presets", "BULL_MARKET", "--add", "--reason", "trend"),
    ("token", "list"),
    ("token", "create", "--role", "viewer", "--name", "vera"),
    ("watch", "--count", "1"),
]


class TestInit:
    """init creates a store once and reports its version."""

    def test_init_new_store_reports_version_one_and_is_idempotent(self, cli: Cli) -> None:
        """A new store starts at version 1, and running init again changes nothing."""
        assert "is at version 1" in cli("init").stdout
        assert {"url": cli.url, "version": 1} == cli.json("init")
        assert 1 == cli.version()

    def test_init_creates_the_folder_of_a_new_sqlite_store(self, tmp_path: Path) -> None:
        """init is the one command that may create the file and its folder."""
        cli = Cli(f"sqlite:///{tmp_path}/new/folder/p.db", clean_environment(tmp_path), tmp_path)

        cli("init")

        assert (tmp_path / "new" / "folder" / "p.db").is_file()


class TestReadingAMissingStore:
    """A command other than init, pointed at a store that does not exist, creates nothing."""

    def test_explain_misspelt_store_exits_5_naming_it_and_creates_no_file(self, tmp_path: Path) -> None:
        """A typo in the URL is not answered from a file made on the spot ('source store, version 1')."""
        cli = Cli("sqlite:///./polcystore.db", clean_environment(tmp_path), tmp_path)

        result = cli("explain", "risk.max_leverage", code=5)

        sentence = one_sentence(result.stderr)
        assert "polcystore.db" in sentence
        assert "policystore init" in sentence
        assert "" == result.stdout
        assert [] == sorted(p.name for p in tmp_path.iterdir() if p.name != "cache")

    def test_show_store_in_missing_folder_exits_5_and_creates_no_folder(self, tmp_path: Path) -> None:
        """sqlite:////no/such/dir/p.db: the folder is not made either."""
        cli = Cli(f"sqlite:///{tmp_path}/no/such/dir/p.db", clean_environment(tmp_path), tmp_path)

        result = cli("show", code=5)

        assert f"{tmp_path}/no/such/dir/p.db" in one_sentence(result.stderr)
        assert not (tmp_path / "no").exists()

    @pytest.mark.parametrize("args", OPENING_COMMANDS, ids=" ".join)
    def test_command_on_missing_store_exits_5_and_writes_nothing(self, cli: Cli, tmp_path: Path, args) -> None:
        """Reads, writes, token commands and watch alike: exit 5, no database, no last-known-good copy."""
        result = cli(*args, code=5)

        assert "policystore init" in one_sentence(result.stderr)
        assert not (tmp_path / "policy.db").exists()
        assert not list(tmp_path.glob("policy.db*"))

    def test_missing_store_with_json_is_one_json_error_on_stderr(self, cli: Cli) -> None:
        """With --json the same refusal is a JSON object naming the class, the URL and the status."""
        result = cli("show", "--json", code=5)

        error = json.loads(one_sentence(result.stderr))
        assert ("StoreUnavailableError", 5, cli.url) == (error["error"], error["exit_code"], error["url"])
        assert "" == result.stdout


class TestServerBackEnds:
    """On Redis and PostgreSQL a store that holds no policy is missing too, until init."""

    @pytest.mark.parametrize("backend", ["redis_url", "postgres_url"], ids=["redis", "postgres"])
    def test_empty_namespace_exits_5_until_init_creates_the_store(
        self, request: pytest.FixtureRequest, tmp_path: Path, backend: str
    ) -> None:
        """show on a fresh namespace names the store and init; after init it reads version 1."""
        cli = Cli(request.getfixturevalue(backend), clean_environment(tmp_path), tmp_path)

        refused = cli("show", code=5)
        cli("init")

        assert "policystore init" in one_sentence(refused.stderr)
        assert 1 == cli.version()


class TestServeMissingStore:
    """serve opens an existing store; it creates one only when asked with --create."""

    def test_serve_missing_store_exits_5_before_claiming_to_serve(self, cli: Cli, tmp_path: Path) -> None:
        """No file is made and nothing says 'Serving'."""
        result = cli("serve", "--host", "127.0.0.1", "--port", "0", code=5)

        assert "policystore init" in result.stderr
        assert "Serving" not in result.stderr
        assert not (tmp_path / "policy.db").exists()

    def test_serve_create_makes_the_store_and_serves_it(self, cli: Cli, tmp_path: Path) -> None:
        """--create seeds version 1 and the API answers from it."""
        log = tmp_path / "serve.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [*COMMAND, "--store", cli.url, "serve", "--create", "--host", "127.0.0.1", "--port", "0"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=cli.env,
                cwd=tmp_path,
            )
        try:
            base = _wait_until_serving(process, log)
            assert "ok" == httpx.get(f"{base}/healthz", timeout=10).json()["status"]
        finally:
            process.terminate()
            process.wait(20)
        assert 1 == cli.version()


def _wait_until_serving(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/", log.read_text())
        if found:
            try:
                if httpx.get(f"{found.group(1)}/healthz", timeout=2).status_code == 200:
                    return found.group(1)
            except httpx.TransportError:
                pass  # printed just before uvicorn starts listening
        time.sleep(0.1)
    pytest.fail(f"policystore serve did not start within 30 s:\n{log.read_text()}")
