"""policystore.testing is public: pinned names, no test framework on import, each name documented."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import policystore.testing

EXPECTED = [
    "CHECKS",
    "BackendFactory",
    "ConformanceError",
    "EventRecorder",
    "SwitchableBackend",
    "memory_store",
    "memory_url",
    "run_conformance",
    "sync_memory_store",
]


class TestPublicNames:
    """What ``import policystore.testing`` offers."""

    def test_all_pinned(self) -> None:
        """__all__ is exactly the pinned list; a change to the public surface must update this test."""
        assert EXPECTED == policystore.testing.__all__

    def test_every_name_documented(self) -> None:
        """Every public function and class has a docstring."""
        names = [n for n in policystore.testing.__all__ if n != "CHECKS"]
        assert [] == [n for n in names if not inspect.getdoc(getattr(policystore.testing, n))]

    def test_every_check_states_its_promise(self) -> None:
        """Each conformance check's docstring states the promise it checks."""
        assert [] == [c.__name__ for c in policystore.testing.CHECKS if not inspect.getdoc(c)]


class TestImport:
    """Importing the helpers costs what a test of the user's needs, and no more."""

    def test_import_imports_no_test_framework(self) -> None:
        """``import policystore.testing`` leaves pytest unimported; the pytest helpers import it."""
        code = (
            "import sys, policystore.testing\n"
            "print(sorted(m for m in ('pytest', '_pytest') if m in sys.modules))\n"
            "import policystore.testing.pytest\n"
            "print('pytest' in sys.modules)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ)
        )
        assert ["[]", "True"] == result.stdout.split()
