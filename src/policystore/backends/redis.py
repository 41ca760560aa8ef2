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
publishes the new version (number, document and entry) on the namespace's channel,
all in one atomic step,
so no reader can see a version without its history or miss its notice except by
losing the connection (after which :meth:`RedisBackend.notifications` yields 0).
A commit whose reply is lost is re-sent once and recognised by its write id
(see :mod:`policystore.backends._redis_layout`); if no reply comes at all the
commit raises StoreUnavailableError saying the version may have been written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Self, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from policystore.backends._redis_layout import COMMIT_LUA, CommitCall, CommitOutcome, RedisKeys, raw_reply
from policystore.backends._redis_listener import RedisListener
from policystore.backends._redis_reads import DirectCalls
from policystore.backends._redis_records import RedisRecords
from policystore.backends._redis_urls import DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, parse_redis_url
from policystore.backends._report_requests import report_request
from policystore.backends.base import Published
from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import HistoryEntry
from policystore.redaction import redact, redact_text

__all__ = ["RedisBackend", "RedisKeys"]

log = logging.getLogger("policystore.redis")
T = TypeVar("T")


class RedisBackend:
    """A policy kept in Redis, shared by every process and host that opens the same URL.

    Build one with :meth:`from_url` or :meth:`from_client`.

    Every read asks Redis for the stored bytes as they are, whatever the
    client's ``decode_responses``: a caller's decoding client reads, writes and
    follows changes exactly as one without it does.

    Args:
        factory: makes the Redis client on first use (inside the event loop).
        url: the store's URL; only its redacted form (see :func:`~policystore.redaction.redact`) is kept.
        namespace: the key prefix's name.
        timeout: seconds any one call may take before it fails.
        owns_client: close the client in :meth:`close` (False for a caller's client).
        password: a password given apart from the URL (a caller's client's), kept out of messages too.
    """

    def __init__(
        self,
        factory: Callable[[], Redis],
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        owns_client: bool = True,
        password: str | None = None,
    ) -> None:
        self.url = redact(url)
        # A closure, not the URL: nothing that shows this object's attributes shows the password.
        self._hide: Callable[[str], str] = lambda text: redact_text(text, url, also=(password,))
        self.keys = RedisKeys.for_namespace(namespace)
        self.namespace = namespace
        self.timeout = timeout
        self._factory = factory
        self._owns_client = owns_client
        self._redis: Redis | None = None
        self._commit_script: Any = None
        self._closed = asyncio.Event()
        #: The reads that confirm change notices and the fleet's reports, on a connection of their
        #: own (see :mod:`._redis_reads`).
        self._direct = DirectCalls(
            lambda: self._client,
            self.url,
            timeout=timeout,
            fallback=lambda what, *words: self._call(what, lambda r: raw_reply(r, *words)),
            closed=self._closed.is_set,
        )
        #: The records beside the policy, a hash per collection (see :mod:`._redis_records`).
        self.records = RedisRecords(self._call, self.keys, self.url, tell=self._direct.tell)
        #: Follows the namespace's channel and answers the fleet's report requests heard on it
        #: (see :mod:`._redis_listener`).
        self._listener = RedisListener(
            self._call, self.keys.channel, self.url, timeout=timeout, closed=self._closed, hide=self._hide
        )

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Return an unconnected back end for a ``redis://``, ``rediss://``, ``unix://`` or Sentinel URL.

        Raises:
            PolicyValidationError: the URL, its namespace or its timeout is malformed.
        """
        target = parse_redis_url(url)
        return cls(target.factory, url, namespace=target.namespace, timeout=target.timeout)

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
        password = kwargs.get("password")
        return cls(
            lambda: client,
            url,
            namespace=namespace,
            timeout=timeout,
            owns_client=False,
            password=password if isinstance(password, str) else None,
        )

    # -- plumbing --------------------------------------------------------------

    @property
    def _client(self) -> Redis:
        if self._redis is None:
            self._redis = self._factory()
            self._commit_script = self._redis.register_script(COMMIT_LUA)
        return self._redis

    async def _call(self, what: str, operation: Callable[[Redis], Awaitable[T]]) -> T:
        """Run one operation within the timeout, turning every Redis failure into StoreUnavailableError."""
        try:
            async with asyncio.timeout(self.timeout):
                return await operation(self._client)
        except TimeoutError as exc:
            raise StoreUnavailableError(self.url, f"no answer within {self.timeout:g} s while {what}") from exc
        except (RedisError, OSError) as exc:
            reason = f"Redis failed while {what} ({type(exc).__name__}: {self._hide(str(exc)).rstrip('.')})"
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
        raw = await self._call("reading history", lambda r: raw_reply(r, "HMGET", self.keys.history, *versions))
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

    async def connect(self, *, create: bool = True) -> None:  # noqa: ARG002 - nothing is created on connect
        """Check that Redis answers; nothing is created (an empty namespace is version 0).

        Raises:
            StoreUnavailableError: Redis cannot be reached within the timeout.
        """
        self._closed.clear()
        await self._call("connecting", lambda r: r.ping())

    async def close(self) -> None:
        """End every notification iterator and close the client if this back end made it."""
        self._closed.set()
        self._direct.close()
        if self._redis is not None and self._owns_client:
            client, self._redis = self._redis, None
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def current_version(self) -> int:
        """Return the newest version, 0 when nothing was ever written.

        Raises:
            StoreUnavailableError: unreachable, or the version key holds no integer.
        """
        raw = await self._call("reading the version", lambda r: raw_reply(r, "GET", self.keys.version))
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
            raw = await self._call("reading the policy", lambda r: raw_reply(r, "GET", self.keys.document))
        else:
            raw = await self._call(
                f"reading version {version}", lambda r: raw_reply(r, "HGET", self.keys.documents, version)
            )
        document = self._decode(raw, "policy document")
        if document is not None and not isinstance(document, dict):
            raise StoreUnavailableError(
                self.url, f"the stored policy document is a JSON {type(document).__name__}, not an object"
            )
        return document

    def newest_text(self) -> asyncio.Future[bytes | None]:
        """Start one read of the newest document as stored: the text its notice carried.

        The request leaves at the call (see :mod:`._redis_reads`), so the round
        trip overlaps what the caller does next.

        Returns:
            A future of the text, None when the store holds no policy; it raises
            StoreUnavailableError when the read fails or takes longer than the timeout.
        """
        return self._direct.read("GET", self.keys.document)

    def version_text(self, version: int) -> asyncio.Future[bytes | None]:
        """Start one read of the text version ``version`` was stored as, in the store's history.

        The request leaves at the call, on the connection :meth:`newest_text` uses.

        Returns:
            A future of the text, None when the history holds no such version; it raises
            StoreUnavailableError when the read fails or takes longer than the timeout.
        """
        return self._direct.read("HGET", self.keys.documents, str(version))

    async def request_reports(self, version: int) -> None:
        """Ask the fleet's members to report ``version`` now (see :class:`~.base.ReportRequests`).

        Raises:
            StoreUnavailableError: Redis could not be reached.
        """
        message = report_request(version)
        await self._call("asking the fleet to report", lambda r: raw_reply(r, "PUBLISH", self.keys.channel, message))

    def on_report_request(self, answer: Callable[[int], None] | None) -> None:
        """Call ``answer`` with the version of each report request heard on the channel."""
        self._listener.report_requested = answer

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        """Store and publish the next version in one atomic Lua script.

        Raises:
            VersionConflictError: the store is not at ``document["version"] - 1``.
            StoreUnavailableError: Redis cannot be reached or refused the script. If
                the connection failed after the call was sent, the version may have
                been written, and the message says so.
        """
        version = int(document["version"])
        if entry.version != version:
            current = await self.current_version()
            raise VersionConflictError(version - 1, current)
        outcome = await self._run_commit(CommitCall.build(self.keys, document, entry))
        if not outcome.committed:
            raise VersionConflictError(version - 1, outcome.current)
        if outcome.replayed:
            log.info(
                "Version %d reached %s before its reply was lost; the re-sent commit confirmed it.", version, self.url
            )

    async def _run_commit(self, call: CommitCall) -> CommitOutcome:
        """Send one commit script; the client re-sends it once if the connection drops."""
        try:
            # _call makes the client (and registers the script) before the lambda runs;
            # register_script's object sends EVALSHA and falls back to loading the script on NOSCRIPT.
            reply = await self._call(
                f"committing version {call.version}",
                lambda r: self._commit_script(keys=call.keys, args=call.args, client=r),
            )
        except StoreUnavailableError as exc:
            if isinstance(exc.__cause__, ResponseError) and str(exc.__cause__).startswith("policystore:"):
                raise  # the script's own refusal, which comes before its first write
            # The call may have reached Redis and run before the connection failed, the
            # time ran out, or a re-send was refused, so neither a conflict nor success
            # may be reported.
            reason = f"{exc.reason}; version {call.version} may or may not have been written, so read it back first"
            raise StoreUnavailableError(self.url, reason) from exc.__cause__
        try:
            return CommitOutcome.from_reply(reply)
        except (TypeError, ValueError) as exc:
            reason = f"committing version {call.version} got the reply {reply!r}, which is not a commit status"
            raise StoreUnavailableError(self.url, reason) from exc

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` entries older than ``before`` (all when None), newest first."""
        current = await self.current_version()
        top = current if before is None else min(before - 1, current)
        return await self._entries_at(list(range(top, max(top - limit, 0), -1)))

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """Return the entries with ``after < version <= upto``, oldest first."""
        return await self._entries_at(list(range(max(after, 0) + 1, upto + 1)))

    def notifications(self) -> AsyncIterator[int | Published]:
        """Yield each published version; 0 after every (re)subscribe and on connection loss.

        A notice that carries its document and history entry is yielded as
        :class:`Published`; one with only a version, as that number.

        Never raises for a lost connection: it yields 0 (so the listener checks,
        finds the store unreachable and goes stale), then resubscribes with a
        growing pause of at most 1 s, and yields 0 once subscribed again. A
        malformed message yields 0. Ends when :meth:`close` is called (see
        :mod:`._redis_listener`).
        """
        return self._listener.notifications()
