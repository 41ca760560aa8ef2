"""A real ``redis-server`` for the tests and benchmarks, run with ``config/redis.conf``.

:class:`RedisServer` starts one on a free loopback port with its own data
folder; the ``redis_server`` fixture keeps one per test run and ``redis_url``
gives every test its own namespace on it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Self

import pytest

from support.ports import free_port

__all__ = ["CONFIG", "RedisServer", "redis_server", "redis_url"]

CONFIG = Path(__file__).resolve().parents[2] / "config" / "redis.conf"
_MISSING = (
    "redis-server is not on PATH: the Redis tests need a real server. "
    "Run `make test`, which installs it via scripts/install-system-deps.sh."
)


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            # A server that wants a password answers NOAUTH: it is up all the same.
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, restartable on the same port and data folder.

    Args:
        directory: where the append-only file lives (a new temporary folder by default).
        port: the port (a free one by default).
        options: more ``--name value`` arguments for the server, such as ``("--requirepass", "pw")``.
    """

    def __init__(self, directory: Path | None = None, port: int | None = None, options: tuple[str, ...] = ()) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(_MISSING)
        self.executable = executable
        self.port = port or free_port()
        self.dir = directory or Path(tempfile.mkdtemp(prefix="policystore-redis-"))
        self._owns_dir = directory is None
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (to freeze it with SIGSTOP), else None."""
        return self._process.pid if self.running and self._process is not None else None

    def url(self, namespace: str | None = None, db: int = 0) -> str:
        """Return a ``redis://`` URL for database ``db``, with ``namespace`` if given."""
        base = f"redis://127.0.0.1:{self.port}/{db}"
        return f"{base}?namespace={namespace}" if namespace else base

    def start(self, timeout: float = 15.0) -> None:
        """Start (or restart) the server and wait until it answers PING.

        Raises:
            RuntimeError: it exited or did not answer in time (the log is in the message).
        """
        if self.running:
            return
        self._log = (self.dir / "redis.log").open("ab")
        # A copy of the config: a server that Sentinel fails over rewrites its config file.
        config = self.dir / "redis.conf"
        if not config.exists():
            shutil.copyfile(CONFIG, config)
        command = [
            self.executable,
            str(config),
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            *self.options,
        ]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")

    def kill9(self) -> None:
        """Kill the server with SIGKILL (no shutdown, no final save) and wait for it to die."""
        if self._process is not None and self.running:
            self._process.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """Stop the server cleanly (SIGTERM) and wait for it to exit."""
        if self._process is not None and self.running:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        """Stop the server and remove its data folder if this object made it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole test run; fails (not skips) when it is not installed."""
    if shutil.which("redis-server") is None:
        pytest.fail(_MISSING, pytrace=False)
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A fresh namespace on the shared server (restarted if an earlier test left it down)."""
    redis_server.start()
    namespace = f"t{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield redis_server.url(namespace=namespace)
    if redis_server.running:
        _delete_namespace(redis_server.port, namespace)


def _delete_namespace(port: int, namespace: str) -> None:
    """Drop a test's keys so the shared server stays small (best effort)."""
    import redis

    client = redis.Redis(port=port, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"policystore:{namespace}:*", count=1000))
        if keys:
            client.unlink(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()
