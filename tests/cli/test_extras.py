"""Without an optional extra, the core still works and a command that needs the extra names it.

The extra's package is made unimportable for the subprocess by a stand-in
package earlier on its path, as if it had never been installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_support import Cli


def _without(tmp_path: Path, cli: Cli, *modules: str) -> dict[str, str]:
    hidden = tmp_path / "hidden"
    for module in modules:
        (hidden / module).mkdir(parents=True)
        (hidden / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n"
        )
    return cli.env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))}


class TestWithoutTheServerExtra:
    """fastapi and uvicorn missing: the store and the command line work; serve and token say what to install."""

    @pytest.mark.parametrize("args", [("serve",), ("token", "list")], ids=["serve", "token list"])
    def test_server_command_names_the_server_extra(self, store: Cli, tmp_path: Path, args) -> None:
        """One sentence with the pip command; no traceback."""
        env = _without(tmp_path, store, "fastapi", "uvicorn")

        result = store(*args, code=1, env=env)

        assert "pip install 'policystore[server]'" in result.stderr
        assert 1 == len(result.stderr.strip().splitlines())

    def test_core_commands_work_without_the_server_extra(self, store: Cli, tmp_path: Path) -> None:
        """show, set and history need nothing from the server."""
        env = _without(tmp_path, store, "fastapi", "uvicorn", "prometheus_client")

        store("set", "modes.NORMAL.max_positions", "20", "--reason", "fewer", env=env)

        assert "20" == store("get", "risk.max_positions", env=env).stdout.strip()


class TestWithoutTheRedisExtra:
    """redis-py missing: a Redis URL says which extra to install."""

    def test_redis_url_names_the_redis_extra(self, cli: Cli, tmp_path: Path) -> None:
        """One sentence with the pip command, exit 3 (the URL cannot be used here), no traceback."""
        env = _without(tmp_path, cli, "redis", "hiredis")

        result = cli.raw("--store", "redis://127.0.0.1:6379/0", "show", code=3, env=env)

        assert "pip install 'policystore[redis]'" in result.stderr
        assert 1 == len(result.stderr.strip().splitlines())
