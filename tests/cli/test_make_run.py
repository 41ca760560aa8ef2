"""``make run``: where it listens is settable, and a busy port is one sentence, not a traceback."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cli_support import clean_environment

ROOT = Path(__file__).resolve().parents[2]
RUN_SERVER = ROOT / "scripts" / "run_server.py"


def _run_server(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = clean_environment(tmp_path) | {"POLICYSTORE_URL": f"sqlite:///{tmp_path}/policy.db", **env}
    return subprocess.run(
        [sys.executable, str(RUN_SERVER)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


class TestRunServerAddress:
    """scripts/run_server.py, which make run starts, refuses an address it cannot use in one sentence."""

    def test_busy_port_exits_2_with_one_sentence_naming_host_and_port(self, tmp_path: Path) -> None:
        """Another listener holds the port: exit 2, the address and how to choose another; no traceback."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            result = _run_server(tmp_path, POLICYSTORE_PORT=str(port))

        assert 2 == result.returncode, result.stderr
        assert [
            (
                f"Error: Cannot listen on 127.0.0.1:{port}: address already in use; choose another with "
                "make run PORT=N HOST=ADDRESS (or POLICYSTORE_PORT, POLICYSTORE_HOST)."
            )
        ] == result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "policy.db").exists()  # refused before the store was opened

    @pytest.mark.parametrize("port", ["eighty", "70000"])
    def test_port_that_is_no_port_exits_2_with_one_sentence(self, tmp_path: Path, port: str) -> None:
        """PORT=eighty or PORT=70000 is named in the sentence."""
        result = _run_server(tmp_path, POLICYSTORE_PORT=port)

        assert 2 == result.returncode
        assert 1 == len(result.stderr.strip().splitlines())
        assert repr(port) in result.stderr

    def test_free_port_serves_and_prints_the_first_admin_token_once(self, tmp_path: Path) -> None:
        """On a free port it creates the store, prints the address and an admin token, and answers."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        environment = clean_environment(tmp_path) | {
            "POLICYSTORE_URL": f"sqlite:///{tmp_path}/policy.db",
            "POLICYSTORE_PORT": str(port),
        }
        log = tmp_path / "out.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-u", str(RUN_SERVER)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=tmp_path,
            )
        try:
            deadline = time.monotonic() + 30
            while "Admin token" not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.1)
            text = log.read_text()
            token = re.search(r"Admin token .*: (\S+)", text)
            assert token is not None, text
            assert f"Dashboard: http://127.0.0.1:{port}/" in text
            while time.monotonic() < deadline:
                try:
                    response = httpx.get(
                        f"http://127.0.0.1:{port}/v1/values/risk.max_leverage",
                        headers={"Authorization": f"Bearer {token.group(1)}"},
                        timeout=2,
                    )
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert 5.0 == response.json()["value"]
        finally:
            process.terminate()
            process.wait(20)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
class TestMakeRunVariables:
    """make run PORT=... HOST=... (or the POLICYSTORE_ variables) reach the server."""

    def _run_line(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["make", "-n", "run", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("POLICYSTORE_")} | (env or {}),
            timeout=60,
            check=True,
        )
        return next(line for line in result.stdout.splitlines() if "run_server.py" in line)

    def test_make_run_default_listens_on_loopback_8080(self) -> None:
        """Without settings: 127.0.0.1:8080."""
        assert self._run_line().startswith("POLICYSTORE_HOST='127.0.0.1' POLICYSTORE_PORT='8080' ")

    def test_make_run_port_and_host_variables_are_passed_on(self) -> None:
        """make run PORT=8181 HOST=0.0.0.0."""
        assert self._run_line("PORT=8181", "HOST=0.0.0.0").startswith(
            "POLICYSTORE_HOST='0.0.0.0' POLICYSTORE_PORT='8181' "
        )

    def test_make_run_environment_variables_are_passed_on(self) -> None:
        """POLICYSTORE_PORT=9191 in the environment."""
        assert "POLICYSTORE_PORT='9191'" in self._run_line(env={"POLICYSTORE_PORT": "9191"})
