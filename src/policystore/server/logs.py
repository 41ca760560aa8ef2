"""The server's log lines are written by a thread of their own, never by the event loop.

uvicorn writes a line per request (its access log) and its other messages
straight to stdout and stderr from the event loop. When whatever reads those
(a terminal, a pipe to a log collector) falls behind, the write blocks, and
with it every request, stream and background task of the server: with stdout
a pipe nobody reads, the server stops answering after a few hundred requests.
:func:`logs_written_in_background` hands each record to a queue instead; one
thread per logger writes them with the handlers the logger had. If the
queue fills, records are dropped, counted, and the count is logged once there
is room again. :class:`BackgroundLogServer` is uvicorn's server doing so while
it serves, every line written before it exits.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import queue
from collections.abc import Iterable, Iterator
from typing import Final

import uvicorn

__all__ = ["QUEUE_SIZE", "UVICORN_LOGGERS", "BackgroundLogServer", "logs_written_in_background"]

#: uvicorn's loggers that have handlers of their own (``uvicorn.error`` passes its records to ``uvicorn``).
UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.access")
#: Records waiting to be written, per logger, before new ones are dropped.
QUEUE_SIZE: Final = 10_000


class _Handoff(logging.handlers.QueueHandler):
    """Puts records on a bounded queue as they are, counting those that find it full."""

    def __init__(self, records: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Unchanged: uvicorn's access formatter reads the record's args, which the default prepare() drops.
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            if self.dropped:
                self.queue.put_nowait(self._dropped_notice(record))
                self.dropped = 0
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _dropped_notice(self, record: logging.LogRecord) -> logging.LogRecord:
        message = "%d log records were dropped: the log output did not keep up with the server"
        return logging.LogRecord(record.name, logging.WARNING, __file__, 0, message, (self.dropped,), None)


@contextlib.contextmanager
def logs_written_in_background(names: Iterable[str] = UVICORN_LOGGERS) -> Iterator[None]:
    """Within the block, the handlers of the loggers ``names`` run on a thread per logger.

    Call it once those loggers are configured (for uvicorn: after
    ``uvicorn.Config`` is made). On leaving, the records still queued are
    written and each logger gets its handlers back.

    Args:
        names: the loggers whose handlers to move off the calling thread.

    Yields:
        Nothing; the loggers are restored when the block ends.
    """
    moved: list[tuple[logging.Logger, list[logging.Handler], logging.handlers.QueueListener]] = []
    try:
        for name in names:
            logger = logging.getLogger(name)
            handlers = list(logger.handlers)
            if not handlers:
                continue
            records: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_SIZE)
            listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
            listener.start()
            moved.append((logger, handlers, listener))
            logger.handlers = [_Handoff(records)]
        yield
    finally:
        for logger, handlers, listener in moved:
            logger.handlers = handlers
            listener.stop()  # writes what is queued, then ends the thread


class BackgroundLogServer(uvicorn.Server):
    """uvicorn's server, with its log lines written by :func:`logs_written_in_background` while it serves.

    After a shutdown on SIGTERM or SIGINT, uvicorn raises the signal again
    once it has stopped, and SIGTERM then ends the process at once: the lines
    still queued are written before that, where uvicorn handles signals.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle signals as uvicorn does, with log lines written from threads meanwhile."""
        with super().capture_signals(), logs_written_in_background():
            yield
