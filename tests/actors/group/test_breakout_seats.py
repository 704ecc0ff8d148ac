"""Breakout seats and plans in storage (``storage.group_breakouts``), on a real SQLite file: a
seat opens one room only, only its hash is kept, a new seat revokes the person's old one, closing
revokes them all, and the plan comes back as it was saved."""

from __future__ import annotations

from pathlib import Path

from storage import group_breakouts as seats
from storage.db import fetch_all, open_store
from storage.group_breakouts import SeatRequest


async def test_seats_open_their_own_room_only_and_are_revoked_by_moving_and_closing(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "w.sqlite3") as store:
        issued = await seats.issue_seats(
            store, 4, [SeatRequest("room-a", "p-1", "Ada"), SeatRequest("room-b", "p-2", "Bo")]
        )
        found = await seats.find_seat(store, "room-a", issued["p-1"])
        assert found is not None and (found.member_id, found.display_name) == ("p-1", "Ada")
        assert await seats.find_seat(store, "room-b", issued["p-1"]) is None  # another room's
        assert await seats.find_seat(store, "room-a", "guessed") is None
        stored = await store.run(
            lambda db: fetch_all(db, "SELECT token_hash FROM group_breakout_seats")
        )
        assert all(row["token_hash"] not in issued.values() for row in stored)
        # Moved: the new seat works, the old one no longer.
        again = await seats.issue_seats(store, 4, [SeatRequest("room-b", "p-1", "Ada")])
        assert await seats.find_seat(store, "room-a", issued["p-1"]) is None
        assert await seats.find_seat(store, "room-b", again["p-1"]) is not None
        await seats.revoke_room_seats(store, "room-b")
        assert await seats.find_seat(store, "room-b", again["p-1"]) is None
        fresh = await seats.issue_seats(store, 4, [SeatRequest("room-c", "p-3", "Cy")])
        other = await seats.issue_seats(store, 5, [SeatRequest("room-d", "p-3", "Cy")])
        assert await seats.revoke_session_seats(store, 4) == 1
        assert await seats.find_seat(store, "room-c", fresh["p-3"]) is None
        assert await seats.find_seat(store, "room-d", other["p-3"]) is not None  # session 5's


async def test_the_plan_is_kept_per_session(tmp_path: Path) -> None:
    async with open_store(tmp_path / "w.sqlite3") as store:
        assert await seats.load_plan(store, 4) is None
        plan = {"rooms": [{"id": "a", "name": "A"}], "assigned": {"p-1": "a"}, "mode": "manual"}
        await seats.save_plan(store, 4, plan)
        await seats.save_plan(store, 4, {**plan, "mode": "random"})
        assert await seats.load_plan(store, 4) == {**plan, "mode": "random"}
        assert await seats.load_plan(store, 5) is None
