"""The Consult Now desk (issue 13) on Trio's virtual clock: a link is valid five minutes, each
extension adds five up to the limit, a cancelled or expired link opens nothing, an opened one
starts the call with its provider, rings them, and admits only the people the provider invites.

The whole actor tree over a real SQLite store with the demo clinic, as the server runs it; the
desk under test runs on the same virtual clock as its timers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import addresses, refusals
from actors.boot import start_actors
from actors.consult.call import ANSWER_GRACE, MAX_PARTICIPANTS
from actors.consult.desk import EXTENSION, LINK_LIFETIME, MAX_EXTENSIONS, ConsultDesk
from actors.consult.messages import (
    LINK_MARK,
    CancelConsultLink,
    CheckConsultLink,
    ConsultPass,
    ExtendConsultLink,
    LinkView,
    MyConsultLinks,
    OpenConsultLink,
    SendConsultLink,
)
from actors.inbound import Inbound, RedeemToken
from actors.messages import ClaimInvite, StartAgain
from actors.principal import Grant, Principal, Role, Scope
from actors.staff.notices import ListNotices, NoticeList
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import audit, calls, consult, orgs, reports, seed, staff
from storage import outbox as outbox_store
from storage import rooms as room_store
from storage.db import Store, fetch_one, open_store
from storage.errors import TokenRejectedError
from tests.actors.inbox import Inbox, Pushes

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def virtual_now() -> datetime:
    """Wall time that moves with the virtual clock, so storage's expiry and the timers agree."""
    return T0 + timedelta(seconds=trio.current_time())


@dataclass
class Desk:
    store: Store
    registry: Registry
    root: Supervisor
    area_id: int
    org_id: int
    provider: Principal

    def ref(self, address: str = addresses.CONSULT) -> Any:
        return self.registry.ref(address)

    async def send(self, to: str = "+44 7700 900123", **changes: Any) -> LinkView:
        message = SendConsultLink(
            self.provider,
            self.area_id,
            changes.pop("channel", "sms"),
            to,
            "Video call",
            f"Join the call: {LINK_MARK}",
            "https://video.example.org",
            **changes,
        )
        view: LinkView = await self.ref().ask(message)
        return view

    async def secret(self, view: LinkView) -> str:
        """The secret, read back from the message the outbox holds (as the recipient would)."""
        for message in await outbox_store.list_messages(self.store):
            secret = message.body.rsplit("/c/", 1)[-1]
            row = await self.store.run(
                fetch_one,
                "SELECT id FROM consult_links WHERE token_hash = ?",
                (room_store.hash_token(secret),),
            )
            if row is not None and row["id"] == view.id:
                return secret
        raise AssertionError("no message carries this link")

    async def socket(self, name: str) -> Pushes:
        events = Pushes()
        await self.root.start_child(ChildSpec(name, lambda: Inbox(events)))
        return events

    async def actions(self) -> list[str]:
        return [e.action for e in await audit.list_entries(self.store) if "consult" in e.action]

    async def restart_desk(self) -> None:
        if addresses.CONSULT in self.registry:
            await self.root.stop_child(addresses.CONSULT)
        supervisor = self._rooms_supervisor()
        await self.root.start_child(
            ChildSpec(
                addresses.CONSULT, lambda: ConsultDesk(self.store, supervisor, now=virtual_now)
            )
        )

    def _rooms_supervisor(self) -> Supervisor:
        host = self.root.instance(addresses.ROOMS)
        supervisor = getattr(host, "supervisor", None)
        assert isinstance(supervisor, Supervisor)
        return supervisor


def provider_of(user_id: int, org_id: int, area_id: int, name: str = "Dr Demo") -> Principal:
    grant = Grant(Role.PROVIDER, Scope.AREA, str(area_id))
    return Principal(
        "staff", name, user_id=str(user_id), org_id=str(org_id), grants=frozenset({grant})
    )


@pytest.fixture
async def desk(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Desk]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        area_id = demo.areas[0].id
        made = Desk(
            store,
            registry,
            root,
            area_id,
            demo.org_id,
            provider_of(demo.provider_user_id, demo.org_id, area_id),
        )
        await made.restart_desk()  # on the virtual clock
        yield made
        nursery.cancel_scope.cancel()


async def test_a_link_is_valid_five_minutes_then_expires_and_opens_nothing(
    desk: Desk, autojump_clock: trio.testing.MockClock
) -> None:
    page = await desk.socket("conn/page")
    await desk.ref().ask(Inbound("consult.watch", {}, desk.provider, "conn/page"))
    view = await desk.send(label="Sam")
    assert view.state == "pending" and view.seconds_left == LINK_LIFETIME
    assert view.recipient_hint == "•••123" and view.extensions_left == MAX_EXTENSIONS
    (message,) = await outbox_store.list_messages(desk.store)
    assert message.recipient == "+447700900123" and "https://video.example.org/c/" in message.body
    secret = await desk.secret(view)

    await trio.sleep(LINK_LIFETIME - 1)
    (still,) = await desk.ref().ask(MyConsultLinks(desk.provider))
    assert still.state == "pending" and still.seconds_left == pytest.approx(1, abs=0.01)
    assert (await desk.ref().ask(CheckConsultLink(secret))).state == "pending"

    await trio.sleep(1)
    expired = await page.wait_for(lambda p: p.body.get("state") == "expired")
    assert expired.type == "consult.link" and expired.body["id"] == view.id
    assert await desk.ref().ask(MyConsultLinks(desk.provider)) == ()
    assert (await desk.ref().ask(CheckConsultLink(secret))).state == "expired"
    with pytest.raises(Refusal) as late:
        await desk.ref().ask(OpenConsultLink(secret, "Sam"))
    assert late.value.code == refusals.LINK_EXPIRED
    assert await room_store.list_open_rooms(desk.store, kind="consult_now") == []
    assert await desk.actions() == ["consult.expired", "consult.started"]


async def test_each_extension_adds_five_minutes_up_to_the_limit(
    desk: Desk, autojump_clock: trio.testing.MockClock
) -> None:
    view = await desk.send()
    secret = await desk.secret(view)
    await trio.sleep(LINK_LIFETIME - 10)
    for n in range(1, MAX_EXTENSIONS + 1):
        extended = await desk.ref().ask(ExtendConsultLink(desk.provider, view.id))
        assert extended.extensions == n and extended.extensions_left == MAX_EXTENSIONS - n
        assert extended.seconds_left == pytest.approx(10 + n * EXTENSION)
    with pytest.raises(Refusal) as limit:
        await desk.ref().ask(ExtendConsultLink(desk.provider, view.id))
    assert limit.value.code == refusals.EXTENSION_LIMIT

    total = LINK_LIFETIME + MAX_EXTENSIONS * EXTENSION
    await trio.sleep(total - (LINK_LIFETIME - 10) - 1)  # one second before the extended end
    assert (await desk.ref().ask(CheckConsultLink(secret))).state == "pending"
    await trio.sleep(1.001)
    assert (await consult.get_link(desk.store, view.id)).state == "expired"
    assert trio.current_time() == pytest.approx(total, abs=0.01)
    assert (await desk.actions()).count("consult.extended") == MAX_EXTENSIONS


async def test_a_cancelled_link_opens_nothing_and_never_expires(
    desk: Desk, autojump_clock: trio.testing.MockClock
) -> None:
    view = await desk.send(to="sam@example.org", channel="email")
    assert view.recipient_hint == "s•••@example.org"
    secret = await desk.secret(view)
    cancelled = await desk.ref().ask(CancelConsultLink(desk.provider, view.id))
    assert cancelled.state == "cancelled"
    with pytest.raises(Refusal) as opened:
        await desk.ref().ask(OpenConsultLink(secret, "Sam"))
    assert opened.value.code == refusals.LINK_CANCELLED
    with pytest.raises(Refusal) as again:
        await desk.ref().ask(ExtendConsultLink(desk.provider, view.id))
    assert again.value.code == refusals.LINK_CANCELLED
    await trio.sleep(LINK_LIFETIME * 2)
    assert (await consult.get_link(desk.store, view.id)).state == "cancelled"
    assert await desk.actions() == ["consult.cancelled", "consult.started"]


async def test_opening_starts_the_call_rings_the_provider_and_only_invited_people_join(
    desk: Desk, autojump_clock: trio.testing.MockClock
) -> None:
    page = await desk.socket("conn/page")
    await desk.ref().ask(Inbound("consult.watch", {}, desk.provider, "conn/page"))
    view = await desk.send(label="Sam")
    secret = await desk.secret(view)
    await trio.sleep(60)

    ticket = await desk.ref().ask(OpenConsultLink(secret, "Sam Jones", "203.0.113.5"))
    assert isinstance(ticket, ConsultPass)
    with pytest.raises(Refusal) as second:
        await desk.ref().ask(OpenConsultLink(secret, "Someone else"))
    assert second.value.code == refusals.LINK_USED

    opened = await page.wait_for(lambda p: p.type == "consult.opened")
    assert opened.body["state"] == "opened" and opened.body["room"] == ticket.room_id
    bell = await desk.ref(addresses.NOTICES).ask(ListNotices(desk.provider))
    assert isinstance(bell, NoticeList)
    (notice,) = bell.notices
    assert notice["ring"] and notice["url"] == f"/consult/call/{ticket.room_id}"
    assert "Sam Jones" in notice["text"]

    room = addresses.room(ticket.room_id)
    sam = await desk.ref(room).ask(RedeemToken(ticket.token.split(".", 1)[1]))
    assert sam.kind == "guest" and sam.display_name == "Sam Jones"
    for conn in ("conn/sam", "conn/doc", "conn/other", "conn/g0", "conn/g1", "conn/g2"):
        await desk.socket(conn)
    view_sam = await desk.ref(room).ask(Inbound("room.enter", {}, sam, "conn/sam"))
    assert view_sam["state"] == "in_call" and view_sam["kind"] == "consult_now"
    await desk.ref(room).ask(Inbound("room.enter", {}, desk.provider, "conn/doc"))

    # Another provider of the same area is not invited: refused, whatever their role.
    demo_user = await staff.create_user(desk.store, "colleague", "Dr Other", "x")
    other = provider_of(demo_user.id, desk.org_id, desk.area_id, "Dr Other")
    with pytest.raises(Refusal) as stranger:
        await desk.ref(room).ask(Inbound("room.enter", {}, other, "conn/other"))
    assert stranger.value.code == refusals.FORBIDDEN
    with pytest.raises(Refusal) as guest_invites:
        await desk.ref(room).ask(Inbound("call.invite", {}, sam, "conn/sam"))
    assert guest_invites.value.code == refusals.FORBIDDEN
    with pytest.raises(Refusal) as no_hold:
        await desk.ref(room).ask(Inbound("call.hold", {}, desk.provider, "conn/doc"))
    assert no_hold.value.code == refusals.NO_HOLD

    # Two people in: four invitations fill the call of six.
    urls = [
        (await desk.ref(room).ask(Inbound("call.invite", {}, desk.provider, "conn/doc")))["url"]
        for _ in range(MAX_PARTICIPANTS - 2)
    ]
    with pytest.raises(Refusal) as full:
        await desk.ref(room).ask(Inbound("call.invite", {}, desk.provider, "conn/doc"))
    assert full.value.code == refusals.CALL_FULL
    for n, url in enumerate(urls[:3]):
        passed = await desk.ref(room).ask(ClaimInvite(url.split(".", 1)[1], f"Guest {n}"))
        guest = await desk.ref(room).ask(RedeemToken(passed.token.split(".", 1)[1]))
        await desk.ref(room).ask(Inbound("room.enter", {}, guest, f"conn/g{n}"))

    await desk.ref(room).ask(Inbound("call.end", {}, desk.provider, "conn/doc"))
    assert (await room_store.get_room(desk.store, ticket.room_id)).state == "closed"
    assert room not in desk.registry  # the call's actor has stopped
    with pytest.raises(TokenRejectedError):  # and its tokens are revoked
        await room_store.check_token(desk.store, ticket.token.split(".", 1)[1])
    actions = await desk.actions()
    assert actions.count("consult.entered") == 5  # Sam, the provider, three guests
    assert actions[0] == "consult.ended" and "consult.opened" in actions
    (ended,) = [e for e in await audit.list_entries(desk.store) if e.action == "consult.ended"]
    assert ended.actor_user_id == int(str(desk.provider.user_id))
    assert ended.details == {"reason": "ended"}
    # The usage report counts it as a Consult Now call of the organisation.
    counts = await reports.calls_by_kind(
        desk.store, desk.org_id, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )
    assert counts["consult_now"] == 1


async def test_a_call_the_provider_never_answers_ends_after_the_grace(
    desk: Desk, autojump_clock: trio.testing.MockClock
) -> None:
    view = await desk.send()
    ticket = await desk.ref().ask(OpenConsultLink(await desk.secret(view), ""))
    await trio.sleep(ANSWER_GRACE - 1)
    assert (await room_store.get_room(desk.store, ticket.room_id)).state == "open"
    await trio.sleep(1.001)
    assert (await room_store.get_room(desk.store, ticket.room_id)).state == "closed"
    (ended,) = [e for e in await audit.list_entries(desk.store) if e.action == "consult.ended"]
    assert ended.details == {"reason": "unanswered"} and ended.actor_kind == "system"


async def test_only_providers_of_the_area_send_and_only_their_own_links_change(
    desk: Desk, autojump_clock: trio.testing.MockClock
) -> None:
    nobody = Principal("staff", "Dr Nobody", user_id="999", org_id=str(desk.org_id))
    with pytest.raises(Refusal) as wrong_role:
        await desk.ref().ask(
            SendConsultLink(nobody, desk.area_id, "sms", "+447700900123", "s", LINK_MARK, "x")
        )
    assert wrong_role.value.code == refusals.FORBIDDEN

    elsewhere = await orgs.create_organisation(desk.store, "Elsewhere")
    intruder = Principal(
        "staff",
        "Dr Elsewhere",
        user_id="998",
        org_id=str(elsewhere.id),
        grants=frozenset({Grant(Role.ORG_ADMIN, Scope.ORG, str(elsewhere.id))}),
    )
    with pytest.raises(Refusal) as other_org:
        await desk.ref().ask(
            SendConsultLink(intruder, desk.area_id, "sms", "+447700900123", "s", LINK_MARK, "x")
        )
    assert other_org.value.code == refusals.NOT_FOUND
    caller = Principal("caller", "Ada", room_id="r")
    with pytest.raises(Refusal) as not_staff:
        await desk.ref().ask(MyConsultLinks(caller))
    assert not_staff.value.code == refusals.FORBIDDEN

    for channel, bad in (("sms", "call me"), ("email", "not-an-address"), ("fax", "123")):
        with pytest.raises(Refusal) as invalid:
            await desk.send(to=bad, channel=channel)
        assert invalid.value.code == refusals.INVALID
    assert await outbox_store.list_messages(desk.store) == []

    view = await desk.send()
    colleague = provider_of(998, desk.org_id, desk.area_id)
    for attempt in (ExtendConsultLink(colleague, view.id), CancelConsultLink(colleague, view.id)):
        with pytest.raises(Refusal) as not_theirs:
            await desk.ref().ask(attempt)
        assert not_theirs.value.code == refusals.NOT_FOUND
    assert await desk.ref().ask(MyConsultLinks(colleague)) == ()
    with pytest.raises(Refusal) as forged:
        await desk.ref().ask(OpenConsultLink("../../etc", "x"))
    assert forged.value.code == refusals.INVALID_TOKEN
    assert (await desk.ref().ask(CheckConsultLink("x" * 500))).state == "unknown"


async def test_a_restarted_desk_keeps_the_expiry_of_pending_links(
    desk: Desk, autojump_clock: trio.testing.MockClock
) -> None:
    view = await desk.send()
    await trio.sleep(100)
    await desk.restart_desk()
    (kept,) = await desk.ref().ask(MyConsultLinks(desk.provider))
    assert kept.id == view.id and kept.seconds_left == pytest.approx(LINK_LIFETIME - 100)
    await trio.sleep(LINK_LIFETIME - 100 + 0.001)
    assert (await consult.get_link(desk.store, view.id)).state == "expired"


async def test_a_call_whose_node_died_starts_again_in_call_once_and_a_closed_one_does_not(
    desk: Desk, autojump_clock: trio.testing.MockClock
) -> None:
    """``StartAgain`` (a cluster node's message for the call found no owner): the desk starts
    it again under the rooms supervisor, restored in call with its call record; a second ask
    starts no second copy; the provider's gateway enters it again. Once it has ended, nothing
    starts."""
    view = await desk.send(label="Sam")
    ticket = await desk.ref().ask(OpenConsultLink(await desk.secret(view), "Sam Jones"))
    room = addresses.room(ticket.room_id)
    await desk.socket("conn/doc")
    await desk.ref(room).ask(Inbound("room.enter", {}, desk.provider, "conn/doc"))
    record = await calls.active_call_for_room(desk.store, ticket.room_id)
    rooms = desk._rooms_supervisor()
    await rooms.stop_child(room)  # as its node dying leaves it: nothing ended in the store
    with trio.fail_after(5):
        while room in desk.registry:  # noqa: ASYNC110
            await trio.sleep(0.01)

    async with trio.open_nursery() as both:
        for _ in range(2):
            both.start_soon(desk.ref().ask, StartAgain(ticket.room_id))
    first = rooms.instance(room)
    assert first is not None and rooms.children().count(room) == 1
    await desk.ref().ask(StartAgain(ticket.room_id))
    assert rooms.instance(room) is first
    again = await desk.ref(room).ask(
        Inbound("room.enter", {}, desk.provider, "conn/doc", again=True)
    )
    assert again["state"] == "in_call" and again["kind"] == "consult_now"
    assert await calls.active_call_for_room(desk.store, ticket.room_id) == record

    await desk.ref(room).ask(Inbound("call.end", {}, desk.provider, "conn/doc"))
    with trio.fail_after(5):
        while room in desk.registry:  # noqa: ASYNC110
            await trio.sleep(0.01)
    for room_id, code in ((ticket.room_id, refusals.CLOSED), ("nope", refusals.NOT_FOUND)):
        with pytest.raises(Refusal) as refused:
            await desk.ref().ask(StartAgain(room_id))
        assert refused.value.code == code
    assert room not in desk.registry
