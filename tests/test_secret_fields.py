"""No repr shows a secret or a patient's detail, and no crash puts one in the log (issue 15).

Messages between actors carry sign-in passwords, link secrets and session ids, and patients'
names, dates of birth, phone numbers and reasons. The crash log names only the message's type;
beside that, every such field is marked ``field(repr=False)``, so a ``%r`` anywhere (a debug line,
an exception's text, a test failure) shows the message without them.

Two checks: every message and reply dataclass of the actors hides each field whose name says it
is a secret or patient data, and the named
fields that carry a person's name; and each kind of actor of the real tree, crashed while handling
such a message (its handler raising with the message's repr in the exception's text), leaves
none of the values in the log, and its repr shows none of them either.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors import addresses
from actors.admin.outbox import OutboxActor, SendMessage
from actors.admin.setup import SetupAdmin
from actors.admin.setup_messages import ChangeOwnPassword, CreateStaff
from actors.boot import start_actors
from actors.consult.desk import ConsultDesk
from actors.consult.messages import OpenConsultLink, SendConsultLink
from actors.inbound import Inbound, RedeemToken
from actors.meetings.host import MeetingHost
from actors.meetings.messages import GuestEnter
from actors.messages import ArrivalTicket, Arrive, ClaimInvite, FindArea
from actors.ondemand.messages import FindQueue, StartRequest
from actors.ondemand.queue import OnDemandQueue
from actors.principal import Grant, Principal, Role, Scope
from actors.staff.directory import CheckCsrf, Directory, ResolveSession
from actors.staff.notices import NoticeBoard, Notify
from actors.staff.signin import SignIn, SignInDesk
from actors.waiting.areas import AreaHost, WaitingArea
from actors.waiting.rooms import Room
from runtime import ActorError, Registry, Supervisor
from runtime.supervisor import DEFAULT_PERIOD
from services.passwords import Passwords
from storage import seed
from storage.db import Store, open_store

PASSWORD = "hunter2-Correct-Horse-77"
SECRET = "s3cr3t-link-9f8e7d6c5b4a"
PATIENT = "Marta Kowalczyk"
DOB = "1961-04-12"
PHONE = "+44 7700 900456"
REASON = "chest pain since Tuesday"
VALUES = (PASSWORD, SECRET, PATIENT, DOB, PHONE, REASON)
DETAILS = {"name": PATIENT, "dob": DOB, "phone": PHONE, "reason": REASON}

MODULES = (
    "actors.messages",
    "actors.inbound",
    "actors.principal",
    "actors.consult.messages",
    "actors.meetings.messages",
    "actors.ondemand.messages",
    "actors.admin.setup_messages",
    "actors.admin.outbox",
    "actors.staff.signin",
    "actors.staff.directory",
    "actors.staff.notices",
    "actors.calls.invites",
    "actors.calls.media",
    "actors.waiting.areas",
    "actors.group.messages",
)

#: A field of this name holds a credential, a link secret or patient data, in any class.
SECRET_NAMES = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "secret",
        "token",
        "csrf_token",
        "session_id",
        "session_hash",
        "slug",
        "link",
        "guest_link",
        "details",
        "values",
        "case",
        "recipient",
        "sdp",
    }
)
#: Fields whose names are general ("name", "body") but which hold a person's name or a message
#: to a patient in these classes.
NAMED: dict[str, set[str]] = {
    "actors.messages.ClaimInvite": {"display_name"},
    "actors.messages.RoomSnapshot": {"participants"},
    "actors.principal.Principal": {"display_name"},
    "actors.inbound.Inbound": {"body"},
    "actors.inbound.Push": {"body"},
    "actors.consult.messages.SendConsultLink": {"body", "label"},
    "actors.consult.messages.OpenConsultLink": {"name"},
    "actors.consult.messages.LinkView": {"label"},
    "actors.meetings.messages.GuestEnter": {"name"},
    "actors.meetings.messages.IssueGuestPass": {"name"},
    "actors.meetings.messages.OccupancyChanged": {"people"},
    "actors.meetings.messages.MeetingRoomView": {"people"},
    "actors.meetings.messages.UserRoomView": {"people"},
    "actors.admin.outbox.SendLink": {"body"},
    "actors.admin.outbox.SendMessage": {"body"},
    "actors.staff.notices.Notify": {"text"},
    "actors.calls.invites.Claimed": {"name"},
    "actors.group.messages.ArriveGroup": {"name", "contact"},
    "actors.group.messages.Registrant": {"name", "contact"},
    "actors.group.messages.RegistrationView": {"name", "contact"},
    "actors.group.messages.GroupMember": {"display_name", "first_name"},
    "actors.group.messages.SendGroupLink": {"body"},
    "actors.group.messages.PushToMembers": {"body"},
    "actors.group.messages.MembersChanged": {"participants"},
    "actors.group.messages.BreakoutFrame": {"participants"},
}
#: Fields named like a secret that are not one in these modules: a group session's number
#: (``session_id: int``, in its pages' paths) is not a staff member's web session id.
NOT_SECRET: dict[str, set[str]] = {"actors.group.messages": {"session_id"}}


def dataclasses_of(module_name: str) -> list[type]:
    module = importlib.import_module(module_name)
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if dataclasses.is_dataclass(cls) and cls.__module__ == module_name
    ]


def test_every_secret_or_clinical_field_is_hidden_from_repr() -> None:
    """Failed on the old code: none of these fields was marked."""
    shown: list[str] = []
    named_seen: set[str] = set()
    for module_name in MODULES:
        for cls in dataclasses_of(module_name):
            qualified = f"{module_name}.{cls.__name__}"
            extra = NAMED.get(qualified, set())
            if extra:
                named_seen.add(qualified)
            public = NOT_SECRET.get(module_name, set())
            for f in dataclasses.fields(cls):
                if f.name in public:
                    assert str(f.type) == "int", f"{qualified}.{f.name} is not a number"
                secret = f.name in SECRET_NAMES and f.name not in public
                if (secret or f.name in extra) and f.repr:
                    shown.append(f"{qualified}.{f.name}")
    assert shown == [], f"mark these field(repr=False): {shown}"
    assert named_seen == set(NAMED), "a class named in NAMED has moved or been renamed"


# -- crashing each kind of actor -----------------------------------------------------------------


@dataclass
class Tree:
    store: Store
    registry: Registry
    root: Supervisor
    org_id: int
    area_address: str
    ticket: ArrivalTicket


@pytest.fixture
async def tree(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Tree]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, Passwords.fast_for_tests().hash_sync("pw-for-tests"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        area = await registry.ref(addresses.AREAS).ask(FindArea(demo.areas[0].slug))
        ticket = await registry.ref(area).ask(Arrive({"name": "Ada"}, ""))
        assert isinstance(ticket, ArrivalTicket)
        yield Tree(store, registry, root, demo.org_id, str(area), ticket)
        nursery.cancel_scope.cancel()


def staff(org_id: int) -> Principal:
    grant = Grant(Role.ORG_ADMIN, Scope.ORG, str(org_id))
    return Principal("staff", PATIENT, user_id="1", org_id=str(org_id), grants=frozenset({grant}))


async def queue_of(tree: Tree) -> str:
    return str(await tree.registry.ref(addresses.ONDEMAND).ask(FindQueue(tree.org_id)))


def caller(tree: Tree) -> Principal:
    room = tree.ticket.room_id
    return Principal("caller", PATIENT, room_id=room, participant_id=tree.ticket.caller_id)


Where = Callable[[Tree], Awaitable[str]]


def at(address: str) -> Where:
    async def where(_tree: Tree) -> str:
        return address

    return where


async def the_area(tree: Tree) -> str:
    return tree.area_address


async def the_room(tree: Tree) -> str:
    return addresses.room(tree.ticket.room_id)


#: (actor class, where it lives, the message it is crashed with), one row per kind of actor.
CRASHES: list[tuple[type, Where, Callable[[Tree], object]]] = [
    (Directory, at(addresses.DIRECTORY), lambda t: ResolveSession(SECRET)),
    (Directory, at(addresses.DIRECTORY), lambda t: CheckCsrf(SECRET, SECRET)),
    (SignInDesk, at(addresses.SIGN_IN), lambda t: SignIn("marta", PASSWORD, "203.0.113.9")),
    (
        NoticeBoard,
        at(addresses.NOTICES),
        lambda t: Notify(t.org_id, 1, "consult", PATIENT, "/", True),
    ),
    (AreaHost, at(addresses.AREAS), lambda t: FindArea(SECRET)),
    (WaitingArea, the_area, lambda t: Arrive(DETAILS, "203.0.113.9")),
    (Room, the_room, lambda t: ClaimInvite(SECRET, PATIENT)),
    (Room, the_room, lambda t: RedeemToken(SECRET)),
    (Room, the_room, lambda t: Inbound("chat.send", {"text": REASON}, caller(t), "conn/c")),
    (MeetingHost, at(addresses.MEETINGS), lambda t: GuestEnter(SECRET, PATIENT, "")),
    (
        SetupAdmin,
        at(addresses.SETUP),
        lambda t: CreateStaff(staff(t.org_id), "olena", "Dr Olena", PASSWORD, None, ""),
    ),
    (
        SetupAdmin,
        at(addresses.SETUP),
        lambda t: ChangeOwnPassword(staff(t.org_id), PASSWORD, PASSWORD + "!", ""),
    ),
    (
        OutboxActor,
        at(addresses.OUTBOX),
        lambda t: SendMessage("sms", PHONE, "Your call", f"https://x.example/c/{SECRET}", None),
    ),
    (ConsultDesk, at(addresses.CONSULT), lambda t: OpenConsultLink(SECRET, PATIENT, "")),
    (
        ConsultDesk,
        at(addresses.CONSULT),
        lambda t: SendConsultLink(
            staff(t.org_id), 1, "sms", PHONE, "Call", SECRET, "https://x", PATIENT
        ),
    ),
    (OnDemandQueue, queue_of, lambda t: StartRequest(DETAILS, "203.0.113.9")),
]


async def test_each_kind_of_actor_crashed_with_secrets_and_patient_details_logs_none(
    tree: Tree,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    autojump_clock: trio.testing.MockClock,
) -> None:
    for cls, where, make in CRASHES:
        message = make(tree)
        shown = repr(message)
        assert not [v for v in VALUES if v in shown], shown

        async def boom(_actor: Any, got: object) -> object:
            raise RuntimeError(f"cannot handle {got!r}")  # the text quotes the message

        monkeypatch.setitem(cls._handlers, type(message), boom)  # type: ignore[attr-defined]
        address = await where(tree)
        with caplog.at_level(logging.ERROR), pytest.raises(ActorError):
            await tree.registry.ref(address).ask(message)
        monkeypatch.undo()
        await trio.sleep(DEFAULT_PERIOD + 1)  # restarts spread out: no supervisor gives up
        assert address in tree.registry, f"{address} was not restarted"
        crash = [r for r in caplog.records if f"actor {address} crashed" in r.getMessage()]
        assert crash and type(message).__name__ in crash[-1].getMessage()
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert not [v for v in VALUES if v in logged]
