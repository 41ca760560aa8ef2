"""Shared fixtures: one store URL per back end, so one contract suite runs against each."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.postgres_server import postgres_server, postgres_url  # noqa: F401 - fixtures re-exported
from support.redis_server import redis_server, redis_url  # noqa: F401 - fixtures re-exported

BACKENDS = ("memory", "sqlite", "redis", "postgres")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's last-known-good files and policy variables to itself."""
    for name in list(os.environ):
        if name.startswith(("POLICYSTORE_", "RM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each back end in turn."""
    if request.param == "memory":
        return f"memory://{request.node.name}-{id(request)}"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/policy.db"
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("redis_url"))
