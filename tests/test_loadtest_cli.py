"""``waitroom loadtest`` as a new user runs it: a missing or wrong password, or no server, is one
clear line on stderr and exit status 2, never a Python traceback (issue 17)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import trio

from tests.conftest import RunningServer

#: The console script installed beside this interpreter, as a user runs it.
WAITROOM = Path(sys.executable).with_name("waitroom")
RUN_LIMIT = 60.0
"""Seconds a refused run may take at most (it should stop before any load starts)."""


async def loadtest(*args: str) -> tuple[int, str]:
    with trio.fail_after(RUN_LIMIT):
        done = await trio.run_process(
            [str(WAITROOM), "loadtest", *args],
            check=False,
            capture_stdout=True,
            capture_stderr=True,
        )
    return done.returncode, done.stderr.decode()


def one_clear_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("loadtest: "), stderr
    return lines[0]


async def test_quick_without_password_says_so(waitroom_server: RunningServer) -> None:
    status, stderr = await loadtest(waitroom_server.base_url, "--quick")
    assert status == 2
    assert "--password is required" in one_clear_line(stderr)


async def test_wrong_password_is_one_line(waitroom_server: RunningServer) -> None:
    status, stderr = await loadtest(waitroom_server.base_url, "--quick", "--password", "wrong")
    assert status == 2
    line = one_clear_line(stderr)
    assert "refused" in line and "--password" in line


async def test_no_server_is_one_line() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, stderr = await loadtest(f"http://127.0.0.1:{port}", "--quick", "--password", "x")
    assert status == 2
    assert "cannot reach" in one_clear_line(stderr)


def report_errors(out: Path) -> dict[str, int]:
    """The errors of the one report a run wrote under ``out``."""
    [report] = out.glob("*/report.json")
    errors: dict[str, int] = json.loads(report.read_text())["errors"]
    return errors


async def test_a_process_that_cannot_run_says_why_in_the_report(
    waitroom_server: RunningServer, tmp_path: Path
) -> None:
    """With several load-generator processes, one that cannot start (here: a wrong password)
    names its reason in the report's errors, not a bare ``worker_failed``."""
    status, _ = await loadtest(
        waitroom_server.base_url,
        *("--quick", "--password", "wrong", "--processes", "2", "--out", str(tmp_path)),
    )
    assert status == 1  # the run ends with errors
    errors = report_errors(tmp_path)
    assert "worker_failed" not in errors, errors
    reasons = [kind for kind in errors if kind.startswith("worker_could_not_run: ")]
    assert len(reasons) == 1 and "refused" in reasons[0], errors
    assert errors[reasons[0]] == 2, errors
