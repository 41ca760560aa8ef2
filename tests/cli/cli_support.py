"""Running the ``policystore`` command line as a real subprocess, for the tests in this folder."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMMAND = [sys.executable, "-m", "policystore.cli.main"]


def clean_environment(tmp_path: Path) -> dict[str, str]:
    """The test process's environment without policy variables, with caches (and HOME) under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLICYSTORE_", "RM_"))}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


@dataclass
class Cli:
    """Runs the command line against one store."""

    url: str
    env: dict[str, str]
    cwd: Path
    timeout: float = field(default=60)
    #: Bytes of address space each run may use (None: no limit), so runaway input fails fast.
    memory_limit: int | None = None

    def _limits(self) -> Callable[[], None] | None:
        limit = self.memory_limit
        if limit is None:
            return None

        def apply() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        return apply

    def raw(
        self, *args: str, code: int = 0, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``policystore ARGS`` as given and check its exit status."""
        result = subprocess.run(
            [*COMMAND, *args],
            capture_output=True,
            text=True,
            env=self.env if env is None else env,
            cwd=self.cwd,
            input=stdin,
            timeout=self.timeout,
            check=False,
            preexec_fn=self._limits(),
        )
        assert code == result.returncode, f"stdout: {result.stdout}\nstderr: {result.stderr}"
        # Failures are one plain sentence (or one JSON object) on stderr, never a traceback.
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def __call__(
        self, *args: str, code: int = 0, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``policystore --store URL ARGS`` and check its exit status."""
        return self.raw("--store", self.url, *args, code=code, stdin=stdin, env=env)

    def json(self, *args: str) -> Any:
        """Run a command with --json and parse what it printed."""
        return json.loads(self("--json", *args).stdout)

    def version(self) -> int:
        """The store's current version."""
        return int(self("get", "version").stdout)


def one_sentence(stderr: str) -> str:
    """The only line of ``stderr``; fails if there are more."""
    lines = stderr.strip().splitlines()
    assert 1 == len(lines), stderr
    return lines[0]
