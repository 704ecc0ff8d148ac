"""A real PostgreSQL for the storage tests: one server per session (the cluster tests' fixture
class, `tests.cluster.servers.PostgresServer`), a fresh database per test.

Each test's ``store`` is on a copy of a template migrated once (``CREATE DATABASE ... TEMPLATE``),
so a test costs a file copy, not nine migrations. ``db_path`` (a SQLite file in ``tests/storage``)
is here the URL of a new, empty database: the tests that open stores of their own (two connections
racing, migrations from nothing, reopening) open them on PostgreSQL. Both fixtures replace the
SQLite ones, so the test functions imported into this package run unchanged on PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import cast

import pytest
import trio

from storage.db import Store, open_store
from tests.cluster.conftest import postgres_server
from tests.cluster.servers import PostgresServer
from tests.conftest import DEMO_PASSWORD, RunningServer
from waitroom.server import ServerConfig, ServerInfo, run_server

__all__ = ["postgres_server"]  # a server of a test's own, for the tests that restart it

TEMPLATE = "waitroom_template"

_numbers = itertools.count(1)


def database_url(server: PostgresServer, name: str) -> str:
    """The URL of database ``name`` on ``server``."""
    return server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole run, with a migrated template database."""
    server = PostgresServer()
    try:
        server.sql(f"CREATE DATABASE {TEMPLATE}")

        async def migrate() -> None:
            store = await Store.open(database_url(server, TEMPLATE))
            await store.aclose()

        trio.run(migrate)
        yield server
    finally:
        server.stop()


@pytest.fixture
def empty_database(postgres: PostgresServer) -> Callable[[], str]:
    """Makes a new, empty database and returns its URL (for the migration tests)."""

    def make() -> str:
        name = f"empty_{next(_numbers)}"
        postgres.sql(f"CREATE DATABASE {name}")
        return database_url(postgres, name)

    return make


@pytest.fixture
def db_path(empty_database: Callable[[], str]) -> str:
    """The URL of an empty database of this test's own (the SQLite suite's file path)."""
    return empty_database()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh migrated database of this test's own."""
    name = f"test_{next(_numbers)}"
    postgres.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield database_url(postgres, name)


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    async with open_store(pg_url) as opened:
        yield opened


@pytest.fixture
async def waitroom_server(db_path: str) -> AsyncIterator[RunningServer]:
    """The whole server in-process (as ``tests/conftest.py`` starts it) on a new PostgreSQL
    database: the page and gateway tests imported here run their journeys on PostgreSQL."""
    config = ServerConfig(
        port=0, media_udp_port=0, database_url=db_path, demo_password=DEMO_PASSWORD
    )
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
        assert info.demo is not None
        # The tests hand ``db_path`` to open_store, which takes the URL where it takes a file.
        yield RunningServer(info.url, info.registry, info.demo, cast(Path, db_path), info)
        nursery.cancel_scope.cancel()
