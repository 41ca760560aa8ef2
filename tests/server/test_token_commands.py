"""``policystore token create|list|revoke`` and the token table: hashes only, secrets shown once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from policystore import PolicyStore
from policystore.backends.memory import MemoryBackend
from policystore.cli.main import cli
from policystore.cli.server_commands import token
from policystore.server.tokens import TokenStore, hash_token
from policystore.testing import SwitchableBackend, memory_store


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite store that exists: the token commands, like every command but init, do not create one."""
    url = f"sqlite:///{tmp_path}/policy.db"
    assert 0 == CliRunner().invoke(cli, ["--store", url, "init"]).exit_code
    return url


def _table(url: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        store = await PolicyStore.open(url, watch=False)
        try:
            # The records as JSON text, as the store keeps them.
            return {name: json.dumps(record) for name, record in (await store.backend.records.all("tokens")).items()}
        finally:
            await store.close()

    return asyncio.run(read())


class TestTokenCommands:
    def test_create_prints_token_once_and_stores_only_its_hash(self, url):
        """create prints the secret; the store keeps its SHA-256, never the secret."""
        result = CliRunner().invoke(cli, ["--store", url, "token", "create", "--role", "operator", "--name", "otto"])

        secret = result.stdout.strip()
        stored = _table(url)["otto"]
        assert 0 == result.exit_code, result.output
        assert secret.startswith("ps_")
        assert secret not in stored
        assert hash_token(secret) == json.loads(stored)["sha256"]

    def test_list_shows_names_and_roles_never_secrets(self, url):
        """list shows name, role and creation time, and no secret."""
        runner = CliRunner()
        secret = runner.invoke(cli, ["--store", url, "token", "create", "--role", "admin", "--name", "ada"]).stdout

        listed = runner.invoke(cli, ["--store", url, "--json", "token", "list"])

        rows = json.loads(listed.stdout)
        assert [("ada", "admin")] == [(r["name"], r["role"]) for r in rows]
        assert secret.strip() not in listed.stdout

    def test_revoke_removes_token(self, url):
        """revoke deletes the token from the table."""
        runner = CliRunner()
        runner.invoke(cli, ["--store", url, "token", "create", "--role", "viewer", "--name", "vera"])

        result = runner.invoke(cli, ["--store", url, "token", "revoke", "vera"])

        assert 0 == result.exit_code
        assert {} == _table(url)

    def test_revoke_unknown_name_exits_3_naming_it(self, url):
        """Revoking a name that does not exist is invalid input (exit 3)."""
        result = CliRunner().invoke(cli, ["--store", url, "token", "revoke", "nobody"])

        assert 3 == result.exit_code
        assert "nobody" in result.stderr

    def test_duplicate_name_exits_3_and_keeps_first(self, url):
        """A second token with a taken name is refused and the first stays valid."""
        runner = CliRunner()
        first = runner.invoke(cli, ["--store", url, "token", "create", "--role", "admin", "--name", "ada"]).stdout

        again = runner.invoke(cli, ["--store", url, "token", "create", "--role", "viewer", "--name", "ada"])

        assert 3 == again.exit_code
        assert hash_token(first.strip()) == json.loads(_table(url)["ada"])["sha256"]

    def test_group_used_alone_takes_its_own_store_option(self, url):
        """Without the global options, the token group accepts --store itself."""
        result = CliRunner().invoke(token, ["create", "--role", "viewer", "--name", "vera", "--store", url])

        assert 0 == result.exit_code, result.output
        assert ["vera"] == list(_table(url))


class TestTokenStore:
    async def test_authenticate_known_secret_returns_record(self):
        """A created token authenticates as its name and role; another secret does not."""
        store = await memory_store()
        tokens = TokenStore(store.backend)
        secret = await tokens.create("ada", "admin")

        found = await tokens.authenticate(secret)
        missing = await tokens.authenticate(secret + "x")

        assert found is not None
        assert ("ada", "admin") == (found.name, found.role.value)
        assert missing is None
        await store.close()

    async def test_while_the_store_is_away_an_unknown_token_is_refused_from_the_cached_table(self):
        """An outage neither admits an unknown token nor turns its lookup into an error; a known one still works."""
        wrapped = MemoryBackend("tokens-outage")
        await wrapped.connect()
        switch = SwitchableBackend(wrapped)
        tokens = TokenStore(switch, ttl=600, miss_interval=0.05)
        known = await tokens.create("ada", "admin")
        assert (await tokens.authenticate(known)) is not None  # the table is cached
        elsewhere = await TokenStore(wrapped).create("otto", "operator")  # not yet seen here

        with switch.outage():
            during = [await tokens.authenticate(secret) for secret in (known, elsewhere, "ps_forged")]
        after = await tokens.authenticate(elsewhere)

        assert ["ada", None, None] == [record and record.name for record in during]
        assert after is not None
        assert "otto" == after.name
        await wrapped.close()

    async def test_create_bad_name_or_role_is_refused(self):
        """Names with spaces and unknown roles are refused, naming the field."""
        from policystore import PolicyValidationError

        store = await memory_store()
        tokens = TokenStore(store.backend)

        with pytest.raises(PolicyValidationError) as bad_name:
            await tokens.create("two words", "admin")
        with pytest.raises(PolicyValidationError) as bad_role:
            await tokens.create("ada", "boss")

        assert (("name",), ("role",)) == (bad_name.value.paths, bad_role.value.paths)
        assert {} == await store.backend.records.all("tokens")
        await store.close()
