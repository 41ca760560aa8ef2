"""Another process that makes a new store at a path, as ``policystore init`` and ``emergency on`` would.

Usage: python sqlite_replace_worker.py DB_PATH GO_FILE

Opens (creating) the store at DB_PATH, turns the kill switch on, prints
``halted VERSION``, and keeps its connection open until GO_FILE exists: its
versions stay in the file's write-ahead log, where another process closing a
connection to a file that was moved away would find them by name.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from policystore import Actor, PolicyStore, Role


async def main(db: str, go_file: Path) -> None:
    """Create the store, halt it, wait for the signal to exit."""
    store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
    try:
        halted = await store.set_emergency_mode(True, reason="new file, halted", actor=Actor("ops", Role.OPERATOR))
        sys.stdout.write(f"halted {halted.version}\n")
        sys.stdout.flush()
        deadline = time.monotonic() + 120
        while not await asyncio.to_thread(go_file.exists) and time.monotonic() < deadline:  # noqa: ASYNC110 - another process signals
            await asyncio.sleep(0.01)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
