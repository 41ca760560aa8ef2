"""Store URLs: which back end a URL names, and where its last-known-good copy lives.

``memory://[NAME]``, ``sqlite:///PATH`` (the default, ``sqlite:///./policystore.db``),
``redis://host:port/db``, ``rediss://...`` (TLS), ``redis+sentinel://...`` and
``postgresql://user:password@host:port/dbname`` (also ``postgres://``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from policystore.backends.base import Backend
from policystore.errors import FieldError, PolicyValidationError

__all__ = ["DEFAULT_URL", "backend_for_url", "default_lkg_path", "redact"]

DEFAULT_URL: Final = "sqlite:///./policystore.db"
_REDIS_SCHEMES: Final = ("redis", "rediss", "redis+sentinel", "unix")
_POSTGRES_SCHEMES: Final = ("postgresql", "postgres")


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def backend_for_url(url: str) -> Backend:
    """Return an unconnected back end for ``url``.

    Raises:
        PolicyValidationError: the URL names no known back end.
    """
    scheme = _scheme(url)
    if scheme == "memory":
        from policystore.backends.memory import MemoryBackend

        return MemoryBackend(url.split("://", 1)[1])
    if scheme == "sqlite":
        from policystore.backends.sqlite import SQLiteBackend

        return SQLiteBackend(sqlite_path(url))
    if scheme in _REDIS_SCHEMES:
        try:
            from policystore.backends.redis import RedisBackend
        except ImportError as exc:  # pragma: no cover - depends on the installation
            msg = f"the redis back end needs the redis package ({exc}); install it with: pip install 'redis[hiredis]'"
            raise PolicyValidationError([FieldError("store", msg)]) from exc
        return RedisBackend.from_url(url)
    if scheme in _POSTGRES_SCHEMES:
        try:
            from policystore.backends.postgres import PostgresBackend
        except ImportError as exc:  # pragma: no cover - depends on the installation
            msg = f"the postgres back end needs psycopg ({exc}); install it with: pip install 'policystore[postgres]'"
            raise PolicyValidationError([FieldError("store", msg)]) from exc
        return PostgresBackend.from_url(url)
    msg = (
        f"{redact(url)!r} names no known store; "
        "use memory://, sqlite:///PATH, redis://HOST:PORT/DB or postgresql://USER@HOST:PORT/DBNAME"
    )
    raise PolicyValidationError([FieldError("store", msg)])


def sqlite_path(url: str) -> Path:
    """Return the database file a ``sqlite:///PATH`` URL names."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        msg = f"{url!r} is not of the form sqlite:///PATH"
        raise PolicyValidationError([FieldError("store", msg)])
    return Path(rest[1:].split("?", 1)[0])


def default_lkg_path(url: str) -> Path | None:
    """Return where the last-known-good copy of ``url``'s policy is kept.

    ``POLICYSTORE_LKG_PATH`` overrides it. A SQLite store keeps it beside the
    database; a Redis or PostgreSQL store in the user's cache folder, one file
    per URL (password removed); a memory store keeps none.
    """
    override = os.environ.get("POLICYSTORE_LKG_PATH")
    if override:
        return Path(override)
    scheme = _scheme(url)
    if scheme == "memory":
        return None
    if scheme == "sqlite":
        db = sqlite_path(url)
        return db.with_name(db.name + ".lkg.json")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "policystore"
    digest = hashlib.sha256(redact(url).encode()).hexdigest()[:16]
    return cache / f"lkg-{digest}.json"
