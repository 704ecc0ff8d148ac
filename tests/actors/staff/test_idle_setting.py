"""``--staff-idle-minutes`` / ``WAITROOM_STAFF_IDLE_MINUTES`` (issue 15): the staff idle timeout is an
operator's setting, an hour by default; the sign-in desk and the Directory started at boot (and by
``waitroom serve``) both use it.

Failed on the old code: no flag, no variable, and :func:`actors.boot.start_actors` started both
actors with the hour whatever was wanted.

The deadlines are read from storage at chosen instants (``now=``), so nothing here waits: a session
that would still be valid 59 minutes on with the default is over 6 minutes on with a 5-minute
setting.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
import trio

from actors import addresses
from actors.boot import start_actors
from actors.staff.directory import DescribeSession
from actors.staff.signin import SignIn
from runtime import Registry, Supervisor
from services.passwords import Passwords
from storage import sessions, staff
from storage.db import Store, open_store
from storage.times import utcnow
from waitroom.cli import STAFF_IDLE_ENV, build_parser, config_from_args
from waitroom.server import ServerConfig, ServerInfo, run_server

PASSWORD = "correct-horse-battery"
SHORT = timedelta(minutes=5)


def config(argv: list[str], env: dict[str, str]) -> ServerConfig:
    return config_from_args(build_parser().parse_args(["serve", *argv]), env)


def test_the_flag_and_the_variable_set_the_idle_timeout_and_refuse_nonsense() -> None:
    assert config([], {}).staff_idle_timeout == timedelta(minutes=60)
    assert config(["--staff-idle-minutes", "15"], {}).staff_idle_timeout == timedelta(minutes=15)
    assert config([], {STAFF_IDLE_ENV: "20"}).staff_idle_timeout == timedelta(minutes=20)
    flag_wins = config(["--staff-idle-minutes", "15"], {STAFF_IDLE_ENV: "20"})
    assert flag_wins.staff_idle_timeout == timedelta(minutes=15)
    for bad in ("0", "4", "721", "-60"):
        with pytest.raises(SystemExit, match="--staff-idle-minutes"):
            config(["--staff-idle-minutes", bad], {})
        with pytest.raises(SystemExit, match="--staff-idle-minutes"):
            config([], {STAFF_IDLE_ENV: bad})
    with pytest.raises(SystemExit, match=STAFF_IDLE_ENV):
        config([], {STAFF_IDLE_ENV: "an hour"})


async def sign_in(registry: Registry, store: Store) -> str:
    await staff.create_user(store, "dana", "Dr Dana", await Passwords().hash(PASSWORD))
    info = await registry.ref(addresses.SIGN_IN).ask(SignIn("dana", PASSWORD, "192.0.2.7"))
    return str(info.session_id)


async def valid_after(store: Store, session_id: str, after: timedelta) -> bool:
    found = await sessions.get_valid_session(store, session_id, now=utcnow() + after)
    return found is not None


async def test_a_short_setting_is_honoured_at_sign_in_and_on_use(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with open_store(tmp_path / "idle.sqlite3") as store:
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store, staff_idle_timeout=SHORT)
        session_id = await sign_in(registry, store)
        # The sign-in desk's first deadline: five minutes, not the default hour.
        assert await valid_after(store, session_id, SHORT - timedelta(minutes=1))
        assert not await valid_after(store, session_id, SHORT + timedelta(minutes=1))
        # A page request (the Directory) slides it by five minutes too.
        await registry.ref(addresses.DIRECTORY).ask(DescribeSession(session_id))
        assert await valid_after(store, session_id, SHORT - timedelta(minutes=1))
        assert not await valid_after(store, session_id, SHORT + timedelta(minutes=1))
        nursery.cancel_scope.cancel()


async def test_the_default_stays_an_hour(tmp_path: Path, nursery: trio.Nursery) -> None:
    async with open_store(tmp_path / "idle.sqlite3") as store:
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        session_id = await sign_in(registry, store)
        await registry.ref(addresses.DIRECTORY).ask(DescribeSession(session_id))
        assert await valid_after(store, session_id, timedelta(minutes=59))
        assert not await valid_after(store, session_id, timedelta(minutes=61))
        nursery.cancel_scope.cancel()


async def test_waitroom_serve_hands_the_setting_to_the_actors(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """The whole server, as ``waitroom serve --staff-idle-minutes 5`` starts it."""
    server = ServerConfig(
        port=0,
        media_udp_port=0,
        db_path=tmp_path / "served.sqlite3",
        demo_password=PASSWORD,
        staff_idle_timeout=SHORT,
    )
    info: ServerInfo = await nursery.start(partial(run_server, server, handle_signals=False))
    assert info.demo is not None
    signed_in = await info.registry.ref(addresses.SIGN_IN).ask(
        SignIn(info.demo.provider_username, PASSWORD, "192.0.2.7")
    )
    async with open_store(server.db_path) as store:
        assert await valid_after(store, signed_in.session_id, SHORT - timedelta(minutes=1))
        assert not await valid_after(store, signed_in.session_id, SHORT + timedelta(minutes=1))
    nursery.cancel_scope.cancel()
