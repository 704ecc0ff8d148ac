"""The first start of a real deployment (issue 15): an https server seeds no demo users.

A server whose public URL is https is reached by real people; the demo's well-known sign-ins
(``provider`` and ``admin``) with a password printed at start-up would be a way in. On an empty
database such a server creates nobody and prints no password; ``waitroom create-admin`` makes the
organisation and its first administrator (the password from standard input), who signs in.
A plain-http server (the local quick start) still gets the demo, and prints its generated password.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from waitroom import cli
from waitroom.cli import banner
from waitroom.server import ServerConfig, ServerInfo, run_server

HTTP_OK = 200
HTTP_SEE_OTHER = 303
PASSWORD = "first-admin-Secret-42"


@asynccontextmanager
async def serving(db_path: Path, public_url: str) -> AsyncIterator[ServerInfo]:
    config = ServerConfig(port=0, media_udp_port=0, db_path=db_path, public_url=public_url)
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
        yield info
        nursery.cancel_scope.cancel()


def staff_count(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        return int(db.execute("SELECT count(*) FROM staff_users").fetchone()[0])


def create_admin(db_path: Path, *extra: str, stdin: str = PASSWORD + "\n") -> int:
    argv = ["create-admin", "--db", str(db_path), "--org", "Riverside Health", *extra]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        return cli.main(argv)


async def test_an_https_server_on_an_empty_database_seeds_nobody_and_prints_no_password(
    tmp_path: Path,
) -> None:
    """Failed on the old code: the https server seeded provider and admin (info.demo was set)."""
    db_path = tmp_path / "clinic.sqlite3"
    async with serving(db_path, "https://video.clinic.example") as info:
        assert info.demo is None
        assert staff_count(db_path) == 0
        assert banner(info) == [f"Serving on {info.url}"]  # no sign-ins, no password
        browser = HttpClient(info.url)
        for username in ("provider", "admin"):
            refused = await sign_in(browser, username, "anything")
            assert refused.status != HTTP_SEE_OTHER


async def test_a_plain_http_quick_start_still_gets_the_demo_and_its_password(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "demo.sqlite3", "") as info:
        assert info.demo is not None
        lines = banner(info)
        assert f"Demo admin sign-in: admin / {info.demo.password}" in lines
    async with serving(tmp_path / "demo.sqlite3", "") as again:  # not a new database: no demo
        assert again.demo is None and banner(again) == [f"Serving on {again.url}"]


async def test_the_first_administrator_is_created_from_the_command_line_and_signs_in(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "clinic.sqlite3"
    short = partial(create_admin, db_path, "--username", "olena", stdin="short\n")
    assert await trio.to_thread.run_sync(short) == 2
    assert not db_path.exists()
    made = await trio.to_thread.run_sync(partial(create_admin, db_path, "--username", "olena"))
    assert made == 0 and staff_count(db_path) == 1
    again = await trio.to_thread.run_sync(partial(create_admin, db_path, "--username", "mallory"))
    assert again == 1 and staff_count(db_path) == 1
    async with serving(db_path, "https://video.clinic.example") as info:
        assert info.demo is None
        browser = HttpClient(info.url)
        signed_in = await sign_in(browser, "olena", PASSWORD)
        assert signed_in.status == HTTP_SEE_OTHER, signed_in.text[:300]
        setup = await browser.get("/admin/setup")
        assert setup.status == HTTP_OK and "Riverside Health" in setup.text
