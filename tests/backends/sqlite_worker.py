"""A writer process for the multi-process SQLite tests.

Usage: python sqlite_worker.py DB_PATH GO_FILE PATH COUNT [FIRST]

Waits until GO_FILE exists (so that every worker starts together), then makes
COUNT updates of PATH with the values FIRST, FIRST + 1, ..., one version each,
without expected_version, and exits 0.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from policystore import PolicyStore


async def main(db: str, go_file: Path, path: str, count: int, first: int) -> None:
    """Open the store, wait for the start signal, write."""
    store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
    try:
        # A file, not an asyncio.Event: the signal comes from another process.
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(go_file.exists) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        for value in range(first, first + count):
            await store.update({path: value}, updated_by=f"worker-{path}", reason=f"{path}={value}")
    finally:
        await store.close()


if __name__ == "__main__":
    db_arg, go_arg, path_arg, count_arg, *rest = sys.argv[1:]
    asyncio.run(main(db_arg, Path(go_arg), path_arg, int(count_arg), int(rest[0]) if rest else 1))
