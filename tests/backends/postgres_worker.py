"""A separate OS process for the PostgreSQL multi-process tests.

python postgres_worker.py watch URL MODE SECONDS   print "ready V", then "seen V" once get() shows MODE
python postgres_worker.py cas URL COUNT NAME       make COUNT compare-and-set updates; print a JSON summary
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from policystore.errors import VersionConflictError
from policystore.store.store import PolicyStore


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def watch(url: str, mode: str, seconds: float) -> None:
    """Report when this process's local snapshot shows ``mode`` (reads only the local copy)."""
    store = await PolicyStore.open(url, lkg_path=None)
    _say(f"ready {store.snapshot().version}")
    deadline = time.monotonic() + seconds
    try:
        while store.get("active_mode") != mode:
            if time.monotonic() > deadline:
                _say("timeout")
                return
            await asyncio.sleep(0.001)
        _say(f"seen {store.snapshot().version}")
    finally:
        await store.close()


async def cas(url: str, count: int, name: str) -> None:
    """Make ``count`` successful updates, each with expected_version, retrying on conflict."""
    store = await PolicyStore.open(url, watch=False, lkg_path=None)
    versions: list[int] = []
    conflicts = 0
    expected = store.snapshot().version
    # A value no other writer writes: a write equal to the current value changes nothing and makes no version.
    offset = 10_000 * int(name.rsplit("-", 1)[-1])
    try:
        while len(versions) < count:
            try:
                new = await store.update(
                    {"strategies.conservative.cooldown_seconds": offset + len(versions)},
                    updated_by=name,
                    reason=f"{name} update {len(versions)}",
                    expected_version=expected,
                )
            except VersionConflictError as exc:
                conflicts += 1
                expected = exc.current_version
                continue
            versions.append(new.version)
            expected = new.version
    finally:
        await store.close()
    _say(json.dumps({"name": name, "versions": versions, "conflicts": conflicts}))


def main(argv: list[str]) -> None:
    """Run the command named in ``argv``."""
    command, url, *rest = argv
    if command == "watch":
        asyncio.run(watch(url, rest[0], float(rest[1])))
    elif command == "cas":
        asyncio.run(cas(url, int(rest[0]), rest[1]))
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
