"""Reading a PostgreSQL store URL: the libpq connection string, the namespace and the timeout.

The URL forms are described in :mod:`policystore.backends.postgres`. The two
options of policystore's own (``namespace`` and ``timeout``) are taken out of
the query; everything else is libpq's and is handed to it unchanged, so every
form libpq takes works, several hosts included. Parsing happens when the back
end is built, so a malformed URL fails at once rather than at first use.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from policystore.errors import FieldError, PolicyValidationError
from policystore.redaction import redact

__all__ = ["DEFAULT_NAMESPACE", "DEFAULT_TIMEOUT", "NAMESPACE_RE", "PostgresTarget", "invalid", "parse_postgres_url"]

DEFAULT_NAMESPACE: Final = "default"
DEFAULT_TIMEOUT: Final = 1.0
#: The rule the Redis back end applies to its namespaces, so a name valid for one is valid for the other.
NAMESPACE_RE: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
#: What the store needs of the server it writes to; a URL may still ask for something else.
_DEFAULT_SESSION_ATTRS: Final = "target_session_attrs=read-write"
_OWN_OPTIONS: Final = ("namespace", "timeout")


def invalid(message: str) -> PolicyValidationError:
    """Return the error for a malformed URL or namespace, reported against the field ``store``."""
    return PolicyValidationError([FieldError("store", message)])


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """What a PostgreSQL store URL names.

    Attributes:
        conninfo: the URL as libpq takes it (policystore's options removed), password included.
        namespace: the namespace, checked.
        timeout: seconds any one call may take.
        connect_options: keyword arguments every connection is made with.
    """

    conninfo: str
    namespace: str
    timeout: float
    connect_options: dict[str, Any]


def parse_postgres_url(url: str) -> PostgresTarget:
    """Parse a ``postgresql://`` or ``postgres://`` URL.

    Raises:
        PolicyValidationError: the URL, its namespace or its timeout is malformed.
    """
    base, _, query = url.partition("?")
    scheme, separator, rest = base.partition("://")
    base = scheme.lower() + separator + rest  # libpq knows the schemes in lower case only
    kept: list[str] = []
    options: dict[str, str] = {}
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        if unquote(key) in _OWN_OPTIONS:
            options[unquote(key)] = unquote(value)  # the last one wins, as libpq does with its own
        elif item:
            kept.append(item)  # libpq's: left exactly as written, for libpq to decode
    namespace = options.get("namespace", DEFAULT_NAMESPACE)
    if not NAMESPACE_RE.match(namespace):
        raise invalid(f"namespace {namespace!r} must be 1 to 64 letters, digits, '_', '.' or '-'")
    timeout = _timeout(options.get("timeout", str(DEFAULT_TIMEOUT)), url)
    if not any(item.startswith("target_session_attrs=") for item in kept):
        kept.append(_DEFAULT_SESSION_ATTRS)
    conninfo = base + "?" + "&".join(kept)
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise invalid(f"{redact(url)!r} is not a valid PostgreSQL URL ({_without_password(str(exc), url)})") from exc
    ports = str(params.get("port") or "5432").split(",")
    if not all(port.strip().isdigit() or not port.strip() for port in ports):  # empty: the default port
        raise invalid(f"{redact(url)!r} is not a valid PostgreSQL URL (the port {params['port']!r} is not a number)")
    connect: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in params:
        # libpq's unit is whole seconds and its least value 2; each call is still bounded by the timeout.
        connect["connect_timeout"] = max(2, math.ceil(timeout))
    return PostgresTarget(conninfo, namespace, timeout, connect)


def _timeout(raw: str, url: str) -> float:
    try:
        timeout = float(raw)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 60:  # noqa: PLR2004 - a minute is already far beyond any sane bound on one call
        raise invalid(f"timeout={raw!r} in {redact(url)!r} must be a number of seconds above 0, at most 60")
    return timeout


def _without_password(message: str, url: str) -> str:
    """Remove the URL's password from a libpq message, which may quote part of the URL."""
    base, _, query = url.partition("?")
    userinfo = base.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
    secrets = [userinfo.partition(":")[2]]
    secrets += [item.partition("=")[2] for item in query.split("&") if item.startswith("password=")]
    for form in sorted({form for secret in secrets for form in (secret, unquote(secret))} - {""}, key=len):
        message = message.replace(form, "***")
    return message.strip().rstrip(".")
