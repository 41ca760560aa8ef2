"""Following a namespace's channel across reconnects: the hints of :meth:`RedisBackend.notifications`.

Every process keeps one subscription to its namespace's channel (read straight
off its socket where :mod:`._redis_subscription` can, else through redis-py).
The iterator yields 0 once subscribed (first time and after every
resubscribe), each notice as :func:`~._redis_layout.notice_hint` reads it, and
0 when the connection is lost, since notices published while no one listened
are gone and the store must be read. Report requests heard on the channel are
answered here, not yielded. A silent connection is pinged, and one that does
not answer in time counts as lost.

This is the path every change takes to ``watch()`` in every process on a host,
so each message costs one turn of the listener's loop and nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Final

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from policystore.backends._redis_layout import notice_hint
from policystore.backends._redis_subscription import RedisPyReplies, Replies, Subscription, endpoint_of
from policystore.backends._report_requests import requested_version
from policystore.backends.base import Published
from policystore.errors import StoreUnavailableError

__all__ = ["RedisListener"]

log = logging.getLogger("policystore.redis")

# Seconds of silence on the pub/sub connection before it is pinged; a ping
# unanswered within the timeout means the connection is dead even if TCP has not noticed.
_KEEPALIVE: Final = 5.0
#: Seconds one wait for a notice lasts before the listener checks whether it was closed.
_POLL: Final = 0.25
#: The pause before each new subscription after a lost one: 0.05 s, doubling to at most 1 s.
_RESUBSCRIBE: Final = ExponentialBackoff(cap=1.0, base=0.05)


class RedisListener:
    """The notification iterators of one Redis back end, and the report requests they hear.

    Args:
        call: the back end's way to run one operation on its client within its timeout,
            turning every Redis failure into StoreUnavailableError.
        channel: the namespace's channel.
        url: the store's URL without its password, for errors.
        timeout: seconds a ping may go unanswered (on top of the keepalive) before the
            connection counts as lost.
        closed: set while the back end is closed; every iterator ends within :data:`_POLL` seconds.
        hide: removes the store's password from a text.
    """

    def __init__(
        self,
        call: Callable[[str, Callable[[Redis], Awaitable[Replies]]], Awaitable[Replies]],
        channel: str,
        url: str,
        *,
        timeout: float,
        closed: asyncio.Event,
        hide: Callable[[str], str],
    ) -> None:
        self._call = call
        self._channel = channel
        self.url = url
        self.timeout = timeout
        self._closed = closed
        self._hide = hide
        #: Answers the fleet's report requests heard on the channel (see ``RedisBackend.on_report_request``).
        self.report_requested: Callable[[int], None] | None = None

    async def notifications(self) -> AsyncIterator[int | Published]:
        """Yield each published version; 0 after every (re)subscribe and on connection loss.

        See :meth:`RedisBackend.notifications <policystore.backends.redis.RedisBackend.notifications>`.
        """
        failures = 0
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while not self._closed.is_set():
                replies: Replies | None = None
                try:
                    # _call hands over the back end's client, whose connection the subscription copies.
                    replies = await self._call("subscribing", self._subscribe)
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

    async def _subscribe(self, client: Redis) -> Replies:
        """Subscribe to the namespace's channel; directly when the connection allows (see ``_redis_subscription``)."""
        endpoint = endpoint_of(client)
        if endpoint is not None:
            return await Subscription.open(endpoint, self._channel)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
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
        if self.report_requested is not None:
            self.report_requested(asked)
        return None

    async def _listen(self, replies: Replies) -> AsyncGenerator[int | Published, None]:
        """Yield hints from one subscription until the back end closes; raise when the connection is lost.

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
