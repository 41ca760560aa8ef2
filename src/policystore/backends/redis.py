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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Final, Self, TypeVar

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError

from policystore.backends._redis_layout import COMMIT_LUA, CommitCall, CommitOutcome, RedisKeys, notice_hint, raw_reply
from policystore.backends._redis_reads import DirectCalls
from policystore.backends._redis_records import RedisRecords
from policystore.backends._redis_subscription import RedisPyReplies, Replies, Subscription, endpoint_of
from policystore.backends._redis_urls import DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, parse_redis_url
from policystore.backends._report_requests import report_request, requested_version
from policystore.backends.base import Published
from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import HistoryEntry
from policystore.redaction import redact, redact_text

__all__ = ["RedisBackend", "RedisKeys"]

log = logging.getLogger("policystore.redis")
T = TypeVar("T")

# Seconds of silence on the pub/sub connection before it is pinged; a ping
# unanswered within the timeout means the connection is dead even if TCP has not noticed.
_KEEPALIVE: Final = 5.0
#: Seconds one wait for a notice lasts before the listener checks whether it was closed.
_POLL: Final = 0.25
#: The pause before each new subscription after a lost one: 0.05 s, doubling to at most 1 s.
_RESUBSCRIBE: Final = ExponentialBackoff(cap=1.0, base=0.05)


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
        #: Answers the fleet's report requests heard on the channel (see on_report_request).
        self._report_requested: Callable[[int], None] | None = None

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
        self._report_requested = answer

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

    async def notifications(self) -> AsyncIterator[int | Published]:
        """Yield each published version; 0 after every (re)subscribe and on connection loss.

        A notice that carries its document and history entry is yielded as
        :class:`Published`; one with only a version, as that number.

        Never raises for a lost connection: it yields 0 (so the listener checks,
        finds the store unreachable and goes stale), then resubscribes with a
        growing pause of at most 1 s, and yields 0 once subscribed again. A
        malformed message yields 0. Ends when :meth:`close` is called.
        """
        failures = 0
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while not self._closed.is_set():
                replies: Replies | None = None
                try:
                    replies = await self._call("subscribing", lambda _r: self._subscribe())
                    async with contextlib.aclosing(self._listen(replies)) as hints:
                        async for hint in hints:
                            failures = 0
                            yield hint
                except (StoreUnavailableError, RedisError, OSError, TimeoutError) as exc:
                    log.debug("Policy notifications from %s lost: %s", self.url, self._hide(str(exc)))
                else:
                    return  # closed
                finally:
                    if replies is not None:
                        with contextlib.suppress(RedisError, OSError, RuntimeError):
                            await replies.aclose()
                yield 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(closed), timeout=_RESUBSCRIBE.compute(failures))
                failures += 1
        finally:
            closed.cancel()

    async def _subscribe(self) -> Replies:
        """Subscribe to the namespace's channel; directly when the connection allows (see ``_redis_subscription``)."""
        endpoint = endpoint_of(self._client)
        if endpoint is not None:
            return await Subscription.open(endpoint, self.keys.channel)
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.keys.channel)
        except BaseException:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            raise
        return RedisPyReplies(pubsub)

    def _hint(self, data: Any) -> int | Published | None:
        """What a message on the channel announces; None for a report request, answered here (no change)."""
        asked = requested_version(data)
        if asked is None:
            return notice_hint(data)
        if self._report_requested is not None:
            self._report_requested(asked)
        return None

    async def _listen(self, replies: Replies) -> AsyncGenerator[int | Published, None]:
        """Yield hints from one subscription until :meth:`close`; raise when the connection is lost.

        Replies are awaited directly, not through a helper task per message:
        every process on a host wakes for every change, so each loop iteration
        saved per message is CPU the other processes get back. A close is
        noticed within :data:`_POLL` seconds.
        """
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged = False
        while not self._closed.is_set():
            if _cancel_requested():
                raise asyncio.CancelledError
            reply = await replies.receive(_POLL)
            now = loop.time()
            if reply is None:
                if now - heard > _KEEPALIVE + self.timeout:
                    raise StoreUnavailableError(self.url, "the notification connection stopped answering pings")
                if now - heard > _KEEPALIVE and not pinged:
                    await replies.ping()
                    pinged = True
                continue
            heard, pinged = now, False
            if isinstance(reply, Exception):  # an error reply, such as a wrong password
                raise StoreUnavailableError(self.url, f"Redis refused the subscription ({self._hide(str(reply))})")
            if not isinstance(reply, list) or len(reply) < 3:  # noqa: PLR2004 - [kind, channel, data]
                continue  # OK to AUTH, the answer to a ping
            kind = _text(reply[0])
            if kind == "subscribe":
                yield 0  # subscribed (first time, or resubscribed after a reconnect): re-read
            elif kind == "message" and (hint := self._hint(reply[2])) is not None:
                yield hint


def _cancel_requested() -> bool:
    # The client library can swallow a cancellation that lands inside it (seen on
    # Python 3.11 after a reconnect); the request count still shows it, so honour it.
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
