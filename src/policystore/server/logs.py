"""The server's log lines are written by a thread of their own, never by the event loop.

uvicorn writes a line per request (its access log) and its other messages
straight to stdout and stderr from the event loop. When whatever reads those
(a terminal, a pipe to a log collector) falls behind, the write blocks, and
with it every request, stream and background task of the server: with stdout
a pipe nobody reads, the server stopped answering after some 800 requests.

:func:`logs_written_in_background` has the loggers keep their records in
memory instead; one thread writes them, with the handlers the loggers had, a
batch every :data:`WRITE_INTERVAL` seconds, in one write per stream (a wake-up
or a write per record would make the thread contend with the event loop for
the interpreter at every request). If :data:`BACKLOG` records are waiting, new
ones are dropped and counted, and the count is logged once there is room
again. :class:`BackgroundLogServer` is uvicorn's server doing so while it
serves, every line written before it exits.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Final

import uvicorn

__all__ = ["BACKLOG", "UVICORN_LOGGERS", "WRITE_INTERVAL", "BackgroundLogServer", "logs_written_in_background"]

#: uvicorn's loggers that have handlers of their own (``uvicorn.error`` passes its records to ``uvicorn``).
UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.access")
#: Records waiting to be written, per logger, beyond which new ones are dropped.
BACKLOG: Final = 10_000
#: Seconds between two batches of writes.
WRITE_INTERVAL: Final = 0.1


class _Keep(logging.Handler):
    """Keeps a logger's records for the writer thread, counting those that find the backlog full."""

    def __init__(self, handlers: list[logging.Handler]) -> None:
        super().__init__()
        #: The handlers the logger had, which write the records.
        self.handlers = handlers
        # deque's append and popleft are atomic: the event loop appends, the writer pops.
        self.records: deque[logging.LogRecord] = deque()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock
        if len(self.records) >= BACKLOG:
            self.dropped += 1
            return
        self.tell_dropped(record.name)
        # As it is: uvicorn's access formatter reads the record's args, and formats it in the writer.
        self.records.append(record)

    def tell_dropped(self, name: str) -> None:
        """Keep a warning saying how many records were dropped since the last one, if any were."""
        if self.dropped:
            message = "%d log records were dropped: the log output did not keep up with the server"
            self.records.append(logging.LogRecord(name, logging.WARNING, __file__, 0, message, (self.dropped,), None))
            self.dropped = 0

    def write(self) -> None:
        """Write the records kept so far (from the writer thread)."""
        batch: list[logging.LogRecord] = []
        while self.records:
            batch.append(self.records.popleft())
        for handler in self.handlers:
            records = [record for record in batch if record.levelno >= handler.level]
            if isinstance(handler, logging.StreamHandler):
                _write_at_once(handler, records)
            else:
                for record in records:
                    handler.handle(record)


def _write_at_once(handler: logging.StreamHandler[Any], records: list[logging.LogRecord]) -> None:
    """Write a batch of records to a stream handler's stream in one write and one flush.

    A write per record would give up the interpreter to the event loop's thread at every
    record, and wait to take it back: the batch costs the loop one switch instead of hundreds.
    """
    lines = []
    for record in records:
        if handler.filter(record):
            try:
                lines.append(handler.format(record) + handler.terminator)
            except Exception:  # noqa: BLE001 - what logging.Handler.emit does with a record it cannot format
                handler.handleError(record)
    if not lines:
        return
    handler.acquire()
    try:
        handler.stream.write("".join(lines))
        handler.flush()
    except Exception:  # noqa: BLE001 - logging's own policy: report on stderr, never raise
        handler.handleError(records[-1])
    finally:
        handler.release()


def _write_until(stop: threading.Event, keepers: list[_Keep]) -> None:
    while True:
        stopping = stop.wait(WRITE_INTERVAL)
        for keeper in keepers:
            keeper.write()
        if stopping:
            return


@contextlib.contextmanager
def logs_written_in_background(names: Iterable[str] = UVICORN_LOGGERS) -> Iterator[None]:
    """Within the block, the handlers of the loggers ``names`` run on a thread of their own.

    Call it once those loggers are configured (for uvicorn: after
    ``uvicorn.Config`` is made). On leaving, the records still kept are
    written, with the count of those dropped if any were, and each logger gets
    its handlers back.

    Args:
        names: the loggers whose handlers to move off the calling thread.

    Yields:
        Nothing; the loggers are restored when the block ends.
    """
    moved: list[tuple[logging.Logger, _Keep]] = []
    for name in names:
        logger = logging.getLogger(name)
        if logger.handlers:
            keeper = _Keep(list(logger.handlers))
            moved.append((logger, keeper))
            logger.handlers = [keeper]
    stop = threading.Event()
    writer = threading.Thread(
        target=_write_until, args=(stop, [keeper for _, keeper in moved]), name="policystore-logs", daemon=True
    )
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()  # the records kept until now are written
        for logger, keeper in moved:
            logger.handlers = keeper.handlers
            with keeper.lock or contextlib.nullcontext():
                keeper.tell_dropped(logger.name)  # drops no later record has told of
            keeper.write()  # and any record logged meanwhile


class BackgroundLogServer(uvicorn.Server):
    """uvicorn's server, with its log lines written by :func:`logs_written_in_background` while it serves.

    After a shutdown on SIGTERM or SIGINT, uvicorn raises the signal again
    once it has stopped, and SIGTERM then ends the process at once: the lines
    still kept are written before that, where uvicorn handles signals.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle signals as uvicorn does, with log lines written from a thread meanwhile."""
        with super().capture_signals(), logs_written_in_background():
            yield
