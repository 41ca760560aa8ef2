"""Helpers for tests of code that uses policystore, and for tests of back ends.

- :func:`memory_store` opens a store in this process's memory in one line;
  :func:`sync_memory_store` does the same for code without an event loop, and
  :func:`memory_url` names a new memory store (to open it your own way).
- :class:`EventRecorder` subscribes to a store, keeps the events it delivers
  and waits for a count or a version.
- :class:`SwitchableBackend` wraps any back end with an outage switch: the
  store becomes unreachable and reachable again, as when a server goes away.
- :mod:`policystore.testing.conformance` is the back-end conformance suite
  (:func:`run_conformance`, :data:`CHECKS`, :class:`BackendFactory`) that every
  back end, ours or your own, runs to show it keeps the store's contract;
  :mod:`policystore.testing.pytest` makes its checks pytest tests.

Importing this module imports no test framework::

    from policystore.testing import EventRecorder, memory_store

    store = await memory_store()
    recorder = EventRecorder(store)
    await store.switch_mode("DEFENSIVE", reason="calm")
    assert [2] == [e.version for e in await recorder.wait_for(1)]
"""

from policystore.testing._memory import memory_store, memory_url, sync_memory_store
from policystore.testing._recorder import EventRecorder
from policystore.testing._switch import SwitchableBackend
from policystore.testing.conformance import CHECKS, BackendFactory, ConformanceError, run_conformance

__all__ = [
    "CHECKS",
    "BackendFactory",
    "ConformanceError",
    "EventRecorder",
    "SwitchableBackend",
    "memory_store",
    "memory_url",
    "run_conformance",
    "sync_memory_store",
]
