"""``policystore serve`` and ``policystore token create|list|revoke``.

Loaded only when used (the web stack is heavy, and comes with the ``server``
extra). Like every command they take the shared ``--store``, ``--json`` and
``--role`` options, also when run on their own outside the ``policystore``
group, and run the store through :meth:`CliContext.run`. None of them creates a
store, except ``serve --create``: a missing one is a
:class:`~policystore.errors.StoreUnavailableError`, naming it (run
``policystore init`` first).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final

import click

from policystore.cli.context import CliContext, pass_cli
from policystore.cli.group import PolicyStoreGroup, add_shared_options
from policystore.errors import StoreUnavailableError
from policystore.redaction import redact
from policystore.server.tokens import TokenStore
from policystore.store.store import PolicyStore

__all__ = ["WS_MAX_SIZE", "bind_socket", "event_loop_factory", "serve", "serve_store", "token"]

#: Largest stream message accepted from a client. Clients only ever send their token,
#: so this is generous; uvicorn's default (16 MiB) would let one client pin that much memory.
WS_MAX_SIZE: Final = 64 * 1024


def bind_socket(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to ``host:port``, ready for uvicorn to listen on.

    Binding here, before the store is opened and uvicorn starts, turns a busy
    port into one sentence and a usage error instead of uvicorn's log lines.

    Args:
        host: the address (or name) to listen on.
        port: the port; 0 picks a free one.

    Returns:
        The bound socket.

    Raises:
        click.UsageError: the address cannot be resolved or bound (exit 2).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise click.UsageError(f"Cannot listen on {host}:{port}: {_reason(exc)}.") from exc
    sock = socket.socket(family, kind, proto)
    try:
        # Lets a restarted server take over a port still in TIME_WAIT; a live listener still refuses.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise click.UsageError(f"Cannot listen on {host}:{port}: {_reason(exc)}.") from exc
    return sock


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return the factory of the event loop uvicorn runs on by default, or None for asyncio's own.

    That is uvloop when installed (``uvicorn[standard]`` brings it). :func:`serve_store`
    is a coroutine, so whoever runs it chooses the loop; ``policystore serve`` runs it on
    this one.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the server extra installs it
        return None
    return uvloop.new_event_loop


def _reason(exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join(text.split()).rstrip(".").lower() or type(exc).__name__


async def serve_store(
    url: str,
    host: str,
    port: int,
    *,
    cors_origins: Sequence[str] = (),
    heartbeat: float = 15.0,
    log_level: str = "info",
    on_ready: Callable[[PolicyStore], Awaitable[None]] | None = None,
    sock: socket.socket | None = None,
    create: bool = True,
    decisions: str | None = None,
    name: str | None = None,
) -> None:
    """Open the store at ``url`` and serve it over HTTP until interrupted.

    Args:
        url: the store URL.
        host: the address to listen on.
        port: the port to listen on.
        cors_origins: origins allowed to call the API from a browser.
        heartbeat: seconds between stream heartbeats.
        log_level: uvicorn's log level.
        on_ready: called with the open store before serving (e.g. to print a first token).
        sock: a socket already bound by :func:`bind_socket` (default: bind ``host:port`` now).
            It is closed when serving ends.
        create: create the store if there is none (``policystore serve`` passes
            False unless ``--create`` is given).
        decisions: a decision log every write's dry run decides again under the change.
        name: the server's name in the store's fleet (it follows changes, so it is a member).

    Raises:
        click.UsageError: ``host:port`` cannot be bound.
        StoreUnavailableError: with ``create=False``, there is no store at ``url``.
    """
    import uvicorn

    from policystore.server.app import create_app
    from policystore.server.logs import BackgroundLogServer

    listening = sock if sock is not None else bind_socket(host, port)
    try:
        store = await PolicyStore.open(url, create=create, name=name)
        try:
            if on_ready is not None:
                await on_ready(store)
            app = create_app(store, cors_origins=cors_origins, heartbeat=heartbeat, decisions=decisions)
            config = uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level=log_level,
                ws="websockets-sansio",
                ws_max_size=WS_MAX_SIZE,
                server_header=False,
                proxy_headers=False,
            )
            # uvicorn logs a line per request: written from a thread, so a slow reader of them stalls no request.
            server = BackgroundLogServer(config)
            with _heap_frozen():
                await server.serve(sockets=[listening])
        finally:
            await store.close()
    finally:
        listening.close()


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """Within the block, the objects that exist now are left out of the garbage collector's full collections.

    They are the modules, the app, its routes and their models: they live as
    long as the server. A full collection walks every object and holds the
    event loop meanwhile (some 40 ms for a server's 65,000 objects); one comes
    whenever enough objects have outlived the younger collections, as the
    records of the access log waiting for their writer do under load. Frozen,
    they are skipped, and a full collection walks only what serving made. On
    leaving they are collected as before.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@add_shared_options
@click.command()
@click.option(
    "--host",
    default=lambda: os.environ.get("POLICYSTORE_HOST", "127.0.0.1"),
    show_default="127.0.0.1",
    help="Address to listen on (env POLICYSTORE_HOST).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=lambda: int(os.environ.get("POLICYSTORE_PORT", "8080")),
    show_default="8080",
    help="Port to listen on (env POLICYSTORE_PORT).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow browser calls from ORIGIN (repeatable); none by default.",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="Seconds between heartbeats on the change stream; each one also re-checks the client's token.",
)
@click.option(
    "--create",
    is_flag=True,
    help=f"Create the store if there is none (else a missing store is exit {StoreUnavailableError.exit_code}).",
)
@click.option(
    "--decisions",
    "decision_log",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="A decision log whose newest signals every preview (dry run) decides again under the change.",
)
@click.option(
    "--name",
    default=None,
    metavar="NAME",
    help="This server's name in the store's fleet (policystore fleet); default policystore-server:PORT.",
)
@pass_cli
def serve(
    obj: CliContext,
    *,
    host: str,
    port: int,
    cors_origins: tuple[str, ...],
    heartbeat: float,
    create: bool,
    decision_log: str | None,
    name: str | None,
) -> None:
    """Serve the HTTP API, the change stream and the dashboard.

    The dashboard is at http://HOST:PORT/ and asks for a token
    (make one with 'policystore token create --role admin --name NAME').
    The store must exist ('policystore init'), unless --create is given.
    """
    url = obj.url
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]  # the real port, when 0 asked for a free one
    shown = f"[{host}]" if ":" in host else host

    async def ready(_store: PolicyStore) -> None:
        # Said once the store is open: a missing store is refused before anything claims to be served.
        click.echo(f"Serving {redact(url)} on http://{shown}:{bound}/ (dashboard at /, API under /v1).", err=True)

    # An interactive stop is a normal end. The loop is the one uvicorn.run would pick: serving
    # from a loop of our own would otherwise leave the default asyncio loop under the server.
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(
            serve_store(
                url,
                host,
                bound,
                cors_origins=cors_origins,
                heartbeat=heartbeat,
                sock=sock,
                on_ready=ready,
                create=create,
                decisions=decision_log,
                name=name or f"policystore-server:{bound}",
            )
        )


@add_shared_options
@click.group(cls=PolicyStoreGroup)
def token() -> None:
    """Create, list and revoke API tokens (the store keeps only their hashes)."""


@token.command("create")
@click.option(
    "--role",
    type=click.Choice(["viewer", "operator", "admin"]),
    required=True,
    help="viewer reads; operator lowers risk and turns the kill switch on; admin does all.",
)
@click.option("--name", required=True, help="Who the token is for; the author of its changes in history.")
@pass_cli
def create(obj: CliContext, role: str, name: str) -> None:
    """Create a token and print it once; it cannot be shown again."""

    async def action(store: PolicyStore) -> str:
        return await TokenStore(store.backend).create(name, role)

    secret = obj.run(action, live=True)
    if obj.json:
        click.echo(json.dumps({"name": name, "role": role, "token": secret}))
        return
    click.echo(secret)
    click.echo(f"Token {name!r} ({role}) created; it is shown only this once.", err=True)


@token.command("list")
@pass_cli
def list_(obj: CliContext) -> None:
    """List tokens: name, role and creation time (never the secret)."""

    async def action(store: PolicyStore) -> list[dict[str, str]]:
        return [r.public() for r in await TokenStore(store.backend).records()]

    rows = obj.run(action, live=True)
    if obj.json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("No tokens; create one with 'policystore token create --role admin --name NAME'.")
        return
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        click.echo(f"{row['name']:<{width}}  {row['role']:<8}  {row['created_at']}")


@token.command("revoke")
@click.argument("name")
@pass_cli
def revoke(obj: CliContext, name: str) -> None:
    """Revoke the token NAME; servers stop accepting it within seconds."""

    async def action(store: PolicyStore) -> None:
        await TokenStore(store.backend).revoke(name)

    obj.run(action, live=True)
    payload: dict[str, Any] = {"name": name, "revoked": True}
    click.echo(json.dumps(payload) if obj.json else f"Token {name!r} revoked.")
