"""The store over TLS (``rediss://``) and through Sentinel (``redis+sentinel://``), against real servers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from policystore.backends.redis import RedisBackend
from policystore.errors import StoreUnavailableError
from policystore.store.store import PolicyStore
from support.redis_server import RedisServer
from support.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path) -> None:
    """A CA, and a server certificate it signed for 127.0.0.1."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.cnf", "-out", "server.crt", cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[RedisServer, int, Path]]:
    """A redis-server with a TLS port beside its plain one; yields it, the TLS port and the CA file."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates", pytrace=False)
    folder = Path(tempfile.mkdtemp(prefix="policystore-tls-"))
    try:
        _certificates(folder)
        tls_port = _free_port()
        options = ("--tls-port", str(tls_port), "--tls-auth-clients", "no")
        options += ("--tls-cert-file", str(folder / "server.crt"), "--tls-key-file", str(folder / "server.key"))
        options += ("--tls-ca-cert-file", str(folder / "ca.crt"))
        with RedisServer(options=options) as server:
            yield server, tls_port, folder / "ca.crt"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def sentinel_port(redis_server: RedisServer) -> Iterator[int]:
    """A Sentinel watching the shared test server as the master of service ``policystore``."""
    folder = Path(tempfile.mkdtemp(prefix="policystore-sentinel-"))
    port = _free_port()
    config = folder / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\nsentinel monitor policystore 127.0.0.1 {redis_server.port} 1\n"
    )
    executable = shutil.which("redis-server")
    assert executable is not None
    process = subprocess.Popen(
        [executable, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while not _sentinel_knows_master(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server --sentinel did not start", pytrace=False)
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _sentinel_knows_master(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"SENTINEL get-master-addr-by-name policystore\r\n")
            return b"127.0.0.1" in sock.recv(256)
    except OSError:
        return False


async def _follows(writer_url: str, reader_url: str) -> None:
    """A mode switch written at one URL reaches a store following the other."""
    writer = await PolicyStore.open(writer_url, watch=False, lkg_path=None)
    reader = await PolicyStore.open(reader_url, lkg_path=None, refresh_interval=3600)
    try:
        assert "NORMAL" == reader.get("active_mode")
        await writer.switch_mode("DEFENSIVE", reason="over the wire")
        await eventually(lambda: reader.get("active_mode") == "DEFENSIVE")
        assert writer.snapshot().version == reader.snapshot().version
        assert reader.explain("active_mode").stale is False
    finally:
        await reader.close()
        await writer.close()


class TestTls:
    """rediss:// against a TLS redis-server."""

    async def test_tls_store_follows_changes(self, tls_server: tuple[RedisServer, int, Path]) -> None:
        """Reads, writes and change notices work over TLS, the certificate checked against the given CA."""
        _, tls_port, ca = tls_server
        url = f"rediss://127.0.0.1:{tls_port}/0?namespace=tls{uuid.uuid4().hex[:8]}&ssl_ca_certs={ca}"
        await _follows(url, url)

    async def test_untrusted_certificate_refused(self, tls_server: tuple[RedisServer, int, Path]) -> None:
        """Without the CA, the server's certificate is not trusted and the store is unavailable, saying why."""
        _, tls_port, _ = tls_server
        backend = RedisBackend.from_url(f"rediss://127.0.0.1:{tls_port}/0?namespace=untrusted")
        with pytest.raises(StoreUnavailableError, match=r"(?i)certificate"):
            await backend.connect()
        await backend.close()


class TestSentinel:
    """redis+sentinel:// through a real Sentinel."""

    async def test_sentinel_store_follows_changes(self, sentinel_port: int, redis_server: RedisServer) -> None:
        """A store found through Sentinel writes to the master; a store on the master's own URL sees it."""
        namespace = f"sentinel{uuid.uuid4().hex[:8]}"
        through_sentinel = f"redis+sentinel://127.0.0.1:{sentinel_port}/policystore/0?namespace={namespace}"
        await _follows(through_sentinel, redis_server.url(namespace=namespace))
        await _follows(
            redis_server.url(namespace=namespace + "b"), through_sentinel.replace(namespace, namespace + "b")
        )
