"""Property-based requests from /openapi.json against a live server: no 5xx, whatever the input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from live_server import LiveServer


@pytest.mark.slow
class TestOpenAPIFuzzing:
    def test_generated_requests_with_admin_token_never_get_a_server_error(self, tmp_path: Path):
        """schemathesis sends generated valid and invalid requests; none may answer 5xx."""
        live = LiveServer(f"sqlite:///{tmp_path}/policy.db").start()
        try:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "run",
                    f"{live.base}/openapi.json",
                    "--header",
                    f"Authorization: Bearer {live.tokens['admin']}",
                    "--checks",
                    "not_a_server_error",
                    "--max-examples",
                    "20",
                    "--workers",
                    "1",
                    "--phases",
                    "fuzzing",  # WS /v1/stream is not an OpenAPI operation
                    "--request-timeout",
                    "10",
                    "--seed",
                    "1",
                ],
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
                cwd=tmp_path,
            )
        finally:
            live.stop()

        assert 0 == result.returncode, result.stdout[-4000:] + result.stderr[-2000:]
        assert "passed" in result.stdout.rsplit("Seed:", 1)[0][-300:], result.stdout[-2000:]
        assert "not_a_server_error" not in result.stdout.partition("FAILURES")[2]
