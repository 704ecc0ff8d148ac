"""Fixtures of the cluster tests: a real redis-server or PostgreSQL per test, started and stopped here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.servers import PostgresServer, RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port with its files in ``tmp_path``."""
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server on a free loopback port with its own data directory."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()
