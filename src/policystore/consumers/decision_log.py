"""Decision logs: every signal's decision, durably, as JSON Lines.

One line per decision (see :meth:`ExecutionDecision.to_dict`): time, symbol,
strategy, accepted, reason, size, policy version and mode. Each record is
written and flushed at once; ``fsync`` runs every ``sync_every`` records
(default 1: every decision is on disk before ``record`` returns) and on
:meth:`JsonlDecisionLog.close`. A larger ``sync_every`` trades the last few
records on a machine crash (not a process crash: they were flushed to the OS)
for throughput. A torn last line left by a crash is skipped on reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from policystore.consumers.execution import ExecutionDecision

__all__ = ["DEFAULT_LOG", "JsonlDecisionLog", "MemoryDecisionLog", "read_decisions"]

#: The log file ``policystore decisions`` reads when no ``--log`` is given.
DEFAULT_LOG = "decisions.jsonl"


class JsonlDecisionLog:
    """Appends decisions to a JSON Lines file.

    Args:
        path: the file; created with its directory if missing, appended to otherwise.
        sync_every: fsync after this many records (1: every record).

    Raises:
        ValueError: ``sync_every`` below 1.
        OSError: the file cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, sync_every: int = 1) -> None:
        if sync_every < 1:
            raise ValueError(f"sync_every must be at least 1 (got {sync_every})")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._sync_every = sync_every
        self._unsynced = 0

    def record(self, decision: ExecutionDecision) -> None:
        """Append one decision.

        Raises:
            ValueError: the log is closed.
            OSError: the write failed.
        """
        self.write(decision.to_dict())

    def write(self, record: dict[str, Any]) -> None:
        """Append one JSON-ready record.

        Raises:
            ValueError: the log is closed.
            OSError: the write failed.
        """
        if self._file is None:
            raise ValueError(f"the decision log {self.path} is closed")
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        self._unsynced += 1
        if self._unsynced >= self._sync_every:
            os.fsync(self._file.fileno())
            self._unsynced = 0

    def close(self) -> None:
        """Sync what is left and close the file; closing twice is harmless."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class MemoryDecisionLog:
    """Keeps decisions in a list: for tests and replays."""

    def __init__(self) -> None:
        self.decisions: list[ExecutionDecision] = []

    def record(self, decision: ExecutionDecision) -> None:
        """Keep one decision."""
        self.decisions.append(decision)


def read_decisions(path: str | os.PathLike[str], limit: int | None = None) -> list[dict[str, Any]]:
    """Return the records of a decision log, oldest first; the last ``limit`` if given.

    Args:
        path: the log file.
        limit: how many of the newest records to return.

    Returns:
        The records; a torn (partly written) final line is skipped.

    Raises:
        OSError: the file cannot be read.
        ValueError: a line other than the last is not a JSON object (the message gives its number).
    """
    records = list(_records(Path(path)))
    return records if limit is None else records[-limit:] if limit > 0 else []


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number >= last:  # the final record, torn by a crash mid-write
                continue
            raise ValueError(f"{path}: line {number} is not valid JSON") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object")  # noqa: TRY004 - bad file content, not a bad argument type
        yield record
