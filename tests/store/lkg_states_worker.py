"""A process killed with SIGKILL right after a write that makes a trading state stricter returns.

Usage: python lkg_states_worker.py DB_PATH LKG_PATH ACTION PATH VALUE

Opens the SQLite store with its last-known-good copy at LKG_PATH, waits until
that copy holds the first version (every state ``active``), then, for ACTION
``write``, sets PATH to VALUE as an operator; for ``again``, a second store in
this process (keeping no copy) sets it first, and the first store's same
write then finds it already set and changes nothing. The moment the call
returns, the process kills itself with SIGKILL: no close, no flush, no task
left to run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from policystore import Actor, PolicyStore, Role
from policystore.store.lkg import LastKnownGood

OPERATOR = Actor("ops", Role.OPERATOR)


async def main(db: str, lkg: Path, action: str, path: str, value: str) -> None:
    """Open, wait for the first saved copy, write, die."""
    store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=lkg)
    while (saved := LastKnownGood(lkg).read()) is None or saved.version < 1:  # noqa: ASYNC110 - saved by a thread
        await asyncio.sleep(0.01)
    if action == "again":
        other = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        await other.update({path: value}, reason="desk halt", actor=OPERATOR)
    written = await store.update({path: value}, reason="desk halt", actor=OPERATOR)
    if written.version != 2:  # the test reads version 2 back: say so rather than die in silence
        sys.exit(f"the write returned version {written.version}")
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:6]))
