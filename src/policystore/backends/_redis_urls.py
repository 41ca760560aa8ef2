"""Reading a Redis store URL: where the server is, the namespace, the timeout, and how to make the client.

The URL forms are described in :mod:`policystore.backends.redis`. Parsing
happens when the back end is built, so a malformed URL fails at once rather
than at first use; the client itself is made later, inside the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from policystore.errors import FieldError, PolicyValidationError
from policystore.redaction import HIDDEN, redact, redact_text

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_TIMEOUT",
    "NAMESPACE_RE",
    "RedisTarget",
    "client_options",
    "invalid",
    "parse_redis_url",
]

DEFAULT_NAMESPACE: Final = "default"
DEFAULT_TIMEOUT: Final = 1.0
NAMESPACE_RE: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def invalid(message: str) -> PolicyValidationError:
    """Return the error for a malformed URL or namespace, reported against the field ``store``."""
    return PolicyValidationError([FieldError("store", message)])


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a Redis store URL names.

    Attributes:
        factory: makes the client (call it inside the event loop).
        namespace: the key prefix's name, not yet checked.
        timeout: seconds any one call may take.
    """

    factory: Callable[[], Redis]
    namespace: str
    timeout: float


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://`` URL.

    Raises:
        PolicyValidationError: the URL or its timeout is malformed.
    """
    shown = redact(url)
    if shown == f"{url.partition('://')[0]}://{HIDDEN}":
        # Its parts shift (see redact): whatever a parser says about them may quote a piece of the password.
        raise invalid(
            f"{shown!r} is not a valid Redis URL (its parts cannot be told apart: "
            "percent-encode any '/', '?', '#' or '@' in the user name or password)"
        )
    plain, namespace, timeout = _split_options(url)
    if plain.lower().startswith("redis+sentinel://"):
        return RedisTarget(_sentinel_factory(plain, timeout), namespace, timeout)
    db = urlsplit(plain).path.strip("/")
    if plain.lower().startswith(("redis://", "rediss://")) and db and not db.isdigit():
        raise invalid(f"{shown!r} is not a valid Redis URL (the database {db!r} is not a number)")
    try:
        parse_url(plain)  # parse now, so a malformed URL fails at once, not at first use
    except (ValueError, TypeError) as exc:
        raise invalid(f"{shown!r} is not a valid Redis URL ({redact_text(str(exc), url)})") from exc

    def factory() -> Redis:
        return Redis.from_url(plain, **client_options(timeout))

    return RedisTarget(factory, namespace, timeout)


def client_options(timeout: float) -> dict[str, Any]:
    """Return the keyword arguments every client (and Sentinel connection) is made with."""
    # One immediate retry replaces a pooled connection the server closed (after a
    # restart); no backoff, so a call still fails within the timeout. The retry may
    # re-send a commit whose reply was lost, which the commit script recognises.
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": Retry(NoBackoff(), 1)}


def _split_options(url: str) -> tuple[str, str, float]:
    """Remove ``namespace`` and ``timeout`` from ``url``'s query; return (url, namespace, timeout)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    namespace = query.pop("namespace", [DEFAULT_NAMESPACE])[-1]
    raw_timeout = query.pop("timeout", [str(DEFAULT_TIMEOUT)])[-1]
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 60:  # noqa: PLR2004 - a minute is already far beyond any sane bound on one call
        raise invalid(f"timeout={raw_timeout!r} in {redact(url)!r} must be a number of seconds above 0, at most 60")
    # Rebuilt by hand: urlunsplit drops the '//' of a URL with an empty host (unix:///path/redis.sock),
    # which redis-py then refuses. A URL with a fragment never gets here (see parse_redis_url).
    rest = urlencode(query, doseq=True)
    return url.partition("?")[0] + (f"?{rest}" if rest else ""), namespace, timeout


def _sentinel_factory(url: str, timeout: float) -> Callable[[], Redis]:
    """Parse ``redis+sentinel://[:pw@]h:p[,h:p]/service[/db]``; return a factory of master clients."""
    rest = url.split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        password = unquote(userinfo.split(":", 1)[1]) if ":" in userinfo else None
    hosts: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise invalid(f"{redact(url)!r}: Sentinel address {item!r} is not HOST:PORT")
        hosts.append((host.strip("[]"), int(port)))
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    if not 1 <= len(segments) <= 2 or (len(segments) == 2 and not segments[1].isdigit()):  # noqa: PLR2004
        raise invalid(f"{redact(url)!r} is not of the form redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]")
    service, db = segments[0], int(segments[1]) if len(segments) == 2 else 0  # noqa: PLR2004
    options = client_options(timeout)

    def factory() -> Redis:
        sentinel = Sentinel(hosts, sentinel_kwargs=dict(options), **options)  # type: ignore[no-untyped-call,unused-ignore]
        master: Redis = sentinel.master_for(service, db=db, password=password, **options)
        return master

    return factory
