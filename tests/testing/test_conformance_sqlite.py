"""The SQLite back end keeps the back-end contract: the conformance suite, run as pytest tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from policystore.backends.sqlite import SQLiteBackend
from policystore.testing import BackendFactory
from policystore.testing.pytest import BackendConformance


class TestSQLiteBackendConformance(BackendConformance):
    """Every conformance check on a database file of its own; unreachable is a path under a plain file."""

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> BackendFactory:
        """A new database file; a path that cannot be a database stands for a store that cannot be reached."""
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder", encoding="utf-8")
        return BackendFactory(
            open=lambda: SQLiteBackend(tmp_path / "policy.db"),
            unreachable=lambda: SQLiteBackend(blocker / "policy.db"),
        )
