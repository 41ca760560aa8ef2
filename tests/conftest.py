"""Shared fixtures: one store URL per back end, so one contract suite runs against each.

``tests`` and ``tests/cli`` are on ``sys.path`` through pytest's ``pythonpath``
setting (pyproject.toml): helpers are imported as ``support.*`` and ``cli_support``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from support.extras import MARKED_EXTRAS, extra_missing, set_core_only
from support.postgres_server import postgres_server, postgres_url  # noqa: F401 - fixtures re-exported
from support.redis_server import redis_server, redis_url  # noqa: F401 - fixtures re-exported

BACKENDS = (
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--core-only``: the run with only the base install, where tests of an absent extra are skipped."""
    parser.addoption(
        "--core-only",
        action="store_true",
        help="run with only the core installed: skip the tests of an extra that is not installed",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Tell the extras helper whether this is the core-only run, before any test module is imported.

    Also hear Ctrl-C again when the run was started with it ignored: a shell
    without job control starts background commands (``nohup make test &``)
    that way, every process the tests start would inherit it, and the tests
    that stop ``watch`` or ``serve`` with Ctrl-C would wait for ever. A
    handler set in Python is reset to the default in each program started.
    """
    set_core_only(bool(config.getoption("--core-only")))
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In the core-only run, skip each test marked with an extra that is not installed."""
    for item in items:
        for extra in MARKED_EXTRAS:
            reason = extra_missing(extra) if item.get_closest_marker(extra) else None
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


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
