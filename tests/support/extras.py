"""Tests that need an optional extra: skipped in the core-only run when it is absent, required in every other.

The core-only run (``pytest --core-only``, ``make test-core``) has only the
package's base install: a test that needs the ``redis``, ``postgres`` or
``plot`` extra is skipped there, and only there, and only because the extra is
absent. In every other run an absent extra fails the tests that need it, so a
missing install step cannot pass as a skip.
"""

from __future__ import annotations

import importlib.util
from typing import Final

import pytest

__all__ = ["EXTRAS", "MARKED_EXTRAS", "extra_missing", "needs_extra", "set_core_only"]

#: The package each extra of pyproject.toml brings that its tests import, by extra.
EXTRAS: Final = {"redis": "redis", "postgres": "psycopg", "server": "fastapi", "plot": "matplotlib"}
#: The markers that say a test needs an extra, and which (marker name = extra name).
MARKED_EXTRAS: Final = ("redis", "postgres", "plot")

_core_only = False


def set_core_only(core_only: bool) -> None:
    """Say whether this run is the core-only one (called once, from the root conftest)."""
    global _core_only  # noqa: PLW0603 - one flag per test run, set before any test module is imported
    _core_only = core_only


def extra_missing(extra: str) -> str | None:
    """Return why a test of ``extra`` is skipped in this run, or None when it runs.

    Raises:
        KeyError: ``extra`` is not an extra of the package.
    """
    if not _core_only or importlib.util.find_spec(EXTRAS[extra]) is not None:
        return None
    return f"needs the {extra} extra, which the core-only install leaves out (pip install 'policystore[{extra}]')"


def needs_extra(extra: str) -> None:
    """At a module's top: skip the whole module in the core-only run when ``extra`` is not installed."""
    reason = extra_missing(extra)
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)
