"""The memory back end keeps the back-end contract: the conformance suite, run as pytest tests."""

from __future__ import annotations

import uuid

import pytest

from policystore.backends.memory import MemoryBackend
from policystore.testing import BackendFactory
from policystore.testing.pytest import BackendConformance


class TestMemoryBackendConformance(BackendConformance):
    """Every conformance check on ``memory://NAME``: its outages are simulated with the outage switch."""

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        """A named memory store of its own: every back end on the name shares it."""
        name = f"conformance-{uuid.uuid4().hex}"
        return BackendFactory(open=lambda: MemoryBackend(name))
