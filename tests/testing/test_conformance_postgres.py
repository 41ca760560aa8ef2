"""The PostgreSQL back end keeps the back-end contract, on a real server that a real outage stops."""

from __future__ import annotations

import pytest

from support.extras import needs_extra

needs_extra("postgres")

from policystore.backends.postgres import PostgresBackend  # noqa: E402 - after the extra is known to be there
from policystore.testing import BackendFactory  # noqa: E402
from policystore.testing.pytest import BackendConformance  # noqa: E402
from support.ports import free_port  # noqa: E402
from support.postgres_server import PASSWORD, USER, PostgresServer  # noqa: E402

pytestmark = pytest.mark.postgres


class TestPostgresBackendConformance(BackendConformance):
    """Every conformance check on a namespace of its own; outages stop and restart the server."""

    @pytest.fixture
    def backend_factory(self, postgres_server: PostgresServer, postgres_url: str) -> BackendFactory:
        """A new namespace on the shared server; a closed port stands for a store that cannot be reached."""
        unreachable = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/policystore?timeout=0.5"
        return BackendFactory(
            open=lambda: PostgresBackend.from_url(postgres_url),
            unreachable=lambda: PostgresBackend.from_url(unreachable),
            stop=postgres_server.stop,
            start=postgres_server.start,
        )
