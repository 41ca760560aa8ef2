"""The SQLite back end keeps the back-end contract: the conformance suite, run as pytest tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from policystore.backends.sqlite import SQLiteBackend
from policystore.testing import BackendFactory
from policystore.testing.conformance import check_name
from policystore.testing.pytest import BackendConformance

#: A store whose first connect failed never connects again: the store does not call connect() a second
#: time, and the SQLite back end opens its file only there. Strict: this fails once that is mended.
_NEVER_CONNECTS_AFTER_A_FAILED_OPEN = "store_opened_during_outage_reads_last_known_good_then_goes_live"


class TestSQLiteBackendConformance(BackendConformance):
    """Every conformance check on a database file of its own; unreachable is a path under a plain file."""

    @pytest.fixture
    def backend_factory(self, tmp_path: Path, request: pytest.FixtureRequest) -> BackendFactory:
        """A new database file; a path that cannot be a database stands for a store that cannot be reached."""
        if check_name(request.node.callspec.params["check"]) == _NEVER_CONNECTS_AFTER_A_FAILED_OPEN:
            reason = "a SQLite store opened while its file cannot be opened does not connect when it can again"
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder", encoding="utf-8")
        return BackendFactory(
            open=lambda: SQLiteBackend(tmp_path / "policy.db"),
            unreachable=lambda: SQLiteBackend(blocker / "policy.db"),
        )
