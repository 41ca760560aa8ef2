"""Fixtures of the command-line tests: a store of its own for each test.

``cli_support`` is importable through pytest's ``pythonpath`` setting (pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Cli, clean_environment


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The command line bound to a SQLite store in tmp_path (create it with ``cli("init")``)."""
    return Cli(f"sqlite:///{tmp_path}/policy.db", clean_environment(tmp_path), tmp_path)


@pytest.fixture
def store(cli: Cli) -> Cli:
    """The command line bound to a SQLite store in tmp_path that exists (``policystore init`` was run)."""
    cli("init")
    return cli
