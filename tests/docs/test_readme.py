"""README.md runs as written: every example a reader pastes, in a new folder with a new HOME.

The blocks run in the order the README gives them, as a reader would paste
them, sharing one folder: the shell blocks command by command (a trailing
``# exit N`` is the status the line must end with; a line the README says
Ctrl-C stops is interrupted once it runs; a line ending in ``&`` keeps running
in the background until the end), each Python block twice (a second run must
work too), the server block on a free port instead of 8080, and the block
marked ``redis`` against a redis-server this test starts from
config/redis.conf in place of the one the README starts. A block marked
``skip`` says why in its marker.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: A fenced block, with the marker comment on the line before it, if any.
_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<mark>[a-z]+)(?: \((?P<why>[^)]*)\))? -->\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)^```",
    re.DOTALL | re.MULTILINE,
)
_EXIT = re.compile(r"#.*\bexit (\d+)\b")
_HEREDOC = re.compile(r"<<'(\w+)'")
#: How long one command may take before the test fails.
_TIMEOUT = 180


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    lang: str
    body: str
    mark: str | None
    why: str | None
    line: int


def readme_blocks() -> list[Block]:
    """Every fenced block of README.md, in order."""
    text = README.read_text(encoding="utf-8")
    return [
        Block(m["lang"], m["body"], m["mark"], m["why"], text.count("\n", 0, m.start()) + 1)
        for m in _BLOCK.finditer(text)
    ]


def shell_commands(body: str) -> Iterator[str]:
    """The commands of a shell block: one per line, with continuations and here-documents kept whole."""
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        command = [lines[i]]
        while command[-1].rstrip().endswith("\\"):
            i += 1
            command.append(lines[i])
        heredoc = _HEREDOC.search(command[0])
        if heredoc is not None:
            while lines[i] != heredoc.group(1):
                i += 1
                command.append(lines[i])
        yield "\n".join(command)
        i += 1


def _code_part(command: str) -> str:
    """The first line of ``command`` without its trailing comment (a ``#`` after a space, as the README writes them)."""
    return re.sub(r"\s+#.*$", "", command.splitlines()[0])


@dataclass
class Reader:
    """A reader at a terminal: one folder, one environment, the background jobs started so far."""

    cwd: Path
    env: dict[str, str]
    background: list[int]

    def run(self, command: str, where: str) -> subprocess.CompletedProcess[str]:
        """Run one command of a shell block as the README gives it and check its status."""
        head = command.splitlines()[0]
        expected = int(found.group(1)) if (found := _EXIT.search(head)) else 0
        code = _code_part(command)
        if code.startswith("export "):
            return self._export(command, where)
        if code.endswith("&"):
            return self._background(command, where)
        if "Ctrl-C" in head:
            return self._interrupted(code, where)
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
        assert expected == result.returncode, f"{where}: {command}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        assert "Traceback" not in result.stderr, f"{where}: {command}\n{result.stderr}"
        return result

    def _export(self, command: str, where: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", f"{command}\nenv -0"],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
        assert 0 == result.returncode, f"{where}: {command}\n{result.stderr.decode(errors='replace')}"
        self.env = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
        return subprocess.CompletedProcess(command, 0, "", "")

    def _background(self, command: str, where: str) -> subprocess.CompletedProcess[str]:
        # Output to files: the job outlives this command, and must not hold a pipe open.
        with (self.cwd / "background.log").open("a") as log:
            started = subprocess.Popen(
                ["bash", "-c", command], cwd=self.cwd, env=self.env, stdout=log, stderr=log, process_group=0
            )
        assert 0 == started.wait(_TIMEOUT), where
        self.background.append(started.pid)
        return subprocess.CompletedProcess(command, 0, "", "")

    def _interrupted(self, code: str, where: str) -> subprocess.CompletedProcess[str]:
        """A command that runs until Ctrl-C: started, interrupted once it says it runs, status 0."""
        process = subprocess.Popen(
            shlex.split(code), cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert process.stderr is not None
            first = process.stderr.readline()
            assert first, f"{where}: {code} ended before it started"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=_TIMEOUT)
        finally:
            process.kill()
        assert 0 == process.returncode, f"{where}: {code}\n{first}{err}"
        assert "Traceback" not in err
        return subprocess.CompletedProcess(code, 0, out, first + err)

    def stop_background(self) -> None:
        """End the background jobs (the server the README starts), as closing the terminal would."""
        for pgid in self.background:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                continue


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Reader]:
    """A new folder and a new HOME, with the policystore command of this environment on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLICYSTORE_", "RM_", "XDG_"))}
    env |= {"HOME": str(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    person = Reader(work, env, [])
    try:
        yield person
    finally:
        person.stop_background()


class TestReadmeBlocks:
    """The README's blocks are all accounted for, and each one that can run does."""

    def test_every_block_is_python_or_shell_and_every_skip_says_why(self) -> None:
        """Nothing is silently left out: a block not run carries a marker with its reason."""
        blocks = readme_blocks()

        assert len(blocks) >= 8
        assert {"python", "sh"} == {b.lang for b in blocks}
        assert all(b.why for b in blocks if b.mark is not None)
        assert {"skip", "redis"} >= {b.mark for b in blocks if b.mark is not None}

    def test_shell_commands_keep_continuations_and_here_documents_whole(self) -> None:
        """The splitter reads a block the way a shell would."""
        body = "a \\\n  b\ncat > f <<'EOF'\nx\nEOF\nc  # exit 3\n"

        assert ["a \\\n  b", "cat > f <<'EOF'\nx\nEOF", "c  # exit 3"] == list(shell_commands(body))

    @pytest.mark.slow
    def test_readme_examples_run_as_written(self, reader: Reader, request: pytest.FixtureRequest) -> None:
        """Every block in order: the tour, Python (each twice), the server, the trading controls, replay, Redis."""
        port = str(_free_port())
        ran = []
        for block in readme_blocks():
            where = f"README.md line {block.line}"
            if block.mark == "skip":
                continue
            if block.lang == "python":
                script = reader.cwd / f"block_{block.line}.py"
                script.write_text(block.body)
                for attempt in ("first", "second"):
                    result = subprocess.run(
                        [sys.executable, script.name],
                        cwd=reader.cwd,
                        env=reader.env,
                        capture_output=True,
                        text=True,
                        timeout=_TIMEOUT,
                        check=False,
                    )
                    assert 0 == result.returncode, f"{where}, {attempt} run:\n{result.stdout}\n{result.stderr}"
                ran.append("python")
                continue
            body = block.body.replace("8080", port)
            if block.mark == "redis":
                server = request.getfixturevalue("redis_server")
                body = body.replace("127.0.0.1:6379", f"127.0.0.1:{server.port}")
            outputs = []
            for command in shell_commands(body):
                if block.mark == "redis" and command.startswith("redis-server "):
                    continue  # the test's own server, started from the same config, stands in for it
                outputs.append(reader.run(command, where).stdout)
            ran.append(block.mark or "sh")
            if "/v1/mode" in body:
                assert '"value":5.0' in outputs[-2].replace(" ", "")
                assert '"active_mode":"DEFENSIVE"' in outputs[-1].replace(" ", "")
            if "/v1/trading" in body:
                assert '"value":"halted"' in outputs[-4].replace(" ", "")  # the ETH/USD halt, read back
                assert 'policystore_trading_state{name="ETH/USD",scope="instrument"} 2.0' in outputs[-3]

        tour, change_control, expiring = ["sh", "python"], ["sh", "sh", "python"], ["sh", "python"]
        server, fleet = ["sh"], ["python"]
        rest = ["python", "python", "sh", "python", "sh", "redis", "python", "python"]
        assert [*tour, *change_control, *expiring, *server, *fleet, *rest] == ran
        assert (reader.cwd / "replay.png").read_bytes()[:4] == b"\x89PNG"
        assert 2 == len((reader.cwd / "decisions.jsonl").read_text().splitlines())  # one decision per run
