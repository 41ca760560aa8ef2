"""Serve the API and the dashboard on the local SQLite store (what ``make run`` starts).

Creates the store if needed and, on first start (no admin token yet), an
admin token named ``admin``, printed once with the dashboard's address.
Listens on ``$POLICYSTORE_HOST`` (127.0.0.1) and ``$POLICYSTORE_PORT`` (8080),
which ``make run HOST=... PORT=...`` sets; the store is ``$POLICYSTORE_URL``
(``sqlite:///./policystore.db``). A port that is taken, or a host or port that
is no address, ends in one sentence and exit status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

import click

from policystore import PolicyStore
from policystore.cli.server_commands import bind_socket, serve_store
from policystore.errors import PolicyStoreError
from policystore.redaction import redact
from policystore.server.tokens import TokenStore
from policystore.store.urls import DEFAULT_URL

#: The exit status of a usage error, as ``policystore serve`` gives for a busy port.
EXIT_USAGE = 2


async def _first_token(store: PolicyStore, address: str) -> None:
    tokens = TokenStore(store.backend)
    records = await tokens.records()
    print(f"\npolicystore: store {redact(store.url)} at version {store.snapshot().version}")
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


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:  # noqa: PLR2004 - the range of TCP ports
        raise click.UsageError(f"The port {raw!r} is not a number from 0 to 65535.")
    return port


def main() -> int:
    """Start the server; return the exit status."""
    host = os.environ.get("POLICYSTORE_HOST") or "127.0.0.1"
    url = os.environ.get("POLICYSTORE_URL") or DEFAULT_URL
    try:
        port = _port(os.environ.get("POLICYSTORE_PORT") or "8080")
        # Bound before anything else, so a busy port is one sentence, not uvicorn's traceback.
        sock = bind_socket(host, port)
    except click.UsageError as exc:
        hint = "choose another with make run PORT=N HOST=ADDRESS (or POLICYSTORE_PORT, POLICYSTORE_HOST)"
        print(f"Error: {exc.message.rstrip('.')}; {hint}.", file=sys.stderr)
        return EXIT_USAGE
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{sock.getsockname()[1]}/"

    async def ready(store: PolicyStore) -> None:
        await _first_token(store, address)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_store(url, host, port, on_ready=ready, sock=sock, create=True))
    except PolicyStoreError as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
