"""A real PostgreSQL server for the tests and benchmarks, made with initdb and run with pg_ctl.

:class:`PostgresServer` makes a cluster in a temporary folder and runs it on a
free loopback port, with password (SCRAM) authentication, so every URL the
tests use carries a password that must never be shown. PostgreSQL refuses to
run as root: when the tests run as root, the server runs as the ``postgres``
system user (made if missing) and its folder is that user's. The
``postgres_server`` fixture keeps one server per test run and ``postgres_url``
gives every test its own namespace on it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from support.ports import free_port

__all__ = ["PostgresServer", "postgres_bin", "postgres_server", "postgres_url"]

USER = "policystore"
PASSWORD = "pg-s3cret-pw"  # noqa: S105 - the throwaway test server's own password
DATABASE = "policystore"
_MISSING = (
    "initdb was not found (on PATH or under /usr/lib/postgresql/*/bin): the PostgreSQL tests need a real "
    "server. Run `make test`, which installs it via scripts/install-system-deps.sh."
)
#: Settings every test server runs with (more are given per server).
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "log_min_messages": "warning",
    "log_connections": "off",
}


def postgres_bin() -> Path | None:
    """Return the folder of initdb and pg_ctl: on PATH, or Debian's newest under /usr/lib/postgresql."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # the real folder: a link on PATH may stand alone
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _server_account() -> tuple[int, int] | None:
    """The (uid, gid) to run the server as when running as root; None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"], check=True
        )
        account = pwd.getpwnam("postgres")
    return account.pw_uid, account.pw_gid


class PostgresServer:
    """One PostgreSQL cluster on 127.0.0.1, restartable on the same port and data folder.

    Args:
        port: the port (a free one by default).
        settings: more ``postgresql.conf`` settings, such as ``{"synchronous_standby_names": "'standby1'"}``.
        initialise: make a new cluster (False for a standby, which :meth:`standby_of` copies).
    """

    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None, *, initialise: bool = True):
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError(_MISSING)
        self.bin = bindir
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="policystore-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.account = _server_account()
        self._process: subprocess.Popen[bytes] | None = None
        self.settings = _SETTINGS | {"port": str(self.port), "unix_socket_directories": f"'{self.root}'"}
        self.settings |= settings or {}
        if self.account is not None:
            os.chown(self.root, *self.account)
        if initialise:
            self._initdb()

    # -- running programs as the server's user ----------------------------------------

    def _run(self, program: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
        options: dict[str, Any] = {}
        if self.account is not None:
            options = {"user": self.account[0], "group": self.account[1], "extra_groups": []}
        result = subprocess.run(
            [str(self.bin / program), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**os.environ, **(env or {})},
            check=False,
            **options,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}\n{self.log_tail()}"
            )
        return result.stdout

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.account is not None:
            os.chown(pwfile, *self.account)
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile), "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        pwfile.unlink()
        self.configure()

    def configure(self) -> None:
        """Append this server's settings to its ``postgresql.conf`` (later lines win)."""
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# policystore test server\n")
            conf.writelines(f"{name} = {value}\n" for name, value in self.settings.items())

    # -- the server's life ---------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the postmaster is alive."""
        return self.pid is not None

    def start(self, timeout: float = 60.0) -> None:
        """Start (or restart) the server and wait until it takes connections.

        The postmaster runs as this process's child, in a process group of its
        own: it is reaped here when it ends (an orphan left to a container's
        init may never be, and its pid file would then block every restart),
        and :meth:`kill9` kills it with every backend at once.
        """
        if self.running:
            return
        import psycopg  # the postgres extra: imported only where a server runs

        options: dict[str, Any] = {}
        if self.account is not None:
            options = {"user": self.account[0], "group": self.account[1], "extra_groups": []}
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
                **options,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.conninfo("postgres")).close()
                if not (self.data / "standby.signal").exists():
                    self._ensure_database()
                return
            time.sleep(0.05)
        self.kill9()
        raise RuntimeError(f"PostgreSQL on port {self.port} did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are ended, every commit is kept) and wait for it."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._process = None

    def kill9(self) -> None:
        """Kill the postmaster and every one of its processes at once with SIGKILL, as a crash would."""
        process = self._process
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self._process = None

    def promote(self) -> None:
        """Promote this standby to a primary and wait until it takes writes."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def cleanup(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, size: int = 3000) -> str:
        """The end of the server's log."""
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cleanup()

    # -- replication -------------------------------------------------------------------

    @classmethod
    def standby_of(cls, primary: PostgresServer, name: str) -> PostgresServer:
        """Copy ``primary`` with pg_basebackup as a streaming standby called ``name`` (not started)."""
        standby = cls(initialise=False)
        standby._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", USER, "-D", str(standby.data),
            "-R", "-X", "stream", "--checkpoint=fast", "--no-sync", env={"PGPASSWORD": PASSWORD},
        )  # fmt: skip
        # The copy's postgresql.conf is the primary's: this server's own settings come after its lines.
        standby.settings |= {"cluster_name": f"'{name}'", "hot_standby": "on", "synchronous_standby_names": "''"}
        standby.configure()
        return standby

    # -- what tests connect to --------------------------------------------------------

    def url(self, namespace: str | None = None, database: str = DATABASE, password: str = PASSWORD) -> str:
        """Return a ``postgresql://`` URL for ``database``, with ``namespace`` if given."""
        base = f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"
        return f"{base}?namespace={namespace}" if namespace else base

    def conninfo(self, database: str = DATABASE) -> str:
        """A libpq connection string for the tests' own direct access."""
        return f"host=127.0.0.1 port={self.port} user={USER} password={PASSWORD} dbname={database} connect_timeout=5"

    def execute(self, query: str, params: tuple[Any, ...] = (), database: str = DATABASE) -> list[tuple[Any, ...]]:
        """Run one statement as the tests' own client and return its rows (none for a command)."""
        import psycopg

        with psycopg.connect(self.conninfo(database), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL (no namespace)."""
        self.execute(f'CREATE DATABASE "{name}"', database="postgres")
        return self.url(database=name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending its sessions (best effort)."""
        import psycopg

        with contextlib.suppress(psycopg.Error):
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', database="postgres")

    def _ensure_database(self) -> None:
        if not self.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,), database="postgres"):
            self.execute(f'CREATE DATABASE "{DATABASE}"', database="postgres")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole test run; fails (not skips) when it is not installed."""
    if postgres_bin() is None:
        pytest.fail(_MISSING, pytrace=False)
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh namespace on the shared server (restarted if an earlier test left it down)."""
    import psycopg

    postgres_server.start()
    namespace = f"t{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield postgres_server.url(namespace=namespace)
    if postgres_server.running:
        with contextlib.suppress(psycopg.Error):
            for table in ("policystore_versions", "policystore_head", "policystore_aux"):
                postgres_server.execute(f"DELETE FROM {table} WHERE namespace = %s", (namespace,))  # noqa: S608 - the table names are ours
