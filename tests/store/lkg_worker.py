"""A process killed with SIGKILL right after a write that stops trading returns.

Usage: python lkg_worker.py DB_PATH LKG_PATH ACTION

Opens the SQLite store with its last-known-good copy at LKG_PATH, waits until
that copy holds the first version (kill switch off), makes the write ACTION
names (``emergency``: ``set_emergency_mode(True)``; ``breaker``: a day's loss
past the limit reported to ``report_daily_loss``) and, the moment the call
returns, kills itself with SIGKILL: no close, no flush, no task left to run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from policystore import Actor, PolicyStore, Role
from policystore.store.lkg import LastKnownGood


async def main(db: str, lkg: Path, action: str) -> None:
    """Open, wait for the first saved copy, write, die."""
    store = await PolicyStore.open(f"sqlite:///{db}", lkg_path=lkg)
    while (saved := LastKnownGood(lkg).read()) is None or saved.version < 1:  # noqa: ASYNC110 - saved by a thread
        await asyncio.sleep(0.01)
    if action == "emergency":
        await store.set_emergency_mode(True, reason="venue down", actor=Actor("ops", Role.OPERATOR))
    else:
        await store.report_daily_loss(0.5, reporter="risk-engine")
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
