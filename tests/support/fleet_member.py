"""A member of a store's fleet in an OS process of its own, driven over its stdin, for the fleet's tests.

    python fleet_member.py URL NAME

Opens the store at URL as NAME (following changes, so it is a member), prints
``ready MEMBER_ID PID``, then answers one line of stdin at a time:

``status``  print one JSON line: ``version`` held, ``fleet_error`` (or null) and ``own``,
            this member as its own ``fleet()`` lists it (null when the fleet cannot be read)
``close``   close the store (it leaves the fleet), print ``closed`` and exit

End of input closes it too. Log messages of policystore go to stderr, one per line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from policystore import PolicyStore, PolicyStoreError


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _status(store: PolicyStore) -> dict[str, object]:
    try:
        own = next((m.to_dict() for m in await store.fleet() if m.member_id == store.member_id), None)
    except PolicyStoreError:
        own = None
    error = store.fleet_error
    return {"version": store.snapshot().version, "fleet_error": None if error is None else str(error), "own": own}


async def main(url: str, name: str) -> None:
    """Be a member of the fleet of ``url`` until told to close."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    store = await PolicyStore.open(url, name=name, lkg_path=None)
    _say(f"ready {store.member_id} {os.getpid()}")
    try:
        while True:
            line = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if line == "status":
                _say(json.dumps(await _status(store)))
            elif line in {"close", ""}:
                break
    finally:
        await store.close()
    _say("closed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
