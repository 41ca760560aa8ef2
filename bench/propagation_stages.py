"""Where a change spends its time on the way to ``watch()``: stage probes for bench/propagation.py.

Bench-only: the probes wrap methods of the store's parts in the benchmark's own
processes (``--stages``), so a store that is not measured runs none of this.
Each probe notes ``time.perf_counter_ns()`` at a stage boundary; one offset,
taken once, turns it into wall time, so that the reader's points can be set
against the writer's commit.

The writer's stages (one write): ``validate`` (the newest version read and
validated: the round trip and the check), ``build`` (the change applied,
authorised, diffed and stamped), ``commit`` (serialised, then the Lua script's
round trip, which includes the append-only file's fsync).

A reader's stages (one version, in a process that listens): ``receive`` (the
commit started in the writer until the notice's bytes reached this process),
``wake`` (until the listener took the reply), ``parse`` (the notice's header),
``hand-over`` (until the notice installer began), ``validate`` (the document
checked), ``confirm`` (the one read that confirms a loosening notice; nothing
for one that tightens), ``install`` (until the snapshot and the events were
made), ``deliver`` (from there until the subscribe callback had the event) and
``watch`` (from there until ``watch()`` had it).
"""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import Callable
from typing import Any

from policystore.backends import _redis_layout, _redis_subscription
from policystore.backends import redis as redis_backend
from policystore.store import local_copy, notices, outbox, writer

#: perf_counter_ns() + OFFSET = time_ns(), taken once per process.
OFFSET = time.time_ns() - time.perf_counter_ns()

READER_STAGES = ("receive", "wake", "parse", "hand-over", "validate", "confirm", "install", "deliver", "watch")
WRITER_STAGES = ("validate", "read", "check", "build", "commit", "serialise", "round trip", "after")


def _now() -> int:
    return time.perf_counter_ns() + OFFSET


class ReaderProbes:
    """The stage points of every version one reader process installs from its notice.

    Points, by version: ``arrive`` (bytes received), ``taken`` (the listener took
    the reply), ``parsed``, ``install`` (the installer began), ``read`` (the
    document checked), ``confirmed``, ``installed`` (snapshot and events made),
    ``deliver`` (the outbox began), ``subscribe`` and ``watch``.
    """

    def __init__(self) -> None:
        self.points: dict[int, dict[str, int]] = {}
        self._arrivals: list[int] = []
        self._taken = (0, 0)
        self._version = -1

    def _mark(self, point: str, version: int | None = None) -> None:
        self.points.setdefault(self._version if version is None else version, {}).setdefault(point, _now())

    def install(self) -> None:
        """Wrap the parts of the delivery path in this process."""
        probes = self
        subscription = _redis_subscription.Subscription
        received, receive = subscription.data_received, subscription.receive

        def data_received(self: Any, data: bytes) -> None:
            before, at = len(self._replies), _now()
            received(self, data)
            probes._arrivals.extend([at] * max(0, len(self._replies) - before))

        async def timed_receive(self: Any, within: float) -> Any:
            reply = await receive(self, within)
            if isinstance(reply, list) and probes._arrivals:
                probes._taken = (probes._arrivals.pop(0), _now())
            return reply

        subscription.data_received = data_received  # type: ignore[method-assign]
        subscription.receive = timed_receive  # type: ignore[method-assign]
        # Where the listener finds the notice parser: the listener's own module, or the back end's
        # before the listener had one (renamed once too; every layout is probed, for comparisons).
        try:
            listening: Any = importlib.import_module("policystore.backends._redis_listener")
        except ModuleNotFoundError:
            listening = redis_backend
        name = "notice_hint" if hasattr(listening, "notice_hint") else "_hint"
        hint = getattr(listening, name)

        def timed_hint(data: Any) -> Any:
            result = hint(data)
            version = getattr(result, "version", None)
            if version is not None:
                probes._version = version
                arrive, taken = probes._taken
                probes.points.setdefault(version, {}).update(arrive=arrive, taken=taken, parsed=_now())
            return result

        setattr(listening, name, timed_hint)
        self.install_store()

    def install_store(self) -> None:
        """Wrap the store's side of the delivery path: the notice installer, the local copy and the outbox."""
        installer = notices.NoticeInstaller
        self._wrap_async(installer, "install", before="install", after="returned")
        self._wrap(installer, "_read", after="read")
        self._wrap_async(installer, "_confirmed", after="confirmed")
        self._wrap(local_copy.LocalCopy, "install", after="installed")
        self._wrap_async(outbox.Outbox, "deliver", before="deliver")

    def _wrap(self, cls: type, name: str, *, after: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            self._mark(after)
            return result

        setattr(cls, name, wrapped)

    def _wrap_async(self, cls: type, name: str, *, before: str | None = None, after: str | None = None) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                self._mark(before)
            result = await original(*args, **kwargs)
            if after is not None and result is not False:
                self._mark(after)
            return result

        setattr(cls, name, wrapped)

    def seen(self, point: str, version: int) -> None:
        """Note that ``version``'s event reached ``point`` (``subscribe`` or ``watch``)."""
        self.points.setdefault(version, {}).setdefault(point, _now())


class WriterProbes:
    """The stage points of every write of one store, in the writing process."""

    def __init__(self) -> None:
        self.writes: list[dict[str, int]] = []
        self._current: dict[str, int] = {}

    def start(self) -> None:
        """A write begins."""
        self._current = {"start": _now()}
        self.writes.append(self._current)

    def done(self) -> None:
        """The write returned."""
        self._current["done"] = _now()

    def install(self, backend: Any, layout: Any = _redis_layout) -> None:
        """Wrap the writer's steps: the read of the newest version, its check, the serialising and the commit.

        Args:
            backend: the writing store's back end.
            layout: the back end's layout module, whose ``CommitCall.build`` serialises a commit.
        """
        current = self

        load = backend.load

        async def timed_load(*args: Any, **kwargs: Any) -> Any:
            current._current.setdefault("read", _now())
            result = await load(*args, **kwargs)
            current._current.setdefault("read_done", _now())
            return result

        backend.load = timed_load
        latest = writer.load_latest

        async def timed_latest(*args: Any) -> Any:
            result = await latest(*args)
            current._current.setdefault("validated", _now())
            return result

        writer.load_latest = timed_latest  # type: ignore[assignment]
        commit = backend.commit

        async def timed_commit(*args: Any) -> None:
            current._current["version"] = int(args[0]["version"])
            current._current["commit"] = _now()
            await commit(*args)
            current._current["committed"] = _now()

        backend.commit = timed_commit
        build: Callable[..., Any] = layout.CommitCall.build

        def timed_build(*args: Any) -> Any:
            result = build(*args)
            # The first build of the write: the other store of the same process builds its own
            # commits with this one method too, after this write is done.
            current._current.setdefault("serialised", _now())
            return result

        layout.CommitCall.build = timed_build

    def stages(self, kinds: dict[int, str]) -> dict[str, dict[str, list[float]]]:
        """Each stage's durations in ms by kind of write (see :func:`_add`), over the writes that committed."""
        spans = {
            "validate": ("read", "validated"),
            "read": ("read", "read_done"),
            "check": ("read_done", "validated"),
            "build": ("validated", "commit"),
            "commit": ("commit", "committed"),
            "serialise": ("commit", "serialised"),
            "round trip": ("serialised", "committed"),
            "after": ("committed", "done"),
        }
        out: dict[str, dict[str, list[float]]] = {name: {} for name in WRITER_STAGES}
        for points in self.writes:
            if points.get("version") not in kinds:
                continue
            for name, (a, b) in spans.items():
                if a in points and b in points:
                    _add(out[name], kinds[points["version"]], (points[b] - points[a]) / 1e6)
        return out


def _add(into: dict[str, list[float]], kind: str, ms: float) -> None:
    """Add ``ms`` under its kind ("switch/loosen") and under the kind of write alone ("switch")."""
    into.setdefault(kind, []).append(ms)
    into.setdefault(kind.split("/", maxsplit=1)[0], []).append(ms)


def reader_stages(
    points: dict[int, dict[str, int]], committed: dict[int, int], kinds: dict[int, str]
) -> dict[str, dict[str, list[float]]]:
    """Each reader stage's durations in ms by kind of version, over the versions installed from their notice.

    Args:
        points: one reader's points by version (see :class:`ReaderProbes`).
        committed: when each version's commit began, wall time in ns.
        kinds: each version's kind and direction ("switch/loosen").
    """
    out: dict[str, dict[str, list[float]]] = {name: {} for name in READER_STAGES}
    for version, p in points.items():
        if version not in committed or not {"arrive", "install", "installed", "returned"} <= p.keys():
            continue  # read back from the store, not installed from its notice
        read = p.get("read", p["install"])
        confirmed = p.get("confirmed", read)
        marks = (
            ("receive", committed[version], p["arrive"]),
            ("wake", p["arrive"], p["taken"]),
            ("parse", p["taken"], p["parsed"]),
            ("hand-over", p["parsed"], p["install"]),
            ("validate", p["install"], read),
            ("confirm", read, confirmed),
            ("install", confirmed, p["installed"]),
            ("deliver", p["installed"], p.get("subscribe", p["installed"])),
            ("watch", p["installed"], p.get("watch", p["installed"])),
        )
        for name, a, b in marks:
            _add(out[name], kinds[version], (b - a) / 1e6)
    return out


STAGE_KINDS = ("switch/tighten", "switch/loosen", "limit/tighten", "limit/loosen")


def report_stages(
    writer_stages: dict[str, dict[str, list[float]]], reader_stages: dict[str, dict[str, list[float]]]
) -> None:
    """Print each stage's p50 / p99 in ms, by kind of version, for the writer and for the readers."""
    for title, stages in (("writer", writer_stages), ("reader", reader_stages)):
        print(f"\n{title} stages, p50 / p99 ms" + "".join(f"{kind:>21}" for kind in STAGE_KINDS))
        for name, by_kind in stages.items():
            print(f"  {name:<25}" + "".join(_cell(by_kind.get(kind, [])) for kind in STAGE_KINDS))


def _cell(figures: list[float]) -> str:
    if not figures:
        return f"{'-':>21}"
    ordered = sorted(figures)
    p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.99))
    return f"{p50:10.3f} /{p99:9.3f}"
