"""``redis://``, ``rediss://``, ``unix://`` and ``redis+sentinel://``: one policy shared by many hosts.

URL forms (every form takes ``?namespace=NAME`` and ``?timeout=SECONDS``)::

    redis://[:password@]host:port/db            plain TCP
    rediss://[:password@]host:port/db           TLS
    unix:///path/to/redis.sock?db=0             a local socket
    redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]

The Sentinel form asks the listed Sentinels which server is the master of
``service_name`` and follows it across failovers; the password, if any, is the
master's. ``namespace`` (default ``default``) prefixes every key with
``policystore:NAME:`` so several policies share one Redis. ``timeout``
(default 1 s) bounds every call: an unreachable Redis raises
:class:`~policystore.errors.StoreUnavailableError` within it and never hangs.

A write is one Lua script: it checks the version (compare-and-set), stores the
document, the document by version, the history entry and the new version, and
publishes ``{"version": N}`` on the namespace's channel, all in one atomic step,
so no reader can see a version without its history or miss its notice except by
losing the connection (after which :meth:`RedisBackend.notifications` yields 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from policystore.errors import FieldError, PolicyValidationError, StoreUnavailableError, VersionConflictError
from policystore.model.history import HistoryEntry
from policystore.store.urls import redact

__all__ = ["RedisBackend", "RedisKeys"]

log = logging.getLogger("policystore.redis")
T = TypeVar("T")

DEFAULT_NAMESPACE: Final = "default"
DEFAULT_TIMEOUT: Final = 1.0
_NAMESPACE_RE: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Seconds of silence on the pub/sub connection before it is pinged; a ping
# unanswered within the timeout means the connection is dead even if TCP has not noticed.
_KEEPALIVE: Final = 5.0

# KEYS: version, document, documents, history. ARGV: new version, document, entry, channel, message.
_COMMIT_LUA: Final = """
local raw = redis.call('GET', KEYS[1])
local current = 0
if raw then
  current = tonumber(raw)
  if not current then return redis.error_reply('policystore: the version key holds no integer') end
end
local new = tonumber(ARGV[1])
if current ~= new - 1 then return {0, current} end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1, new}
"""


def _invalid(message: str) -> PolicyValidationError:
    return PolicyValidationError([FieldError("store", message)])


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The Redis keys and channel of one namespace.

    Attributes:
        prefix: ``policystore:NAMESPACE:``, the start of every key.
        version: the newest version (an integer string).
        document: the newest document (JSON).
        documents: a hash of version -> document JSON, for rollback and diff.
        history: a hash of version -> history entry JSON.
        channel: where each commit publishes ``{"version": N}``.
    """

    prefix: str
    version: str
    document: str
    documents: str
    history: str
    channel: str

    @classmethod
    def for_namespace(cls, namespace: str) -> RedisKeys:
        """Return the keys of ``namespace``.

        Raises:
            PolicyValidationError: the name is empty, too long or has characters
                other than letters, digits, ``_``, ``.`` and ``-``.
        """
        if not _NAMESPACE_RE.match(namespace):
            raise _invalid(f"namespace {namespace!r} must be 1 to 64 letters, digits, '_', '.' or '-'")
        p = f"policystore:{namespace}:"
        return cls(p, p + "version", p + "document", p + "documents", p + "history", p + "changes")

    def aux(self, table: str) -> str:
        """Return the hash key of auxiliary table ``table``."""
        return f"{self.prefix}aux:{table}"


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
        raise _invalid(f"timeout={raw_timeout!r} in {redact(url)!r} must be a number of seconds above 0, at most 60")
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True))), namespace, timeout


def _client_options(timeout: float) -> dict[str, Any]:
    # One immediate retry replaces a pooled connection the server closed (after a
    # restart); no backoff, so a call still fails within the timeout.
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": Retry(NoBackoff(), 1)}


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
            raise _invalid(f"{redact(url)!r}: Sentinel address {item!r} is not HOST:PORT")
        hosts.append((host.strip("[]"), int(port)))
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    if not 1 <= len(segments) <= 2 or (len(segments) == 2 and not segments[1].isdigit()):  # noqa: PLR2004
        raise _invalid(f"{redact(url)!r} is not of the form redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]")
    service, db = segments[0], int(segments[1]) if len(segments) == 2 else 0  # noqa: PLR2004
    options = _client_options(timeout)

    def factory() -> Redis:
        sentinel = Sentinel(hosts, sentinel_kwargs=dict(options), **options)  # type: ignore[no-untyped-call]
        master: Redis = sentinel.master_for(service, db=db, password=password, **options)
        return master

    return factory


class RedisBackend:
    """A policy kept in Redis, shared by every process and host that opens the same URL.

    Build one with :meth:`from_url` or :meth:`from_client`.

    Args:
        factory: makes the Redis client on first use (inside the event loop).
        url: the URL to show, password removed.
        namespace: the key prefix's name.
        timeout: seconds any one call may take before it fails.
        owns_client: close the client in :meth:`close` (False for a caller's client).
    """

    def __init__(
        self,
        factory: Callable[[], Redis],
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        owns_client: bool = True,
    ) -> None:
        self.url = redact(url)
        self.keys = RedisKeys.for_namespace(namespace)
        self.namespace = namespace
        self.timeout = timeout
        self._factory = factory
        self._owns_client = owns_client
        self._redis: Redis | None = None
        self._commit_script: Any = None
        self._closed = asyncio.Event()

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Return an unconnected back end for a ``redis://``, ``rediss://``, ``unix://`` or Sentinel URL.

        Raises:
            PolicyValidationError: the URL, its namespace or its timeout is malformed.
        """
        plain, namespace, timeout = _split_options(url)
        if plain.lower().startswith("redis+sentinel://"):
            factory = _sentinel_factory(plain, timeout)
        else:
            try:
                parse_url(plain)  # parse now, so a malformed URL fails at once, not at first use
            except (ValueError, TypeError) as exc:
                raise _invalid(f"{redact(url)!r} is not a valid Redis URL ({exc})") from exc
            db = urlsplit(plain).path.strip("/")
            if plain.lower().startswith(("redis://", "rediss://")) and db and not db.isdigit():
                raise _invalid(f"{redact(url)!r} is not a valid Redis URL (the database {db!r} is not a number)")

            def factory() -> Redis:
                return Redis.from_url(plain, **_client_options(timeout))

        return cls(factory, url, namespace=namespace, timeout=timeout)

    @classmethod
    def from_client(
        cls, client: Redis, *, namespace: str = DEFAULT_NAMESPACE, timeout: float = DEFAULT_TIMEOUT
    ) -> Self:
        """Wrap an existing ``redis.asyncio.Redis`` client; :meth:`close` leaves it open.

        Args:
            client: the caller's client (its own socket timeouts still apply;
                ``timeout`` bounds each call on top of them).
            namespace: the key prefix's name.
            timeout: seconds any one call may take.

        Returns:
            The back end.
        """
        kwargs = client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        scheme = "unix://" if kwargs.get("path") else "redis://"
        url = f"{scheme}{where}/{kwargs.get('db', 0)}?namespace={namespace}"
        return cls(lambda: client, url, namespace=namespace, timeout=timeout, owns_client=False)

    # -- plumbing --------------------------------------------------------------

    @property
    def _client(self) -> Redis:
        if self._redis is None:
            self._redis = self._factory()
            self._commit_script = self._redis.register_script(_COMMIT_LUA)
        return self._redis

    async def _call(self, what: str, operation: Callable[[Redis], Awaitable[T]]) -> T:
        """Run one operation within the timeout, turning every Redis failure into StoreUnavailableError."""
        try:
            async with asyncio.timeout(self.timeout):
                return await operation(self._client)
        except TimeoutError as exc:
            raise StoreUnavailableError(self.url, f"no answer within {self.timeout:g} s while {what}") from exc
        except (RedisError, OSError) as exc:
            reason = f"Redis failed while {what} ({type(exc).__name__}: {str(exc).rstrip('.')})"
            raise StoreUnavailableError(self.url, reason) from exc

    def _decode(self, raw: bytes | str | None, what: str) -> Any:
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StoreUnavailableError(self.url, f"the stored {what} is not valid JSON ({exc})") from exc

    async def _entries_at(self, versions: list[int]) -> list[HistoryEntry]:
        if not versions:
            return []
        raw = await self._call("reading history", lambda r: r.hmget(self.keys.history, versions))
        entries = []
        for version, item in zip(versions, raw, strict=True):
            data = self._decode(item, f"history entry {version}")
            if data is None:
                raise StoreUnavailableError(self.url, f"history entry {version} is missing from {self.keys.history}")
            try:
                entries.append(HistoryEntry.from_dict(data))
            except (KeyError, ValueError, TypeError) as exc:
                raise StoreUnavailableError(self.url, f"history entry {version} is malformed ({exc!r})") from exc
        return entries

    # -- the Backend protocol ----------------------------------------------------

    async def connect(self) -> None:
        """Check that Redis answers.

        Raises:
            StoreUnavailableError: Redis cannot be reached within the timeout.
        """
        self._closed.clear()
        await self._call("connecting", lambda r: r.ping())

    async def close(self) -> None:
        """End every notification iterator and close the client if this back end made it."""
        self._closed.set()
        if self._redis is not None and self._owns_client:
            client, self._redis = self._redis, None
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def current_version(self) -> int:
        """Return the newest version, 0 when nothing was ever written.

        Raises:
            StoreUnavailableError: unreachable, or the version key holds no integer.
        """
        raw = await self._call("reading the version", lambda r: r.get(self.keys.version))
        if raw is None:
            return 0
        try:
            return int(raw)
        except ValueError as exc:
            raise StoreUnavailableError(self.url, f"{self.keys.version} holds {raw!r}, not a version") from exc

    async def load(self, version: int | None = None) -> dict[str, Any] | None:
        """Return the document at ``version`` (newest when None), or None if absent.

        Raises:
            StoreUnavailableError: unreachable, or the stored document is not a JSON object.
        """
        if version is None:
            raw = await self._call("reading the policy", lambda r: r.get(self.keys.document))
        else:
            raw = await self._call(f"reading version {version}", lambda r: r.hget(self.keys.documents, version))
        document = self._decode(raw, "policy document")
        if document is not None and not isinstance(document, dict):
            raise StoreUnavailableError(self.url, f"the stored policy document is a JSON {type(document).__name__}, "
                                                  "not an object")
        return document

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        """Store and publish the next version in one atomic Lua script.

        Raises:
            VersionConflictError: the store is not at ``document["version"] - 1``.
            StoreUnavailableError: Redis cannot be reached; nothing was written.
        """
        version = int(document["version"])
        if entry.version != version:
            current = await self.current_version()
            raise VersionConflictError(version - 1, current)
        args = [version, json.dumps(document, sort_keys=True), json.dumps(entry.to_dict(), sort_keys=True),
                self.keys.channel, json.dumps({"version": version})]
        keys = [self.keys.version, self.keys.document, self.keys.documents, self.keys.history]
        # _call makes the client (and registers the script) before the lambda runs;
        # register_script's object sends EVALSHA and falls back to loading the script on NOSCRIPT.
        ok, current = await self._call(f"committing version {version}",
                                       lambda r: self._commit_script(keys=keys, args=args, client=r))
        if not int(ok):
            raise VersionConflictError(version - 1, int(current))

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` entries older than ``before`` (all when None), newest first."""
        current = await self.current_version()
        top = current if before is None else min(before - 1, current)
        return await self._entries_at(list(range(top, max(top - limit, 0), -1)))

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """Return the entries with ``after < version <= upto``, oldest first."""
        return await self._entries_at(list(range(max(after, 0) + 1, upto + 1)))

    async def aux_get(self, table: str) -> dict[str, str]:
        """Return every key of an auxiliary table."""
        raw = await self._call(f"reading table {table}", lambda r: r.hgetall(self.keys.aux(table)))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def aux_put(self, table: str, key: str, value: str | None) -> None:
        """Set (or with None delete) one key of an auxiliary table."""
        name = self.keys.aux(table)
        if value is None:
            await self._call(f"writing table {table}", lambda r: r.hdel(name, key))
        else:
            await self._call(f"writing table {table}", lambda r: r.hset(name, key, value))

    async def notifications(self) -> AsyncIterator[int]:
        """Yield each published version; 0 after every (re)subscribe and on connection loss.

        Never raises for a lost connection: it yields 0 (so the listener checks,
        finds the store unreachable and goes stale), then resubscribes with a
        growing pause of at most 1 s, and yields 0 once subscribed again. A
        malformed message yields 0. Ends when :meth:`close` is called.
        """
        pause = 0.05
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while not self._closed.is_set():
                pubsub = self._client.pubsub()
                try:
                    await self._call("subscribing", lambda _r: pubsub.subscribe(self.keys.channel))  # noqa: B023
                    async with contextlib.aclosing(self._listen(pubsub, closed)) as hints:
                        async for hint in hints:
                            pause = 0.05
                            yield hint
                except (StoreUnavailableError, RedisError, OSError, TimeoutError) as exc:
                    log.debug("Policy notifications from %s lost: %s", self.url, exc)
                else:
                    return  # closed
                finally:
                    with contextlib.suppress(RedisError, OSError, RuntimeError):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                yield 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(closed), timeout=pause)
                pause = min(pause * 2, 1.0)
        finally:
            closed.cancel()

    async def _listen(self, pubsub: Any, closed: asyncio.Future[Any]) -> AsyncGenerator[int, None]:
        """Yield hints from one subscription until ``closed``; raise when the connection is lost."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged = False
        getter: asyncio.Future[Any] | None = None
        try:
            while not _cancel_requested():
                getter = asyncio.ensure_future(pubsub.get_message(timeout=1.0))
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    return
                message, getter = getter.result(), None
                now = loop.time()
                if message is None:
                    if now - heard > _KEEPALIVE + self.timeout:
                        raise StoreUnavailableError(self.url, "the notification connection stopped answering pings")
                    if now - heard > _KEEPALIVE and not pinged:
                        await pubsub.ping()
                        pinged = True
                    continue
                heard, pinged = now, False
                kind = _text(message.get("type"))
                if kind == "subscribe":
                    yield 0  # subscribed (first time, or redis-py resubscribed after a reconnect): re-read
                elif kind == "message":
                    yield _hint(message.get("data"))
            raise asyncio.CancelledError
        finally:
            # A read still in flight holds the connection: stop it before the caller closes the pub/sub.
            if getter is not None and not getter.done():
                getter.cancel()
                await asyncio.wait({getter}, timeout=self.timeout)


def _cancel_requested() -> bool:
    # The client library can swallow a cancellation that lands inside it (seen on
    # Python 3.11 after a reconnect); the request count still shows it, so honour it.
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hint(data: Any) -> int:
    """Return the version a change message announces, or 0 (check) when it is malformed."""
    try:
        version = json.loads(data)["version"]
    except (ValueError, TypeError, KeyError):
        return 0
    return version if isinstance(version, int) and not isinstance(version, bool) and version > 0 else 0
