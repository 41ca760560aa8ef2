"""A real uvicorn server on a free loopback port, run in a background thread, for API and browser tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvicorn

from policystore import PolicyStore
from policystore.backends.base import Backend
from policystore.server import TokenStore, create_app

T = TypeVar("T")

#: The tokens every live server starts with: role -> token name.
TOKEN_NAMES = {"viewer": "vera-viewer", "operator": "otto-operator", "admin": "ada-admin"}


class LiveServer:
    """Serves ``url`` (a store URL, or a back end such as one that fails on purpose) on 127.0.0.1.

    The server runs from a thread with its own event loop; its store is a member of the fleet named ``name``.
    """

    def __init__(
        self,
        url: str | Backend,
        *,
        token_ttl: float | None = None,
        store_options: dict[str, Any] | None = None,
        name: str = "live-server",
        **app_options: Any,
    ) -> None:
        self.url = url
        self.name = name
        self.token_ttl = token_ttl
        self.store_options = store_options or {}
        self.app_options = app_options
        self.tokens: dict[str, str] = {}
        self.base = ""
        self.ws_base = ""
        self.store: PolicyStore | None = None
        self.token_store: TokenStore | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(20):
            msg = "the live server did not start within 20 s"
            raise RuntimeError(msg)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(20)

    def call(self, action: Callable[[PolicyStore], Awaitable[T]]) -> T:
        """Run ``action(store)`` on the server's loop and return its result."""
        assert self.store is not None
        store = self.store
        return asyncio.run_coroutine_threadsafe(_call(action, store), self._loop).result(20)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def add_token(self, key: str, name: str, role: str) -> str:
        """Create one more token (``name`` with ``role``), usable as ``headers(key)``."""
        assert self.token_store is not None
        tokens = self.token_store

        async def create(_store: PolicyStore) -> str:
            return await tokens.create(name, role)

        self.tokens[key] = self.call(create)
        return self.tokens[key]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        store = PolicyStore(self.url, **{"refresh_interval": 0.5, "name": self.name, **self.store_options})
        await store.initialize()
        self.store = store
        ttl = {} if self.token_ttl is None else {"ttl": self.token_ttl}
        self.token_store = TokenStore(self.store.backend, **ttl)
        for role, name in TOKEN_NAMES.items():
            self.tokens[role] = await self.token_store.create(name, role)
        app = create_app(self.store, tokens=self.token_store, **self.app_options)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.ws_base = f"ws://127.0.0.1:{port}"
        config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on")
        self._server = uvicorn.Server(config)
        watcher = asyncio.create_task(self._signal_ready())
        try:
            await self._server.serve(sockets=[sock])
        finally:
            watcher.cancel()
            sock.close()
            await self.store.close()

    async def _signal_ready(self) -> None:
        assert self._server is not None
        while not self._server.started:  # uvicorn offers no event to wait on  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self._ready.set()


async def _call(action: Callable[[PolicyStore], Awaitable[T]], store: PolicyStore) -> T:
    return await action(store)
