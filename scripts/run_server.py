"""Serve the API and the dashboard on the local SQLite store (what ``make run`` starts).

Creates the store if needed and, on first start (no admin token yet), an
admin token named ``admin``, printed once with the dashboard's address.
Listens on ``$POLICYSTORE_HOST`` (127.0.0.1) and ``$POLICYSTORE_PORT`` (8080);
the store is ``$POLICYSTORE_URL`` (``sqlite:///./policystore.db``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from policystore import PolicyStore
from policystore.cli.server_commands import serve_store
from policystore.server.tokens import TokenStore
from policystore.store.urls import DEFAULT_URL


async def _first_token(store: PolicyStore, address: str) -> None:
    tokens = TokenStore(store.backend)
    records = await tokens.records()
    print(f"\npolicystore: store {store.url} at version {store.snapshot().version}")
    print(f"Dashboard: {address}")
    if any(r.role.value == "admin" for r in records):
        print(
            "Sign in with an existing token (list them: policystore token list; "
            "make one: policystore token create --role admin --name NAME).\n",
            flush=True,
        )
        return
    name = "admin" if "admin" not in {r.name for r in records} else "admin-first-start"
    secret = await tokens.create(name, "admin")
    print(f"Admin token (shown once; the store keeps only its hash): {secret}\n", flush=True)


def main() -> None:
    """Start the server."""
    host = os.environ.get("POLICYSTORE_HOST", "127.0.0.1")
    port = int(os.environ.get("POLICYSTORE_PORT", "8080"))
    url = os.environ.get("POLICYSTORE_URL") or DEFAULT_URL
    address = f"http://{host}:{port}/"

    async def ready(store: PolicyStore) -> None:
        await _first_token(store, address)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_store(url, host, port, on_ready=ready))


if __name__ == "__main__":
    main()
