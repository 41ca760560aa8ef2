"""The conformance suite as pytest tests: subclass :class:`BackendConformance`.

This module imports pytest; ``import policystore.testing`` does not. Give the
subclass a ``backend_factory`` fixture that returns a
:class:`~policystore.testing.BackendFactory` for a new, empty store, and each
check of :data:`~policystore.testing.CHECKS` runs as one test::

    import pytest
    from policystore.testing import BackendFactory
    from policystore.testing.pytest import BackendConformance


    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend_factory(self, tmp_path):
            return BackendFactory(open=lambda: MyBackend(tmp_path / "policy.db"))
"""

from __future__ import annotations

import asyncio

import pytest

from policystore.testing.conformance import CHECKS, BackendFactory, Check, check_name

__all__ = ["BackendConformance"]


class BackendConformance:
    """Every conformance check as a test of the back end that the ``backend_factory`` fixture gives.

    Subclass it under a name pytest collects (``TestMyBackend``). The checks run
    with :func:`asyncio.run`, so no async plugin is needed, and the fixture is
    made anew for each check: each needs a new, empty store.
    """

    @pytest.mark.parametrize("check", CHECKS, ids=check_name)
    def test_backend_keeps_the_contract(self, check: Check, backend_factory: BackendFactory) -> None:
        """The back end keeps the promise that the check's name states.

        Args:
            check: one conformance check.
            backend_factory: the fixture: a new, empty store of the back end under test.
        """
        asyncio.run(check(backend_factory))
