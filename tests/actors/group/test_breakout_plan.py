"""The breakout plan's rules on their own: rooms and names, even random assignment, manual
assignment checked whole, the timer's bounds, what participants see, and the stored record."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from actors import refusals
from actors.group import breakout_plan as plans
from actors.group.breakout_plan import MAX_DURATION, MAX_ROOMS, Mode, Phase, Plan
from runtime.errors import Refusal


def maker() -> Callable[[], str]:
    """Room ids r1, r2, ... as the desk's ``new_id`` would give random ones."""
    counter = itertools.count(1)
    return lambda: f"r{next(counter)}"


def refused(code: str, fn: Callable[..., object], *args: object) -> None:
    with pytest.raises(Refusal) as caught:
        fn(*args)
    assert caught.value.code == code


def test_rooms_are_created_one_to_twenty_with_names_or_numbers() -> None:
    plan = plans.create(3, ["Pairs", "  Trios  here "], maker(), Plan())
    assert [r.name for r in plan.rooms] == ["Pairs", "Trios here", "Room 3"]
    assert len({r.id for r in plan.rooms}) == 3
    assert len(plans.create(MAX_ROOMS, None, maker(), Plan()).rooms) == MAX_ROOMS
    for count in (0, MAX_ROOMS + 1, "3", 2.0, True, None):
        refused(refusals.BAD_FIELD, plans.create, count, None, maker(), Plan())
    for names in ("Room", ["a", "b", "c"], [""], ["x" * 61], [3]):
        refused(refusals.BAD_FIELD, plans.create, 2, names, maker(), Plan())


def test_recreating_keeps_the_rooms_that_remain_and_their_people() -> None:
    plan = plans.create(3, None, maker(), Plan())
    plan.assigned = {"p-1": plan.rooms[0].id, "p-2": plan.rooms[2].id}
    smaller = plans.create(2, None, lambda: "new", plan)
    assert [r.id for r in smaller.rooms] == [plan.rooms[0].id, plan.rooms[1].id]
    assert smaller.assigned == {"p-1": plan.rooms[0].id}


@pytest.mark.parametrize("people", [1, 5, 6, 13, 59, 60])
@pytest.mark.parametrize("rooms", [1, 2, 4, 7, 10, 20])
def test_even_random_assignment_sizes_differ_by_at_most_one(people: int, rooms: int) -> None:
    members = [f"p-{n}" for n in range(people)]
    room_ids = [f"r{n}" for n in range(rooms)]
    assigned = plans.assign_evenly(members, room_ids, random.Random(people * 100 + rooms))
    assert set(assigned) == set(members)
    sizes = [sum(1 for r in assigned.values() if r == room) for room in room_ids]
    assert sum(sizes) == people and max(sizes) - min(sizes) <= 1


def test_random_assignment_is_random_and_late_arrivals_fill_the_smallest_room() -> None:
    members = [f"p-{n}" for n in range(12)]
    draws = {
        tuple(sorted(plans.assign_evenly(members, ["a", "b", "c"], random.Random(seed)).items()))
        for seed in range(20)
    }
    assert len(draws) > 1
    plan = Plan([plans.BreakoutRoom("a", "A"), plans.BreakoutRoom("b", "B")], {"p-1": "a"})
    assert plans.smallest_room(plan) == "b"


def test_a_manual_assignment_is_checked_whole_before_anything_changes() -> None:
    plan = plans.create(2, None, maker(), Plan())
    first, second = (r.id for r in plan.rooms)
    known = {"p-1", "p-2"}
    changes = plans.check_assignments(plan, {"p-1": first, "p-2": None}, known)
    plans.apply(plan, changes)
    assert plan.assigned == {"p-1": first}
    before = dict(plan.assigned)
    refused(refusals.NOT_FOUND, plans.check_assignments, plan, {"p-2": "elsewhere"}, known)
    refused(refusals.BAD_FIELD, plans.check_assignments, plan, {"p-9": second}, known)
    refused(refusals.BAD_FIELD, plans.check_assignments, plan, {}, known)
    refused(refusals.BAD_FIELD, plans.check_assignments, plan, ["p-1"], known)
    assert plan.assigned == before
    refused(refusals.NOT_FOUND, plan.room, "another-sessions-room")
    refused(refusals.BAD_FIELD, plans.check_mode, "alphabetical")


def test_the_timer_extends_and_shortens_within_bounds() -> None:
    assert plans.check_duration(600) == 600
    for duration in (9, MAX_DURATION + 1, 60.5, "600", None):
        refused(refusals.BAD_FIELD, plans.check_duration, duration)
    assert plans.adjusted(100.0, 60) == 160.0
    assert plans.adjusted(100.0, -40) == 60.0
    assert plans.adjusted(100.0, -400) == 0.0  # shortened past now: the rooms close now
    for change in (0, 1.5, "60", MAX_DURATION + 1):
        refused(refusals.BAD_FIELD, plans.adjusted, 100.0, change)
    refused(refusals.BAD_FIELD, plans.adjusted, MAX_DURATION - 10.0, 60)
    assert plans.check_text("  Five minutes left  ") == "Five minutes left"
    for text in ("", "   ", None, "x" * 2001):
        refused(refusals.BAD_FIELD, plans.check_text, text)


def test_a_participant_sees_their_own_room_only_and_the_rooms_when_they_choose() -> None:
    plan = plans.create(2, ["Blue", "Green"], maker(), Plan())
    blue = plan.rooms[0].id
    plan.assigned = {"p-1": blue, "p-2": blue}
    view = plans.participant_view(plan, "p-1", Phase.OPEN, 1000.0)
    assert view == {
        "phase": "open",
        "mode": "manual",
        "ends_at": 1000.0,
        "room": {"id": blue, "name": "Blue"},
    }
    assert plans.participant_view(plan, "p-3", Phase.READY, None)["room"] is None
    plan.mode = Mode.CHOOSE
    chooser = plans.participant_view(plan, "p-3", Phase.READY, None)
    assert [r["name"] for r in chooser["rooms"]] == ["Blue", "Green"]
    moderator = plans.moderator_view(plan, Phase.READY, None, {"p-1": "Ada", "p-2": "Bo"}, {})
    assert [p["name"] for p in moderator["rooms"][0]["people"]] == ["Ada", "Bo"]


def test_the_stored_record_gives_the_same_plan_back() -> None:
    plan = plans.create(2, ["Blue", "Green"], maker(), Plan())
    plan.assigned = {"p-1": plan.rooms[1].id}
    plan.mode = Mode.RANDOM
    again = plans.from_record(plans.to_record(plan))
    assert again == plan
    assert plans.from_record(None) == Plan()
    damaged = {"rooms": [{"id": "a", "name": "A"}], "assigned": {"p-1": "gone"}, "mode": "?"}
    assert plans.from_record(damaged) == Plan([plans.BreakoutRoom("a", "A")], {}, Mode.MANUAL)
