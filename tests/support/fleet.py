"""Fleet members in processes of their own (see ``fleet_member.py``): start, freeze, kill or close them."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Member", "members"]

WORKER = str(Path(__file__).with_name("fleet_member.py"))


class Member:
    """One member process of the fleet of ``url``, named ``name``.

    Args:
        url: the store URL.
        name: the member's name.
        env: the environment to run it in (the test's own by default).
    """

    def __init__(self, url: str, name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self._log = tempfile.NamedTemporaryFile(prefix="fleet-member-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, WORKER, url, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self.frozen = False
        ready, self.member_id, pid = self._line(60).split()
        assert "ready" == ready
        self.pid = int(pid)

    def _line(self, timeout: float) -> str:
        stdout = self.process.stdout
        assert stdout is not None
        found, _, _ = select.select([stdout], [], [], timeout)
        if not found:
            msg = f"member {self.name} said nothing within {timeout} s; its log: {self.log()}"
            raise AssertionError(msg)
        return stdout.readline().decode().strip()

    def _send(self, line: str) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(f"{line}\n".encode())
        stdin.flush()

    def status(self) -> dict[str, Any]:
        """The member's version, its fleet_error and its own entry in its fleet() (see fleet_member.py)."""
        self._send("status")
        return dict(json.loads(self._line(30)))

    def freeze(self) -> None:
        """Stop the process (SIGSTOP): it neither applies versions nor reports until thawed."""
        os.kill(self.process.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """Let a frozen process run again (SIGCONT)."""
        os.kill(self.process.pid, signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """Kill the process (SIGKILL): it cannot leave the fleet; its record stays until it is dropped."""
        self.process.kill()
        self.process.wait(30)
        self.frozen = False

    def close(self) -> None:
        """Have the member close its store (it leaves the fleet) and wait for the process to end."""
        self._send("close")
        assert "closed" == self._line(30)
        self.process.wait(30)

    def log(self) -> str:
        """What the member logged on stderr."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """End the process however it stands, and remove its log."""
        if self.process.poll() is None:
            if self.frozen:
                self.thaw()
            self.process.kill()
            self.process.wait(30)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self._log.close()
        with contextlib.suppress(OSError):
            Path(self._log.name).unlink()


@contextlib.contextmanager
def members(url: str, *names: str, env: dict[str, str] | None = None) -> Iterator[list[Member]]:
    """Start one member process per name on ``url``; end them all afterwards, whatever happened."""
    started: list[Member] = []
    try:
        for name in names:
            started.append(Member(url, name, env))  # noqa: PERF401 - one at a time: a failed start still ends the rest
        yield started
    finally:
        for member in started:
            member.stop()
