"""Fixtures shared by every test package: a real Waitroom server in-process on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio

from runtime import Registry
from waitroom.server import DemoSignIn, ServerConfig, ServerInfo, run_server

#: Tests that want the cores to themselves (real Redis/PostgreSQL nodes with recovery deadlines,
#: load tests with loss limits) are marked slow here, so `./manage test` runs them in its serial
#: part with the browser tests, after the rest has run on every core (pytest-xdist).
SERIAL_PATHS = ("tests/cluster/", "tests/test_loadtest")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(config.rootpath).as_posix().startswith(SERIAL_PATHS):
            item.add_marker(pytest.mark.slow)


#: The demo users' password in tests (a new database otherwise gets a random one).
DEMO_PASSWORD = "demo-password-for-tests"


@dataclass
class RunningServer:
    """What ``waitroom_server`` yields: where it listens, its actors, the demo sign-ins."""

    base_url: str
    registry: Registry
    demo: DemoSignIn
    db_path: Path
    info: ServerInfo


@pytest.fixture
async def waitroom_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The whole server (store, actors, pages, gateway) on 127.0.0.1 port 0 over a fresh demo
    database in ``tmp_path``; stopped and closed after the test."""
    db_path = tmp_path / "waitroom.sqlite3"
    config = ServerConfig(port=0, media_udp_port=0, db_path=db_path, demo_password=DEMO_PASSWORD)
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
        assert info.demo is not None
        yield RunningServer(info.url, info.registry, info.demo, db_path, info)
        nursery.cancel_scope.cancel()
