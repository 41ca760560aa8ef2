"""Store URLs: the default one, which back end a URL names, and where its last-known-good copy lives.

``memory://[NAME]``, ``sqlite:///PATH`` (the default, ``sqlite:///./policystore.db``),
``redis://host:port/db``, ``rediss://...`` (TLS), ``redis+sentinel://...`` and
``postgresql://user:password@host:port/dbname`` (also ``postgres://``), and the
schemes of back ends installed through the ``policystore.backends`` entry-point
group. Each back end declares its schemes and defaults once (see
:mod:`policystore.backends.registry`); this module asks the registry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from policystore.backends.base import Backend
from policystore.backends.registry import REGISTRY

__all__ = ["DEFAULT_URL", "backend_for_url", "default_lkg_path"]

DEFAULT_URL: Final = "sqlite:///./policystore.db"


def backend_for_url(url: str) -> Backend:
    """Return an unconnected back end for ``url``.

    Raises:
        PolicyValidationError: the URL names no known back end (the message
            names its scheme and the known ones), is malformed, or its back
            end's libraries are not installed.
    """
    return REGISTRY.open_url(url)


def default_lkg_path(url: str) -> Path | None:
    """Return where the last-known-good copy of ``url``'s policy is kept.

    ``POLICYSTORE_LKG_PATH`` overrides it. Otherwise the back end's declaration
    says: a SQLite store keeps it beside the database; a Redis or PostgreSQL
    store (and a store of a scheme no back end declares) in the user's cache
    folder, one file per URL (password removed); a memory store keeps none.

    Raises:
        PolicyValidationError: the URL is malformed for its back end.
    """
    override = os.environ.get("POLICYSTORE_LKG_PATH")
    if override:
        return Path(override)
    return REGISTRY.default_lkg_path(url)
