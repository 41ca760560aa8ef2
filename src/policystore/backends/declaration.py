"""What a back end declares so a store can be opened from its URLs: schemes, opening, defaults.

One :class:`BackendDeclaration` per back end holds everything the store needs
to know of it before it exists: the URL schemes it serves, how it is made from
a URL (importing its dependencies only then), how its URL is shown, and where
the last-known-good copy of its policy is kept by default. policystore's own
back ends are declared in :mod:`policystore.backends.builtin`; a package of
one's own declares its back end the same way and names the declaration in the
entry-point group ``policystore.backends`` (see
:mod:`policystore.backends.registry`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from policystore.backends.base import Backend
from policystore.errors import FieldError, PolicyValidationError
from policystore.redaction import redact

__all__ = ["BackendDeclaration", "in_cache"]

#: What a URL scheme may be (RFC 3986), in lower case.
SCHEME: Final = re.compile(r"[a-z][a-z0-9+.\-]*")


def in_cache(shown: str) -> Path:
    """Return the last-known-good file of a store in the user's cache folder, named by a digest of its URL.

    Args:
        shown: the store's URL as shown (secrets hidden), so no file name or digest depends on a password.

    Returns:
        ``$XDG_CACHE_HOME/policystore/lkg-DIGEST.json`` (``~/.cache`` without ``XDG_CACHE_HOME``).
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "policystore"
    return cache / f"lkg-{hashlib.sha256(shown.encode()).hexdigest()[:16]}.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendDeclaration:
    """A back end, as the store finds it by URL scheme (or by client object) and opens it.

    Attributes:
        name: the back end's name in messages (``redis``).
        schemes: the URL schemes it serves, in lower case (``redis``, ``rediss``).
        example: its URL form, shown when a URL names no known store (``redis://HOST:PORT/DB``).
        open_url: makes an unconnected back end from a URL of one of its schemes.
            Import the back end's module (and its libraries) inside it, so that
            only a program that opens such a URL imports them.
        lkg_path: where the last-known-good copy of the policy of a store at a
            URL is kept by default, or None to keep none. Left out: a file in the
            user's cache folder named by a digest of the URL as :attr:`redact`
            shows it (see :func:`in_cache`).
        redact: the URL with its secrets hidden, as messages and the cache file's name show it.
        open_client: for a back end that can wrap a client object the caller
            made: the back end for ``(client, argument)``, or None when the object
            is not a client of its kind. It may raise
            :class:`~policystore.errors.ClientTypeError` for a client of its kind
            that cannot be used, naming ``argument``.
        client_kind: what such a client is called in messages (``a redis.asyncio.Redis client``).
        requires: what :attr:`open_url` needs installed, named in the message when
            its import fails (``the redis extra``); None: an import error is not
            about a missing installation.
        install: what to install then (``policystore[redis]``).

    Raises:
        PolicyValidationError: a scheme is not one (lower-case letters, digits,
            ``+``, ``.`` and ``-``, starting with a letter), or there are none.
    """

    name: str
    schemes: tuple[str, ...]
    example: str
    open_url: Callable[[str], Backend]
    lkg_path: Callable[[str], Path | None] | None = None
    redact: Callable[[str], str] = redact
    open_client: Callable[[object, str], Backend | None] | None = None
    client_kind: str = ""
    requires: str | None = None
    install: str = ""

    def __post_init__(self) -> None:
        """Refuse schemes that no URL could carry.

        Raises:
            PolicyValidationError: a scheme is malformed or in upper case, or none is given.
        """
        if not self.schemes:
            raise PolicyValidationError([FieldError("schemes", f"back end {self.name!r} declares no URL scheme")])
        for scheme in self.schemes:
            # fullmatch, not match with '$': '$' also accepts a trailing newline.
            if not isinstance(scheme, str) or not SCHEME.fullmatch(scheme):
                msg = f"back end {self.name!r} declares {scheme!r}, which is not a lower-case URL scheme"
                raise PolicyValidationError([FieldError("schemes", msg)])

    def default_lkg_path(self, url: str) -> Path | None:
        """Return where the last-known-good copy of the store at ``url`` is kept, or None for none.

        Raises:
            PolicyValidationError: the URL is malformed for this back end.
        """
        return self.lkg_path(url) if self.lkg_path is not None else in_cache(self.redact(url))
