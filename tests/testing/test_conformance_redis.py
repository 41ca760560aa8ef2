"""The Redis back end keeps the back-end contract, on a real redis-server that a real outage stops."""

from __future__ import annotations

import pytest

from support.extras import needs_extra

needs_extra("redis")

from policystore.backends.redis import RedisBackend  # noqa: E402 - after the extra is known to be there
from policystore.testing import BackendFactory  # noqa: E402
from policystore.testing.pytest import BackendConformance  # noqa: E402
from support.ports import free_port  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402

pytestmark = pytest.mark.redis


class TestRedisBackendConformance(BackendConformance):
    """Every conformance check on a namespace of its own; outages stop and restart the server."""

    @pytest.fixture
    def backend_factory(self, redis_server: RedisServer, redis_url: str) -> BackendFactory:
        """A new namespace on the shared server; a closed port stands for a store that cannot be reached."""
        unreachable = f"redis://127.0.0.1:{free_port()}/0?timeout=0.5"
        return BackendFactory(
            open=lambda: RedisBackend.from_url(redis_url),
            unreachable=lambda: RedisBackend.from_url(unreachable),
            stop=redis_server.stop,
            start=redis_server.start,
        )
