"""``waitroom serve --database postgresql://...``: the real server, in its own process, keeps the
demo and a patient's arrival in PostgreSQL (and writes no SQLite file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from storage.db import open_store
from storage.migrations import current_version, latest_version
from tests.httpclient import HttpClient
from tests.served import served
from waitroom.cli import build_parser, config_from_args


async def test_a_server_on_postgresql_stores_an_arrival_there(
    empty_database: Callable[[], str], tmp_path: Path
) -> None:
    url = empty_database()
    sqlite_file = tmp_path / "not-used.sqlite3"
    with served(sqlite_file, "--database", url, "--media-workers", "0") as server:
        assert server.links, server.banner
        client = HttpClient(server.url)
        path = urlsplit(server.links[0]).path
        form = await client.get(path)
        arrived = await client.post(
            path, {"csrf_token": form.csrf_token(), "name": "Olena Postgres", "consent": "yes"}
        )
        assert arrived.status == 200
        async with open_store(url) as store:
            assert await store.run(current_version) == latest_version()
            rows = await store.run(
                lambda db: list(
                    db.query(
                        "SELECT c.status, c.details FROM callers c "
                        "JOIN waiting_areas a ON a.id = c.area_id WHERE a.slug = ?",
                        (path.rstrip("/").rsplit("/", 1)[-1],),
                    )
                )
            )
    assert [r["status"] for r in rows] == ["waiting"]
    assert "Olena Postgres" in rows[0]["details"]
    assert not sqlite_file.exists()


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        (["--database", "postgresql://w@db/w"], {}, "postgresql://w@db/w"),
        ([], {"WAITROOM_DATABASE": "postgres://w@db/w"}, "postgres://w@db/w"),
        (["--database", "postgresql://a@x/a"], {"WAITROOM_DATABASE": "postgresql://b@y/b"},
         "postgresql://a@x/a"),
        ([], {}, ""),
    ],
)  # fmt: skip
def test_the_database_comes_from_the_flag_or_the_environment(
    flags: list[str], environ: dict[str, str], expected: str
) -> None:
    args = build_parser().parse_args(["serve", *flags])
    assert config_from_args(args, environ).database_url == expected


def test_a_database_that_is_not_a_postgresql_url_is_refused() -> None:
    args = build_parser().parse_args(["serve", "--database", "/var/lib/waitroom.sqlite3"])
    with pytest.raises(SystemExit, match="postgresql://"):
        config_from_args(args, {})
