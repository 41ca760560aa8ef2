"""Hiding the secrets a store URL carries: one redaction for every URL form, in every message.

A store URL may carry a password or a token (``redis://:PASSWORD@host``,
``postgresql://user:PASSWORD@host/db``, ``?password=...``). Everything that
shows a URL (errors, logs, HTTP responses, the back ends' ``url``) shows it
through :func:`redact`, and text that may quote a piece of it (a library's
error message) through :func:`redact_text`. This module imports nothing of
policystore, so the store and every back end can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, unquote_plus, urlsplit

__all__ = ["HIDDEN", "redact", "redact_text"]


#: What a hidden secret is shown as.
HIDDEN: Final = "***"
#: Query parameters whose value is a secret, by name (compared in lower case).
_SECRET_PARAMS: Final = frozenset(
    {"password", "pass", "passwd", "pwd", "token", "secret", "key", "auth", "ssl_password", "access_token", "apikey"}
)
#: A query parameter whose name holds one of these is a secret too (``sentinel_password``, ``api_token``...).
_SECRET_WORDS: Final = ("password", "passwd", "secret", "token", "credential", "api_key")
#: What may follow the userinfo of a store URL: hosts with optional ports, comma-separated (Sentinel).
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]*)(?::[0-9]*)?"
_HOSTS: Final = re.compile(rf"{_HOST}(?:,{_HOST})*")
#: The shortest piece of a malformed URL hidden from text that quotes it; shorter ones would
#: blank out ordinary words, and a library quotes the part it misread (a port, a host), not a letter.
_LEAST_PIECE: Final = 3


def _secret_param(name: str) -> bool:
    lowered = unquote_plus(name).strip().lower()
    return lowered in _SECRET_PARAMS or any(word in lowered for word in _SECRET_WORDS)


@dataclass(frozen=True, slots=True)
class _Redacted:
    """A URL with its secrets removed, and the secrets themselves (never shown)."""

    shown: str
    secrets: tuple[str, ...]


def _redact(url: str) -> _Redacted:
    """Split ``url`` into what may be shown and the secrets it carries.

    A URL that does not parse the way a store URL does (``scheme://[userinfo@]hosts[/path][?query]``)
    is hidden whole after its scheme: a password with an unencoded ``/``, ``?``, ``#`` or ``@`` makes
    the parts shift, and then no part can be trusted to hold no piece of it.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:  # not a URL at all: read it as a path with a query
        scheme, rest = "", url
    if "?" not in rest and "@" not in rest and "#" not in rest:
        return _Redacted(url, ())  # nothing in it can be a secret: the common case, kept exactly as given
    if separator:
        parts = urlsplit(url)
    else:
        before, _, fragment = url.partition("#")
        path, _, query = before.partition("?")
        parts = SplitResult("", "", path, query, fragment)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    secrets: list[str] = []
    shown_userinfo = ""
    if at:
        user, colon, password = userinfo.partition(":")
        if colon:
            secrets.append(password)
            shown_userinfo = f"{user}:{HIDDEN if password else ''}@"
        else:  # a lone user part is a token (redis://TOKEN@host)
            secrets.append(user)
            shown_userinfo = f"{HIDDEN if user else ''}@"
    items = []
    for item in parts.query.split("&") if parts.query else []:
        name, equals, value = item.partition("=")
        if equals and value and _secret_param(name):
            secrets.append(value)
            item = f"{name}={HIDDEN}"  # noqa: PLW2901 - the item as it is shown
        items.append(item)
    query = "&".join(items)
    secrets = [s for s in secrets if s]
    if parts.fragment or "@" in parts.path or "@" in query or (separator and not _HOSTS.fullmatch(hosts)):
        # Every piece of it may be a piece of a password: hide them all, from text quoting them too.
        pieces = [p for p in re.split(r"[:/?#@&=,;]", rest) if len(p) >= _LEAST_PIECE]
        return _Redacted(f"{scheme}://{HIDDEN}" if separator else HIDDEN, (rest, *secrets, *pieces))
    prefix = f"{scheme}://{shown_userinfo}{hosts}" if separator else ""
    shown = prefix + parts.path + (f"?{query}" if parts.query else "")
    decoded = [unquote_plus(s) for s in secrets]
    return _Redacted(shown, tuple(dict.fromkeys([*secrets, *decoded])))


def redact(url: str) -> str:
    """Return ``url`` with every secret it carries replaced by ``***``.

    A URL carries secrets in its userinfo (``redis://user:PASSWORD@host``, or a
    lone token, ``redis://TOKEN@host``) and in query parameters whose name says
    so (``password``, ``pass``, ``pwd``, ``token``, ``secret``, ``key``,
    ``auth``, ``ssl_password``, ``access_token``, and any name holding
    ``password``, ``secret`` or ``token``, in any case). A URL whose parts
    cannot be told apart (a password with an unencoded ``/``, ``?``, ``#`` or
    ``@``) is shown as ``scheme://***``.

    Args:
        url: a store URL, or any text meant as one.

    Returns:
        The URL safe to show: in messages, errors, logs, HTTP responses.
    """
    return _redact(url).shown


def redact_text(text: str, url: str, *, also: tuple[str | None, ...] = ()) -> str:
    """Return ``text`` with ``url`` shown redacted and every secret it carries replaced by ``***``.

    For messages that quote what a library said about a URL, which may hold a
    piece of it (redis-py's "Port could not be cast to integer value as ...").

    Args:
        text: the text to clean.
        url: the URL whose secrets must not appear.
        also: secrets given apart from the URL (a client's password), to hide too.

    Returns:
        The text safe to show.
    """
    redacted = _redact(url)
    cleaned = text.replace(url, redacted.shown) if url else text
    secrets = {s for s in (*redacted.secrets, *also) if s}
    for secret in sorted(secrets, key=len, reverse=True):
        cleaned = cleaned.replace(secret, HIDDEN)
    return cleaned
