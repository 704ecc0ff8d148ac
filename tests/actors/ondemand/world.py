"""A clinic for the on-demand actor tests: real SQLite, the real host, queues, sessions, notice
board and outbox, two organisations and their staff, and helpers that act as the gateway would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from actors import addresses
from actors.admin.outbox import Channel, OutboxActor
from actors.inbound import Inbound, Push
from actors.ondemand.messages import FindQueue, RequestTicket, SaveSettings, StartRequest
from actors.ondemand.queue import OnDemandHost
from actors.principal import Principal
from actors.staff.directory import principal_of
from actors.staff.notices import NoticeBoard
from gateway.auth import Authenticator
from runtime import ActorRef, ChildSpec, Registry, Supervisor
from services.sender import Sender
from storage import areas, orgs, staff
from storage.db import Store, open_store
from tests.actors.calls.fakes import SlowMedia
from tests.actors.inbox import Inbox, Pushes

#: Two intake steps: what the patient is here for, then consent and a date.
STEPS: list[dict[str, Any]] = [
    {
        "title": "Why you are here",
        "fields": [
            {"key": "symptoms", "label": "Symptoms", "kind": "text", "required": True},
            {
                "key": "urgency",
                "label": "Urgency",
                "kind": "choice",
                "required": True,
                "choices": ["low", "high"],
            },
        ],
    },
    {
        "title": "Consent",
        "fields": [
            {"key": "since", "label": "Since", "kind": "date"},
            {"key": "callback", "label": "Call-back number", "kind": "phone"},
            {"key": "agree", "label": "I agree", "kind": "consent", "required": True},
        ],
    },
]
STEP_ONE = {"symptoms": "cough", "urgency": "high"}
STEP_TWO = {"since": "2026-11-28", "agree": "yes"}


@dataclass
class World:
    registry: Registry
    root: Supervisor
    store: Store
    media: SlowMedia
    org_id: int
    other_org_id: int
    admin: Principal
    lee: Principal
    kim: Principal
    outsider: Principal
    outsider_admin: Principal
    conns: dict[str, Pushes] = field(default_factory=dict)
    _next: int = 0

    @property
    def queue(self) -> ActorRef:
        return self.registry.ref(addresses.ondemand(self.org_id))

    @property
    def other_queue(self) -> ActorRef:
        return self.registry.ref(addresses.ondemand(self.other_org_id))

    async def socket(self) -> tuple[str, Pushes]:
        self._next += 1
        name = addresses.conn(f"t{self._next}")
        events = Pushes()
        await self.root.start_child(ChildSpec(name, lambda: Inbox(events)))
        self.conns[name] = events
        return name, events

    async def ask(
        self, who: Principal, kind: str, body: dict[str, Any] | None = None, conn: str = "conn/x"
    ) -> Any:
        return await self.queue.ask(Inbound(kind, body or {}, who, conn))

    async def on_call(self, who: Principal, on: bool = True) -> None:
        await self.ask(who, "ondemand.oncall", {"on": on})

    async def watch(self, who: Principal) -> tuple[str, Pushes, dict[str, Any]]:
        conn, events = await self.socket()
        reply = await self.ask(who, "ondemand.watch", conn=conn)
        return conn, events, reply

    async def meet_now(self, name: str = "Ada", **extra: str) -> RequestTicket:
        ticket: RequestTicket = await self.queue.ask(
            StartRequest({"name": name, "phone": "+44 20 7946 0000", "region": "Kent", **extra})
        )
        return ticket

    async def patient(self, ticket: RequestTicket) -> tuple[str, Pushes, Principal, Any]:
        """What the gateway does for the patient's page: redeem the token, enter the room."""
        who = await Authenticator(self.registry).authenticate(ticket.token, None, "127.0.0.1")
        conn, events = await self.socket()
        reply = await self.room(ticket).ask(Inbound("room.enter", {}, who, conn))
        return conn, events, who, reply

    def room(self, ticket: RequestTicket) -> ActorRef:
        return self.registry.ref(addresses.room(ticket.room_id))

    async def in_room(
        self,
        ticket: RequestTicket,
        who: Principal,
        kind: str,
        conn: str,
        body: dict[str, Any] | None = None,
    ) -> Any:
        return await self.room(ticket).ask(Inbound(kind, body or {}, who, conn))


async def settle() -> None:
    """Let told messages be handled (a few checkpoints; virtual time does not move)."""
    for _ in range(50):
        await trio.lowlevel.checkpoint()


def events_of(events: list[Push], kind: str) -> list[dict[str, Any]]:
    return [p.body for p in events if p.type == kind]


@asynccontextmanager
async def world_at(
    tmp_path: Path, alert_after: int = 0, senders: dict[Channel, Sender] | None = None
) -> AsyncIterator[World]:
    async with open_store(tmp_path / "ondemand.sqlite3") as store, trio.open_nursery() as nursery:
        org = await orgs.create_organisation(store, "Riverside")
        unit = await orgs.create_unit(store, org.id, "GP")
        area = await areas.create_area(store, unit.id, "General")
        other = await orgs.create_organisation(store, "Hillside")
        other_unit = await orgs.create_unit(store, other.id, "GP")

        async def user(login: str, name: str, *grants: tuple[str, str, int]) -> Principal:
            made = await staff.create_user(store, login, name, "not-a-hash")
            for role, scope, scope_id in grants:
                await staff.grant_role(store, made.id, role, scope, scope_id)  # type: ignore[arg-type]
            return await principal_of(store, made.id, name)

        admin = await user("ann", "Ann Admin", ("org_admin", "org", org.id))
        lee = await user("lee", "Dr Lee", ("provider", "area", area.id))
        kim = await user("kim", "Dr Kim", ("provider", "unit", unit.id))
        outsider = await user("oz", "Dr Oz", ("provider", "unit", other_unit.id))
        outsider_admin = await user("olga", "Olga", ("org_admin", "org", other.id))

        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        queues: Supervisor = await nursery.start(Supervisor(registry, "ondemand").run)
        sessions: Supervisor = await nursery.start(Supervisor(registry, "ondemand-sessions").run)
        media = SlowMedia()
        await root.start_child(ChildSpec(addresses.NOTICES, lambda: NoticeBoard(store)))
        await root.start_child(ChildSpec(addresses.OUTBOX, lambda: OutboxActor(store, senders)))
        await root.start_child(
            ChildSpec(addresses.ONDEMAND, lambda: OnDemandHost(store, queues, sessions, media))
        )
        world = World(
            registry,
            root,
            store,
            media,
            org.id,
            other.id,
            admin,
            lee,
            kim,
            outsider,
            outsider_admin,
        )
        await registry.ref(addresses.ONDEMAND).ask(FindQueue(org.id))
        await world.queue.ask(SaveSettings(admin, True, STEPS, alert_after))
        yield world
        nursery.cancel_scope.cancel()
