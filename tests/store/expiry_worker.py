"""A separate OS process for the multi-process tests of expiring changes.

python expiry_worker.py URL [--watch] [--switch]

Opens the store at URL (following changes with --watch; over an outage switch
with --switch) and prints ``state VERSION LEVERAGE STALE`` each time what its
``get()`` answers changes: ``get`` alone, one dict lookup, so a line with the
earlier value shows the end taking effect in this process by itself. Reads
commands from stdin: ``refresh`` reads the store, ``off`` makes it
unreachable (--switch only) and reads it, ``quit`` closes the store and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from policystore import PolicyStore, StoreUnavailableError
from policystore.store.opening import backend_for
from policystore.testing import SwitchableBackend

LEVERAGE = "risk.max_leverage"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _commands(queue: asyncio.Queue[str]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        await queue.put(line.strip() or "quit")
        if not line:
            return


async def main(url: str, *, watch: bool, switch: bool) -> None:
    """Report every change of what this process reads until told to quit."""
    backend = SwitchableBackend(backend_for(url, None)) if switch else url
    store = await PolicyStore.open(backend, watch=watch, lkg_path=None)
    queue: asyncio.Queue[str] = asyncio.Queue()
    reader = asyncio.create_task(_commands(queue))
    shown = None
    _say("ready")
    try:
        while True:
            now = (store.get("version"), store.get(LEVERAGE), store.stale)
            if now != shown:
                shown = now
                _say(f"state {now[0]} {now[1]} {now[2]}")
            with contextlib.suppress(TimeoutError):
                command = await asyncio.wait_for(queue.get(), timeout=0.005)
                if command == "quit":
                    return
                if command == "off" and isinstance(backend, SwitchableBackend):
                    backend.set_available(False)
                with contextlib.suppress(StoreUnavailableError):
                    await store.refresh()
    finally:
        reader.cancel()
        await store.close()
        _say("closed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], watch="--watch" in sys.argv, switch="--switch" in sys.argv))
