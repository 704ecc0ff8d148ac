"""Breakout rooms as plain data: which rooms a group session has, who goes where, and the rules.

Kept apart from the desk actor (``actors.group.breakouts``) so that what can be decided without
time, storage or other actors is decided here and tested directly: how many rooms and their names,
a manual assignment, an even random one (room sizes differ by at most one), a participant's own
choice, where a late arrival goes, the timer's bounds, and what the moderator and a participant
are shown. Every rule that refuses raises a :class:`~runtime.errors.Refusal` with the code the
client receives (``docs/protocol.md``, "Breakout rooms"), and a refused change changes nothing:
each function checks everything before it writes.

A plan outlives the rooms' openings: closing the rooms keeps the plan (its rooms, names and
assignments), so the moderator reopens them as they were ("assignments are remembered").
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors import refusals
from runtime.errors import Refusal

#: The issue asks for "at least up to 10" rooms; 20 keeps every room above two people at 60.
MAX_ROOMS = 20
#: A room's name as the moderator typed it, shown on every page.
MAX_NAME = 60
#: Shortest and longest a breakout may run, in seconds (a short one for tests and quick pairs;
#: never beyond the session's own four hours).
MIN_DURATION = 10
MAX_DURATION = 4 * 60 * 60
#: Closing gives everyone this long (seconds) to finish before they are back in the main call.
CLOSING_COUNTDOWN = 60.0
#: Longest text the moderator broadcasts into every room (a chat message's limit).
MAX_BROADCAST = 2000

_NOT_FOUND = "no such breakout room in this session"


class Mode(enum.StrEnum):
    """How people get their room; the value is what the wire shows."""

    MANUAL = "manual"  #: the moderator places each person
    RANDOM = "random"  #: evenly at random; late arrivals fill the smallest room
    CHOOSE = "choose"  #: each participant picks a room (``group.breakout.choose``)


class Phase(enum.StrEnum):
    """Where the session's breakout rooms are; the value is what the wire shows."""

    NONE = "none"  #: no rooms created
    READY = "ready"  #: rooms created (or closed again), not open
    OPEN = "open"  #: people are in their rooms; the timer runs
    CLOSING = "closing"  #: the last 60 s in every room, then everyone is back


@dataclass(frozen=True, slots=True)
class BreakoutRoom:
    """One room: ``id`` is its address (``room/<id>``) and the prefix of its tokens."""

    id: str
    name: str

    def view(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass
class Plan:
    """The session's rooms in order and who is assigned where (participant id -> room id)."""

    rooms: list[BreakoutRoom] = field(default_factory=list)
    assigned: dict[str, str] = field(default_factory=dict)
    mode: Mode = Mode.MANUAL

    def room(self, room_id: object) -> BreakoutRoom:
        """The room with this id, or ``not_found``: an id of another session's room (another
        organisation's too) is answered exactly like one that never existed."""
        for room in self.rooms:
            if room.id == room_id:
                return room
        raise Refusal(refusals.NOT_FOUND, _NOT_FOUND)

    def has_room(self, room_id: object) -> bool:
        return any(room.id == room_id for room in self.rooms)

    def members(self, room_id: str) -> list[str]:
        """Who is assigned to this room, in the order they were assigned."""
        return [pid for pid, rid in self.assigned.items() if rid == room_id]

    def sizes(self) -> dict[str, int]:
        counts = {room.id: 0 for room in self.rooms}
        for room_id in self.assigned.values():
            counts[room_id] += 1
        return counts


# -- creating and naming ------------------------------------------------------------------------
def check_name(value: object) -> str:
    """A room name: text, 1 to :data:`MAX_NAME` characters once trimmed, or ``bad_field``."""
    if not isinstance(value, str):
        raise Refusal(refusals.BAD_FIELD, "a room name must be text")
    name = " ".join(value.split())
    if not name:
        raise Refusal(refusals.BAD_FIELD, "a room name must not be empty")
    if len(name) > MAX_NAME:
        raise Refusal(refusals.BAD_FIELD, f"a room name is at most {MAX_NAME} characters")
    return name


def create(count: object, names: object, make_id: Callable[[], str], previous: Plan) -> Plan:
    """A plan of ``count`` rooms named ``names`` (missing names are "Room n").

    The rooms that existed at the same positions keep their ids and their people, so recreating
    with one room more or fewer keeps everyone else where they were.
    """
    if type(count) is not int or not 1 <= count <= MAX_ROOMS:
        raise Refusal(refusals.BAD_FIELD, f"count must be a whole number from 1 to {MAX_ROOMS}")
    if names is None:
        names = []
    if not isinstance(names, list) or len(names) > count:
        raise Refusal(refusals.BAD_FIELD, "names must be a list of at most count room names")
    given = [check_name(n) for n in names]
    rooms: list[BreakoutRoom] = []
    for position in range(count):
        name = given[position] if position < len(given) else f"Room {position + 1}"
        kept = previous.rooms[position].id if position < len(previous.rooms) else make_id()
        rooms.append(BreakoutRoom(kept, name))
    ids = {room.id for room in rooms}
    assigned = {pid: rid for pid, rid in previous.assigned.items() if rid in ids}
    return Plan(rooms, assigned, previous.mode)


def rename(plan: Plan, room_id: object, name: object) -> None:
    room = plan.room(room_id)
    new = check_name(name)
    plan.rooms = [BreakoutRoom(r.id, new) if r is room else r for r in plan.rooms]


def check_mode(value: object) -> Mode:
    if value not in set(Mode):
        raise Refusal(refusals.BAD_FIELD, "mode must be manual, random or choose")
    return Mode(str(value))


# -- who goes where -------------------------------------------------------------------------------
def assign_evenly(
    participants: Sequence[str], room_ids: Sequence[str], rng: random.Random
) -> dict[str, str]:
    """Everyone to a room at random, the rooms' sizes differing by at most one.

    People are shuffled and dealt round the rooms; the rooms' order is shuffled too, so which
    rooms get one person more is random as well.
    """
    if not room_ids:
        raise Refusal(refusals.BAD_FIELD, "create the rooms first")
    people = list(dict.fromkeys(participants))
    order = list(room_ids)
    rng.shuffle(people)
    rng.shuffle(order)
    return {pid: order[n % len(order)] for n, pid in enumerate(people)}


def smallest_room(plan: Plan) -> str:
    """Where a late arrival goes in random mode: the room with the fewest people (the first of
    those in the plan's order), so the rooms stay even."""
    sizes = plan.sizes()
    return min(plan.rooms, key=lambda room: sizes[room.id]).id


def check_assignments(plan: Plan, body: object, known: Iterable[str]) -> dict[str, str | None]:
    """A manual assignment ``{participant id: room id | null}`` (null: the main call), checked
    whole before anything changes: unknown people are ``bad_field``, unknown rooms
    ``not_found``."""
    if not isinstance(body, dict) or not body:
        raise Refusal(refusals.BAD_FIELD, "assignments must map participant ids to room ids")
    people = set(known)
    checked: dict[str, str | None] = {}
    for pid, room_id in body.items():
        if not isinstance(pid, str) or pid not in people:
            raise Refusal(refusals.BAD_FIELD, "assignments name someone not in this session")
        if room_id is None:
            checked[pid] = None
            continue
        checked[pid] = plan.room(room_id).id
    return checked


def apply(plan: Plan, changes: Mapping[str, str | None]) -> None:
    for pid, room_id in changes.items():
        if room_id is None:
            plan.assigned.pop(pid, None)
        else:
            plan.assigned.pop(pid, None)  # re-inserted last: the room lists them last
            plan.assigned[pid] = room_id


# -- the timer ------------------------------------------------------------------------------------
def check_duration(value: object) -> int:
    """How long the rooms run, in whole seconds, :data:`MIN_DURATION` to :data:`MAX_DURATION`."""
    if type(value) is not int or not MIN_DURATION <= value <= MAX_DURATION:
        raise Refusal(
            refusals.BAD_FIELD,
            f"duration must be whole seconds from {MIN_DURATION} to {MAX_DURATION}",
        )
    return value


def adjusted(remaining: float, change: object) -> float:
    """The time left after adding ``change`` seconds (negative: shorter), at least 0 (the rooms
    close now) and at most :data:`MAX_DURATION`; ``bad_field`` for anything but a whole
    non-zero number within that range."""
    if type(change) is not int or change == 0 or abs(change) > MAX_DURATION:
        raise Refusal(
            refusals.BAD_FIELD, f"seconds must be a whole number, not 0, at most {MAX_DURATION}"
        )
    left = remaining + change
    if left > MAX_DURATION:
        raise Refusal(refusals.BAD_FIELD, f"breakout rooms run at most {MAX_DURATION} seconds")
    return max(0.0, left)


def check_text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refusal(refusals.BAD_FIELD, "a broadcast needs some text")
    if len(value) > MAX_BROADCAST:
        raise Refusal(refusals.BAD_FIELD, f"a broadcast is at most {MAX_BROADCAST} characters")
    return value.strip()


# -- what people see ------------------------------------------------------------------------------
def moderator_view(
    plan: Plan,
    phase: Phase,
    ends_at: float | None,
    names: Mapping[str, str],
    help_from: Mapping[str, float],
) -> dict[str, Any]:
    """Everything: rooms with their people (ids and names), who asked for help, the timer."""
    return {
        "phase": phase.value,
        "mode": plan.mode.value,
        "ends_at": ends_at,
        "rooms": [
            {
                **room.view(),
                "people": [
                    {"id": pid, "name": names.get(pid, "")} for pid in plan.members(room.id)
                ],
                "help": room.id in help_from,
            }
            for room in plan.rooms
        ],
        "unassigned": [
            {"id": pid, "name": name} for pid, name in names.items() if pid not in plan.assigned
        ],
    }


def participant_view(
    plan: Plan, participant_id: str, phase: Phase, ends_at: float | None
) -> dict[str, Any]:
    """One participant's: their own room, the timer, and the rooms' names only when they may
    choose. Never who else is where (group therapy's privacy)."""
    mine = plan.assigned.get(participant_id)
    view: dict[str, Any] = {
        "phase": phase.value,
        "mode": plan.mode.value,
        "ends_at": ends_at,
        "room": plan.room(mine).view() if mine is not None else None,
    }
    if plan.mode is Mode.CHOOSE:
        view["rooms"] = [room.view() for room in plan.rooms]
    return view


# -- kept between openings (``storage.group_breakouts``) ------------------------------------------
def to_record(plan: Plan) -> dict[str, Any]:
    return {
        "rooms": [room.view() for room in plan.rooms],
        "assigned": dict(plan.assigned),
        "mode": plan.mode.value,
    }


def from_record(record: dict[str, Any] | None) -> Plan:
    """The plan kept in storage; an empty one for a session that never had rooms."""
    if not record:
        return Plan()
    rooms = [BreakoutRoom(str(r["id"]), str(r["name"])) for r in record.get("rooms", [])]
    ids = {room.id for room in rooms}
    assigned = {str(p): str(r) for p, r in dict(record.get("assigned", {})).items() if r in ids}
    mode = Mode(record["mode"]) if record.get("mode") in set(Mode) else Mode.MANUAL
    return Plan(rooms, assigned, mode)
