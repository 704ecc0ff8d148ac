"""The group scenario of the load tester (issue 12) through the real server, at a small size.

Eight simulated participants arrive by the session's link, are admitted all at once, go into
three breakout rooms of three (3, 3, 2) with a second websocket and a media peer each, and come
back: every figure ``bench/group.py`` reports at 60 is measured here, everyone reached the room
the moderator's view assigned and came back with media, and nothing failed.

The server is the whole of ``run_server`` in this process with its media worker inside. The
product's closing countdown is 60 s by default; so that the test takes seconds, the server is
configured with a 1 s countdown (``breakout_countdown_seconds``, the setting behind
``--breakout-countdown-seconds``, whose flag accepts 10 s at least). The scenario itself reads the
countdown from the close's answer and times "back" from its end, so it measures the same thing
either way.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.test_loadtest_cli import RUN_LIMIT, one_clear_line
from waitroom.loadtest.clip import SimulcastClip, make_simulcast_clip
from waitroom.loadtest.group import GroupLoadtestError, GroupScenario, run, summarise, table
from waitroom.server import ServerConfig, ServerInfo, run_server

PARTICIPANTS = 8
ROOM_SIZE = 3
COUNTDOWN = 1.0
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clip() -> SimulcastClip:
    return make_simulcast_clip(0.5)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    db_path = tmp_path / "waitroom.sqlite3"
    config = ServerConfig(
        port=0,
        media_udp_port=0,
        db_path=db_path,
        demo_password=DEMO_PASSWORD,
        breakout_countdown_seconds=COUNTDOWN,
    )
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(
            functools.partial(run_server, config, handle_signals=False)
        )
        assert info.demo is not None
        yield RunningServer(info.url, info.registry, info.demo, db_path, info)
        nursery.cancel_scope.cancel()


async def test_a_small_group_session_with_breakouts_is_measured_end_to_end(
    server: RunningServer, clip: SimulcastClip
) -> None:
    spec = GroupScenario(
        base_url=server.base_url,
        username=server.demo.provider_username,
        password=DEMO_PASSWORD,
        participants=PARTICIPANTS,
        arrival_seconds=1.0,
        room_size=ROOM_SIZE,
        main_seconds=0.5,
        room_seconds=0.5,
        phase_timeout=20.0,
    )
    raw = await run(spec, clip=clip)
    figures = summarise(raw)
    shown = table(figures)
    print(shown)  # the figures, with pytest -s
    assert figures["errors"] == {}, shown
    assert figures["arrived"] == PARTICIPANTS, shown
    for name in (
        "lobby_update",
        "lobby_update_from_enter",
        "admission_to_media",
        "breakout_moved",
        "breakout_open",
        "breakout_back_event",
        "breakout_close",
    ):
        stats = figures[name]
        assert stats["count"] == PARTICIPANTS, (name, shown)
        assert stats["p50_ms"] is not None and stats["p99_ms"] is not None, (name, shown)
        assert 0 <= stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"], (name, shown)
    assert figures["rooms"] == 3
    assert sorted(Counter(raw["assignment"].values()).values()) == [2, 3, 3], raw["assignment"]
    assert figures["in_the_assigned_room"] == PARTICIPANTS, shown
    # Media stays inside each room: everyone saw video from their room-mates and nobody else.
    assert figures["room_video_checked"] == PARTICIPANTS, shown
    assert figures["room_video_from_outside"] == 0, shown
    assert figures["room_video_streams_p50"] in (1, 2), shown
    assert figures["moderator_sees_all_present_ms"] is not None, shown
    assert figures["moderator_lists_all_admitted_ms"] is not None, shown
    assert figures["countdown_seconds"] is not None
    assert 0 < figures["countdown_seconds"] <= COUNTDOWN + 0.5, shown
    # Three media connections each: the main call, their room, the main call again.
    assert figures["media_connections"] == 3 * PARTICIPANTS, shown
    assert figures["media_received"] > 0 and figures["srtp_errors"] == 0, shown
    assert "group session: 8 participants, 3 rooms of 3" in shown


async def loadtest(*args: str) -> tuple[int, str]:
    """``waitroom loadtest`` through this interpreter (not the installed script, whose package
    list is the one of its install)."""
    with trio.fail_after(RUN_LIMIT):
        done = await trio.run_process(
            [sys.executable, "-m", "waitroom.cli", "loadtest", *args],
            check=False,
            capture_stdout=True,
            capture_stderr=True,
            cwd=ROOT,
        )
    return done.returncode, done.stderr.decode()


async def test_the_group_scenario_refuses_in_one_line(server: RunningServer) -> None:
    group = (server.base_url, "--scenario", "group")
    status, stderr = await loadtest(*group, "--password", "wrong", "--participants", "2")
    assert status == 2
    assert "refused" in one_clear_line(stderr)


def test_the_group_scenario_is_bounded() -> None:
    base = {"base_url": "http://127.0.0.1:1", "username": "provider", "password": "x"}
    for bad, words in (
        ({"participants": 61}, "--participants must be 1..60"),
        ({"participants": 0}, "--participants must be 1..60"),
        ({"room_size": 1}, "--room-size must be 2..60"),
        ({"arrival_seconds": 601.0}, "--arrival-seconds must be 0..600"),
        ({"room_seconds": -1.0}, "--room-seconds must be 0..300"),
        ({"processes": 9}, "--processes must be 1..8"),
    ):
        with pytest.raises(GroupLoadtestError, match=words):
            GroupScenario(**base, **bad).validate()  # type: ignore[arg-type]
    assert GroupScenario(**base).hard_limit < 600  # type: ignore[arg-type]


async def test_the_crowd_in_child_processes_reports_every_milestone(server: RunningServer) -> None:
    """What bench/group.py runs: the participants in two child processes, their milestones read
    from their output (here 4 people in rooms of 2, a short clip encoded by each child)."""
    spec = GroupScenario(
        base_url=server.base_url,
        username=server.demo.provider_username,
        password=DEMO_PASSWORD,
        participants=4,
        arrival_seconds=0.5,
        room_size=2,
        main_seconds=0.2,
        room_seconds=0.2,
        phase_timeout=20.0,
        processes=2,
        clip_seconds=0.2,
    )
    figures = summarise(await run(spec))
    shown = table(figures)
    assert figures["errors"] == {}, shown
    for name in ("lobby_update", "admission_to_media", "breakout_open", "breakout_close"):
        assert figures[name]["count"] == 4, (name, shown)
    assert figures["in_the_assigned_room"] == 4, shown
    assert figures["media_connections"] == 12, shown
    assert len(figures["client_cpu_seconds"]) == 3  # this process and the two children
