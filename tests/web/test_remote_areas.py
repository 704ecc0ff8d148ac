"""What another node's area said is kept for ``KEEP_FOR`` seconds and never past its minute."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.messages import AreaPublic
from web import remote_areas
from web.remote_areas import KEEP_FOR, RemoteAreas

FACTS = AreaPublic(1, "Clinic", "slug", 1, "UTC", True, None, (), "", True)


def _at(seconds_into_minute: float) -> RemoteAreas:
    """Kept areas whose wall clock stands ``seconds_into_minute`` into a minute."""
    return RemoteAreas(lambda: 60.0 * 29_000_000 + seconds_into_minute)


async def test_kept_for_keep_for_seconds_then_asked_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kept = _at(10.0)
    kept.keep("area/1", FACTS)
    await trio.sleep(KEEP_FOR - 0.01)
    assert kept.get("area/1") is FACTS
    await trio.sleep(0.02)
    assert kept.get("area/1") is None


async def test_never_kept_past_the_minute_it_was_asked_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An area opens and closes on a minute's boundary: what it said of its hours in one minute
    is not shown in the next."""
    kept = _at(59.5)
    kept.keep("area/1", FACTS)
    await trio.sleep(0.49)
    assert kept.get("area/1") is FACTS
    await trio.sleep(0.02)
    assert kept.get("area/1") is None


async def test_forgotten_at_once_and_bounded(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_areas, "MOST", 3)
    kept = RemoteAreas()
    kept.keep("area/1", FACTS)
    kept.forget("area/1")
    assert kept.get("area/1") is None
    for n in range(10):
        kept.keep(f"area/{n}", FACTS)
    assert kept.get("area/9") is FACTS
    assert len(kept._kept) <= 3
