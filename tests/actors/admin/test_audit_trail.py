"""Every audited action, performed through the actors a request reaches, leaves exactly the row an
administrator needs (who, what, when in UTC, which area, from which address) and nothing more: no
token, no password, no caller's name, date of birth, phone number or reason."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from actors.admin.outbox import OUTBOX_ADDRESS, SendLink
from actors.admin.setup import SETUP_ADDRESS, GrantRole, RevokeRole
from actors.boot import start_actors
from actors.inbound import Inbound
from actors.messages import ArrivalTicket, Arrive, FindArea
from actors.staff.directory import SessionInfo
from actors.staff.signin import SIGN_IN_ADDRESS, SignIn
from actors.waiting.areas import AREAS_ADDRESS
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import audit, seed
from storage.audit import AuditEntry
from storage.db import Store, open_store
from storage.times import utcnow
from tests.actors.inbox import Inbox

PASSWORD = "demo-password-for-audit"
#: Every personal or clinical value the scenario types in; none may reach the log.
CALLER = {
    "name": "Ada Lovelace",
    "dob": "1815-12-10",
    "phone": "+44 7700 900123",
    "reason": "persistent migraine",
}
SECOND_CALLER = {
    "name": "Mykola Leontovych",
    "dob": "1877-12-13",
    "phone": "+380 44 000 1111",
    "reason": "sprained ankle",
}
LINK_RECIPIENT = "patient.inbox@example.org"
LINK_BODY = "Join your appointment at https://clinic.example/w/gp"
#: One address per step, so each row is shown to carry the address of its own request.
ADDR = {
    "sign_in": "198.51.100.1",
    "admin_sign_in": "198.51.100.2",
    "failed": "203.0.113.66",
    "arrive": "192.0.2.10",
    "arrive2": "192.0.2.11",
    "join": "198.51.100.21",
    "invite": "198.51.100.22",
    "hold": "198.51.100.23",
    "transfer": "198.51.100.24",
    "end": "198.51.100.25",
    "link": "198.51.100.26",
    "revoke": "198.51.100.27",
    "grant": "198.51.100.28",
}


@dataclass
class Scenario:
    store: Store
    db_path: Path
    demo: seed.DemoInfo
    started: datetime
    finished: datetime
    provider: SessionInfo
    admin: SessionInfo
    first: ArrivalTicket
    second: ArrivalTicket
    invite_url: str


async def run_scenario(nursery: trio.Nursery, store: Store, db_path: Path) -> Scenario:
    demo = await seed.seed_demo(store, await Passwords().hash(PASSWORD))
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await start_actors(nursery, root, store)
    gp, physio = demo.areas
    gp_address = await registry.ref(AREAS_ADDRESS).ask(FindArea(gp.slug))
    physio_address = await registry.ref(AREAS_ADDRESS).ask(FindArea(physio.slug))
    desk = registry.ref(SIGN_IN_ADDRESS)
    started = utcnow()

    provider: SessionInfo = await desk.ask(
        SignIn(demo.provider_username, PASSWORD, ADDR["sign_in"])
    )
    admin: SessionInfo = await desk.ask(
        SignIn(demo.admin_username, PASSWORD, ADDR["admin_sign_in"])
    )
    with pytest.raises(Refusal):
        await desk.ask(SignIn(demo.provider_username, "guessed-wrong", ADDR["failed"]))

    gp_area = registry.ref(gp_address)
    first: ArrivalTicket = await gp_area.ask(Arrive(dict(CALLER), ADDR["arrive"]))
    second: ArrivalTicket = await gp_area.ask(Arrive(dict(SECOND_CALLER), ADDR["arrive2"]))
    who = provider.principal

    async def area(kind: str, caller: ArrivalTicket, step: str, **extra: object) -> object:
        body: dict[str, object] = {"caller_id": caller.caller_id, **extra}
        return await gp_area.ask(Inbound(kind, body, who, "conn/p", ADDR[step]))

    await area("caller.join", first, "join")
    await root.start_child(ChildSpec("conn/p", Inbox))
    room = registry.ref(f"room/{first.room_id}")
    await room.ask(Inbound("room.enter", {}, who, "conn/p"))
    invite = await room.ask(
        Inbound("call.invite", {"label": "Interpreter"}, who, "conn/p", ADDR["invite"])
    )
    await room.ask(Inbound("call.hold", {}, who, "conn/p", ADDR["hold"]))
    await area("caller.transfer", first, "transfer", target_area=str(physio.id))
    await area("caller.end", second, "end")

    await registry.ref(OUTBOX_ADDRESS).ask(
        SendLink(who, gp.id, "email", LINK_RECIPIENT, "Your appointment", LINK_BODY, ADDR["link"])
    )
    setup = registry.ref(SETUP_ADDRESS)
    change = (demo.provider_user_id, "referrer", "area", physio.id)
    assert await setup.ask(RevokeRole(admin.principal, *change, remote_addr=ADDR["revoke"]))
    await setup.ask(GrantRole(admin.principal, *change, remote_addr=ADDR["grant"]))
    assert physio_address != gp_address
    return Scenario(
        store,
        db_path,
        demo,
        started,
        utcnow(),
        provider,
        admin,
        first,
        second,
        str(invite["url"]),
    )


@pytest.fixture
async def scenario(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Scenario]:
    path = tmp_path / "audit.sqlite3"
    async with open_store(path) as store:
        yield await run_scenario(nursery, store, path)
        nursery.cancel_scope.cancel()


def only(entries: list[AuditEntry], remote_addr: str) -> AuditEntry:
    [entry] = [e for e in entries if e.remote_addr == remote_addr]
    return entry


async def test_each_audited_action_has_its_row(scenario: Scenario) -> None:
    s = scenario
    provider_id, admin_id = s.demo.provider_user_id, s.demo.admin_user_id
    gp, physio = (a.id for a in s.demo.areas)
    # (action, address of its request) -> (who acted, which area)
    expected: dict[tuple[str, str], tuple[int | None, int | None]] = {
        (audit.SIGN_IN, ADDR["sign_in"]): (provider_id, None),
        (audit.SIGN_IN, ADDR["admin_sign_in"]): (admin_id, None),
        (audit.SIGN_IN_FAILED, ADDR["failed"]): (None, None),
        (audit.ARRIVAL, ADDR["arrive"]): (None, gp),
        (audit.ARRIVAL, ADDR["arrive2"]): (None, gp),
        (audit.JOIN, ADDR["join"]): (provider_id, gp),
        (audit.INVITE, ADDR["invite"]): (provider_id, gp),
        (audit.HOLD, ADDR["hold"]): (provider_id, gp),
        (audit.TRANSFER, ADDR["transfer"]): (provider_id, gp),
        (audit.END, ADDR["end"]): (provider_id, gp),
        (audit.LINK_SENT, ADDR["link"]): (provider_id, gp),
        (audit.ROLE_REVOKED, ADDR["revoke"]): (admin_id, physio),
        (audit.ROLE_GRANTED, ADDR["grant"]): (admin_id, physio),
    }
    for (action, address), (who, area) in expected.items():
        entry = only(await audit.list_entries(s.store, action=action), address)
        assert (entry.actor_user_id, entry.area_id) == (who, area), action
        assert entry.at.tzinfo == UTC and entry.at.utcoffset() == timedelta(0), action
        assert s.started - timedelta(seconds=1) <= entry.at <= s.finished, action
    # What each row names: the caller by id, the account by username, never a person's details.
    arrived = only(await audit.list_entries(s.store, action=audit.ARRIVAL), ADDR["arrive"])
    assert (arrived.actor_kind, arrived.subject) == ("caller", s.first.caller_id)
    failed = only(await audit.list_entries(s.store, action=audit.SIGN_IN_FAILED), ADDR["failed"])
    assert failed.subject == s.demo.provider_username
    moved = only(await audit.list_entries(s.store, action=audit.TRANSFER), ADDR["transfer"])
    assert moved.subject == s.first.caller_id and moved.details == {"to_area": physio}
    ended = only(await audit.list_entries(s.store, action=audit.END), ADDR["end"])
    assert ended.subject == s.second.caller_id
    revoked = only(await audit.list_entries(s.store, action=audit.ROLE_REVOKED), ADDR["revoke"])
    assert revoked.subject == s.demo.provider_username
    assert revoked.details["role"] == "referrer"
    # Every action the scenario wrote is one the admin page's filter offers.
    assert {e.action for e in await audit.list_entries(s.store)} <= set(audit.ACTIONS)


def every_cell(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        found = conn.execute("SELECT * FROM audit_log").fetchall()
    return "\n".join(str(cell) for row in found for cell in row)


async def test_no_token_password_or_clinical_detail_in_any_row(scenario: Scenario) -> None:
    s = scenario
    text = await trio.to_thread.run_sync(every_cell, s.db_path)
    secrets = [
        PASSWORD,
        "guessed-wrong",
        s.provider.session_id,
        s.provider.csrf_token,
        s.admin.session_id,
        s.admin.csrf_token,
        s.first.token.split(".", 1)[1],
        s.second.token.split(".", 1)[1],
        s.invite_url.rsplit(".", 1)[1],
        *CALLER.values(),
        *SECOND_CALLER.values(),
        LINK_RECIPIENT,
        LINK_BODY,
    ]
    leaked = [secret for secret in secrets if secret in text]
    assert leaked == []
    assert len(await audit.list_entries(s.store)) >= 13
