"""Property-based requests from /openapi.json against a live server: no 5xx, whatever the input.

Every operation, the writes included, is called with a real admin token, so
generated bodies reach the store instead of stopping at authentication.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer

#: Generated examples per operation in the fuzzing phase (the coverage phase adds its own cases).
EXAMPLES = 50


@pytest.mark.slow
class TestOpenAPIFuzzing:
    def test_generated_requests_for_every_operation_never_get_a_server_error(self, tmp_path: Path):
        """schemathesis sends generated valid and invalid requests to every operation; none may answer 5xx."""
        live = LiveServer(f"sqlite:///{tmp_path}/policy.db").start()
        try:
            schema = httpx.get(f"{live.base}/openapi.json", timeout=10).json()
            operations = sum(len(methods) for methods in schema["paths"].values())
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
                    str(EXAMPLES),
                    "--workers",
                    "1",
                    # WS /v1/stream is not an OpenAPI operation; the schema has no examples or links.
                    "--phases",
                    "coverage,fuzzing",
                    "--request-timeout",
                    "10",
                    "--seed",
                    "1",
                ],
                capture_output=True,
                text=True,
                timeout=400,
                check=False,
                cwd=tmp_path,
            )
        finally:
            live.stop()

        output = result.stdout
        assert 0 == result.returncode, output[-4000:] + result.stderr[-2000:]
        assert "not_a_server_error" not in output.partition("FAILURES")[2]
        assert f"Tested: {operations}" in output, output[-2000:]
        cases = re.search(r"(\d+) generated, (\d+) passed", output)
        assert cases is not None, output[-2000:]
        generated, passed = int(cases[1]), int(cases[2])
        print(f"schemathesis: {operations} operations, {generated} cases, {passed} passed")  # noqa: T201 - the run's size
        assert generated == passed
        assert generated >= EXAMPLES * operations
