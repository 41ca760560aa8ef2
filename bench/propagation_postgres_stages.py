"""Where a change spends its time on PostgreSQL: stage probes for bench/propagation_postgres.py.

Bench-only, as bench/propagation_stages.py, whose store-side probes and report
these reuse: only how a notice reaches the listener, and how a commit reaches
the server, differ from Redis.

A reader's stages: ``receive`` (the commit started in the writer until the
notice was read off the listening connection's socket), ``wake`` (until the
listener began to read it), ``parse`` (its signature checked and its header read), then
the store's stages as on Redis (``hand-over``, ``validate``, ``confirm``,
``install``; ``deliver`` and ``watch`` stay empty: these readers neither
subscribe nor watch).

The writer's stages as on Redis, with the commit's round trip split in two:
``checkout`` (a pooled connection taken) and ``statement`` (the statement sent
until its reply, which includes the commit's flush to disk).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from policystore.backends import _postgres_layout, _postgres_listener, _postgres_session
from propagation_stages import ReaderProbes, WriterProbes, _add, _now

__all__ = ["PostgresReaderProbes", "PostgresWriterProbes"]


class PostgresReaderProbes(ReaderProbes):
    """The stage points of every version one reader process installs from its notice, on PostgreSQL."""

    def install(self) -> None:
        """Wrap the session's socket reader, the listener's notice parser and the store's side."""
        probes = self
        session = _postgres_session.ListeningSession
        readable = session._readable  # noqa: SLF001 - the probe times the socket's reads

        def timed_readable(self: Any) -> None:
            before, at = len(self._payloads), _now()
            readable(self)
            probes._arrivals.extend([at] * max(0, len(self._payloads) - before))

        session._readable = timed_readable  # type: ignore[method-assign]  # noqa: SLF001
        hint_of = _postgres_listener.hint_of

        def timed_hint(payload: str, key: str | None) -> Any:
            taken = _now()
            arrive = probes._arrivals.pop(0) if probes._arrivals else taken
            result = hint_of(payload, key)
            version = getattr(result, "version", None)
            if version is not None:
                probes._version = version
                probes.points.setdefault(version, {}).update(arrive=arrive, taken=taken, parsed=_now())
            return result

        _postgres_listener.hint_of = timed_hint
        self.install_store()


class PostgresWriterProbes(WriterProbes):
    """The stage points of every write of one store on PostgreSQL, the commit's checkout apart."""

    def install(self, backend: Any, layout: Any = _postgres_layout) -> None:
        """Wrap the writer's steps (see :class:`WriterProbes`) and the pooled connection's checkout."""
        super().install(backend, layout)
        current = self
        connection = backend._connection  # noqa: SLF001 - the probe times the checkout

        @contextlib.asynccontextmanager
        async def timed_connection() -> AsyncIterator[Any]:
            async with connection() as conn:
                current._current["checked_out"] = _now()  # the last one of a write is its commit's
                yield conn

        backend._connection = timed_connection  # noqa: SLF001

    def stages(self, kinds: dict[int, str]) -> dict[str, dict[str, list[float]]]:
        """The stages of :class:`WriterProbes`, and the commit's ``checkout`` and ``statement``."""
        out = super().stages(kinds)
        extra = {"checkout": ("serialised", "checked_out"), "statement": ("checked_out", "committed")}
        for name, (a, b) in extra.items():
            out[name] = {}
            for points in self.writes:
                if points.get("version") in kinds and a in points and b in points and points[b] >= points[a]:
                    _add(out[name], kinds[points["version"]], (points[b] - points[a]) / 1e6)
        return out
