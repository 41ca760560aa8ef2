"""The store over TLS (``rediss://``) and through Sentinel (``redis+sentinel://``), against real servers."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Self

import pytest
import redis

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


def _start_sentinel(folder: Path, master_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    (folder / "sentinel.conf").write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor policystore 127.0.0.1 {master_port} 1\n"
        "sentinel down-after-milliseconds policystore 1000\n"
        "sentinel failover-timeout policystore 10000\n"
    )
    executable = shutil.which("redis-server")
    assert executable is not None
    command = [executable, str(folder / "sentinel.conf"), "--sentinel"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT), port


def _role(port: int) -> str | None:
    client = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
    try:
        return str(client.info("replication").get("role"))
    except redis.RedisError:
        return None
    finally:
        client.close()


def _replicated(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        return client.info("replication").get("master_link_status") == "up"
    except redis.RedisError:
        return False
    finally:
        client.close()


class _Cluster:
    """A master, its replica and a Sentinel watching them; a writer and a follower found through Sentinel."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.master = RedisServer()
        self.replica = RedisServer(options=("--replicaof", "127.0.0.1", str(self.master.port)))

    async def __aenter__(self) -> Self:
        self.master.start()
        self.replica.start()
        self.sentinel, self.port = _start_sentinel(self.folder, self.master.port)
        self.deadline = time.monotonic() + 60
        while not (_replicated(self.replica.port) and _sentinel_knows_master(self.port)):
            assert time.monotonic() < self.deadline, "replication or Sentinel did not come up"
            await asyncio.sleep(0.05)
        url = f"redis+sentinel://127.0.0.1:{self.port}/policystore/0?namespace=failover"
        self.writer = await PolicyStore.open(url, watch=False, lkg_path=None)
        self.follower = await PolicyStore.open(url, lkg_path=None, refresh_interval=0.5)
        await self.writer.switch_mode("DEFENSIVE", reason="before the failover")
        await eventually(lambda: self.follower.get("active_mode") == "DEFENSIVE")
        redis.Redis(port=self.master.port).wait(1, 5000)  # the replica has version 2
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.follower.close()
        await self.writer.close()
        self.sentinel.terminate()
        self.sentinel.wait(timeout=10)
        self.replica.cleanup()
        self.master.cleanup()

    async def fail_over(self) -> None:
        """Promote the replica; return once Sentinel names it (the old master may not be demoted yet)."""
        sentinel = redis.Redis(port=self.port, decode_responses=True)
        sentinel.execute_command("SENTINEL", "FAILOVER", "policystore")
        while sentinel.sentinel_get_master_addr_by_name("policystore")[1] != self.replica.port:
            assert time.monotonic() < self.deadline, "the failover did not finish"
            await asyncio.sleep(0.05)

    async def old_master_demoted(self) -> None:
        # Until then the old master still takes writes, which its resync loses.
        while _role(self.master.port) != "slave":
            assert time.monotonic() < self.deadline, "the old master was not demoted"
            await asyncio.sleep(0.05)

    def stored(self, what: str) -> bytes | None:
        """A key of the namespace on the new master."""
        value = redis.Redis(port=self.replica.port).get(f"policystore:failover:{what}")
        return value if isinstance(value, bytes) else None


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[_Cluster]:
    async with _Cluster(tmp_path) as running:
        yield running


class TestSentinelFailover:
    """A Sentinel failover moves the master; the store follows it, and halts if it lost a write."""

    async def test_writes_and_changes_continue_after_failover(self, cluster: _Cluster) -> None:
        """After the replica is promoted (and the old master demoted), writes go to it and followers see them."""
        await cluster.fail_over()
        await cluster.old_master_demoted()
        for _ in range(20):  # the first write may meet the demoted master and be refused
            try:
                await cluster.writer.switch_mode("NORMAL", reason="after the failover")
                break
            except StoreUnavailableError:
                await asyncio.sleep(0.25)
        assert "NORMAL" == cluster.writer.get("active_mode")
        await eventually(lambda: cluster.follower.get("active_mode") == "NORMAL")
        assert cluster.writer.snapshot().version == cluster.follower.snapshot().version == 3
        assert b"3" == cluster.stored("version")

    async def test_write_lost_in_failover_halts_trading(self, cluster: _Cluster) -> None:
        """No acknowledged write disappears while trading goes on.

        Right after Sentinel names the new master, the old one still takes writes until it
        is demoted, and its resync then drops them (here, every time so far). The store is
        then seen to go back, and trading stops for every process: the kill switch is
        turned on in the store. If the write reached the new master instead, nothing was
        lost.
        """
        await cluster.fail_over()
        try:
            await cluster.writer.switch_mode("NORMAL", reason="into the failover window")
            acknowledged = True
        except StoreUnavailableError:
            acknowledged = False  # refused by a master already demoted: nothing to lose
        await cluster.old_master_demoted()
        entry = redis.Redis(port=cluster.replica.port).hget("policystore:failover:history", "3")
        if not acknowledged or (entry is not None and json.loads(entry)["reason"] == "into the failover window"):
            return
        await eventually(lambda: b'"active": true' in (cluster.stored("document") or b""), deadline=20)
        emergency = json.loads(cluster.stored("document") or b"{}")["emergency"]
        assert (True, "policystore") == (emergency["active"], emergency["activated_by"])
        assert not await cluster.follower.can_open_new_trades()
