"""A Redis password never leaves the process: not in HTTP answers, not in CLI output, against a real redis-server.

The store URL carries the password in each of the ways Redis URLs do (the
userinfo, a lone token, a query parameter); the server answers viewers
through an outage, and ``init``, ``show`` and ``serve`` run as subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer

from support.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

PASSWORD = "Hunter2-8f3a1c"  # noqa: S105 - the test server's made-up password, looked for in output
COMMAND = [sys.executable, "-m", "policystore.cli.main"]


@pytest.fixture
def guarded() -> Iterator[RedisServer]:
    """A redis-server that wants a password (the default user's)."""
    with RedisServer(options=("--requirepass", PASSWORD)) as server:
        yield server


def _urls(port: int) -> list[str]:
    return [
        f"redis://127.0.0.1:{port}/0?password={PASSWORD}&namespace=q",
        f"redis://:{PASSWORD}@127.0.0.1:{port}/0?namespace=u",
        f"redis://default:{PASSWORD}@127.0.0.1:{port}/0?namespace=d",
    ]


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLICYSTORE_", "RM_"))}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


class TestServerAnswers:
    @pytest.mark.parametrize("form", [0, 1, 2], ids=["query", "userinfo", "user-and-password"])
    def test_answers_through_an_outage_never_show_the_password(self, guarded, form):
        """With Redis down, the 503s a viewer gets, the stale reads, health and metrics hold no password."""
        live = LiveServer(_urls(guarded.port)[form]).start()
        try:
            guarded.stop()
            with httpx.Client(base_url=live.base, timeout=10) as http:
                viewer = live.headers("viewer")
                answers = [
                    http.get("/v1/history", headers=viewer),
                    http.get("/v1/diff", params={"v1": 1}, headers=viewer),
                    http.post(
                        "/v1/emergency", json={"active": True, "reason": "outage"}, headers=live.headers("operator")
                    ),
                    http.get("/v1/policy", headers=viewer),
                    http.get("/v1/values/risk.max_leverage", headers=viewer),
                    http.get("/healthz"),
                    http.get("/metrics"),
                ]
        finally:
            live.stop()
            guarded.start()

        assert [503, 503, 503] == [a.status_code for a in answers[:3]]
        assert "127.0.0.1" in answers[0].json()["store"]  # the store is still named, only its secret is not
        for answer in answers:
            assert PASSWORD not in answer.text, answer.request.url


class TestCommandLine:
    def _run(self, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, *args],
            capture_output=True,
            text=True,
            env=_environment(tmp_path),
            cwd=tmp_path,
            timeout=60,
            check=False,
        )

    @pytest.mark.parametrize("form", [0, 1, 2], ids=["query", "userinfo", "user-and-password"])
    def test_init_and_show_with_store_down_never_print_the_password(self, guarded, tmp_path, form):
        """init (text and --json) prints the redacted URL; show with Redis stopped says why without the password."""
        url = _urls(guarded.port)[form]
        init = self._run(tmp_path, "--store", url, "init")
        init_json = self._run(tmp_path, "--json", "--store", url, "init")
        guarded.stop()
        try:
            show = self._run(tmp_path, "--store", url, "show")
        finally:
            guarded.start()

        assert (0, 0) == (init.returncode, init_json.returncode), init.stderr
        assert "127.0.0.1" in init.stdout
        for result in (show, init_json, init):  # show: the error sentence; init: the URL it names
            assert PASSWORD not in result.stdout + result.stderr

    @pytest.mark.parametrize("form", [0, 1, 2], ids=["query", "userinfo", "user-and-password"])
    def test_serve_never_prints_the_password(self, guarded, tmp_path, form):
        """serve's start-up line and log name the store without its password."""
        url = _urls(guarded.port)[form]
        log = tmp_path / "serve.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                # --create: serve opens only a store that exists unless told to make one.
                [*COMMAND, "--store", url, "serve", "--create", "--host", "127.0.0.1", "--port", "0"],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=_environment(tmp_path),
                cwd=tmp_path,
            )
            try:
                deadline = time.monotonic() + 30
                while "Application startup complete" not in log.read_text() and time.monotonic() < deadline:
                    assert process.poll() is None, log.read_text()
                    time.sleep(0.05)
            finally:
                process.terminate()
                process.wait(20)

        text = log.read_text()
        assert "Serving" in text
        assert "127.0.0.1" in text
        assert PASSWORD not in text
