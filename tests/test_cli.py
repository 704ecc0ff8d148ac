"""``waitroom serve`` as a real subprocess: the banner lines, a live /healthz, a clean SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from functools import partial
from pathlib import Path

import pytest
import trio

from storage import seed
from waitroom.cli import announcer, build_parser, config_from_args
from waitroom.server import DemoSignIn, ServerInfo

#: Start-up on a loaded 2-core machine: imports, migrations, one argon2 hash.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
BANNER_LINES = 5


async def read_lines(stream: trio.abc.ReceiveStream, count: int) -> list[str]:
    buffer = b""
    while buffer.count(b"\n") < count:
        chunk = await stream.receive_some()
        if not chunk:
            break
        buffer += chunk
    return buffer.decode().splitlines()


def fetch_json(url: str) -> tuple[int, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


async def test_serve_prints_where_and_how_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    command = [
        sys.executable,
        "-m",
        "waitroom.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--media-port",
        "0",
        "--db",
        str(db),
    ]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        )
        try:
            assert process.stdout is not None
            with trio.fail_after(START_TIMEOUT):
                lines = await read_lines(process.stdout, BANNER_LINES)
            served = re.fullmatch(r"Serving on (http://127\.0\.0\.1:\d+)", lines[0])
            assert served is not None, lines
            base = served.group(1)
            area = re.fullmatch(r"Demo waiting area: (\S+)", lines[1])
            assert area is not None, lines
            assert area.group(1).startswith(f"{base}/w/")
            sign_in = re.fullmatch(r"Demo provider sign-in: (\S+) / (\S+)", lines[3])
            assert sign_in is not None, lines
            assert sign_in.group(1) == "provider"
            assert len(sign_in.group(2)) >= 12

            status, body = await trio.to_thread.run_sync(fetch_json, f"{base}/healthz")
            assert status == 200
            assert isinstance(body, dict) and body["status"] == "ok"

            process.send_signal(signal.SIGTERM)
            with trio.fail_after(STOP_TIMEOUT):
                code = await process.wait()
            assert code == 0
        finally:
            if process.returncode is None:
                process.kill()
    assert db.exists()


async def test_restart_on_an_existing_database_prints_no_demo(tmp_path: Path) -> None:
    db = tmp_path / "again.sqlite3"
    command = [
        sys.executable,
        "-m",
        "waitroom.cli",
        "serve",
        "--port",
        "0",
        "--media-port",
        "0",
        "--db",
        str(db),
    ]
    for expected_lines in (BANNER_LINES, 1):
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
            )
            try:
                assert process.stdout is not None
                with trio.fail_after(START_TIMEOUT):
                    lines = await read_lines(process.stdout, 1)
                    if expected_lines > 1:
                        lines += await read_lines(process.stdout, expected_lines - len(lines))
                assert lines[0].startswith("Serving on http://127.0.0.1:")
                if expected_lines == 1:
                    assert not any("Demo" in line for line in lines)
                process.send_signal(signal.SIGINT)
                with trio.fail_after(STOP_TIMEOUT):
                    assert await process.wait() == 0
            finally:
                if process.returncode is None:
                    process.kill()


def test_certfile_and_keyfile_go_together() -> None:
    args = build_parser().parse_args(["serve", "--certfile", "cert.pem"])
    try:
        config_from_args(args)
    except SystemExit as exit_:
        assert "go together" in str(exit_)
    else:
        raise AssertionError("a certificate without its key was accepted")


def test_defaults_serve_the_embedded_database_locally() -> None:
    config = config_from_args(build_parser().parse_args(["serve"]))
    assert config.host == "127.0.0.1"
    assert config.port == 8080
    assert config.db_path == Path("waitroom.sqlite3")
    assert config.certfile is None


def _demo_info() -> ServerInfo:
    from runtime import Registry

    demo = DemoSignIn("provider", "admin", "given-Secret-123", (("GP", "http://x/w/gp"),))
    return ServerInfo("http://127.0.0.1:8080", Registry(), demo)


def test_an_explicit_demo_password_is_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15: a password the operator chose is theirs; only a generated one is shown (once)."""
    args = build_parser().parse_args(["serve", "--demo-password", "given-Secret-123"])
    announcer(config_from_args(args, {}))(_demo_info())
    out = capsys.readouterr().out
    assert "given-Secret-123" not in out
    assert "Demo provider sign-in: provider / " in out
    generated = build_parser().parse_args(["serve"])
    announcer(config_from_args(generated, {}))(_demo_info())
    assert "Demo provider sign-in: provider / given-Secret-123" in capsys.readouterr().out


def test_no_demo_users_for_an_https_public_url() -> None:
    """Issue 15: a real deployment (reached over https) never gets well-known demo sign-ins."""
    assert not seed.demo_allowed("https://clinic.example")
    assert not seed.demo_allowed("HTTPS://clinic.example/")
    assert seed.demo_allowed("")
    assert seed.demo_allowed("http://localhost:8080")
