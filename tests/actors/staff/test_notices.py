"""The notice board behind the bell (issue 14): stored first, pushed live to the staff member's
subscribed sockets only, unread count, mark read, kept across a restart of the board."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from actors import addresses, refusals
from actors.inbound import ConnectionClosed, Inbound
from actors.principal import Principal
from actors.staff.notices import ListNotices, MarkNoticeRead, NoticeBoard, NoticeList, Notify
from runtime import ActorRef, ChildSpec, Refusal, Registry, Supervisor
from storage import orgs, staff
from storage.db import Store, open_store
from tests.actors.inbox import Inbox, Pushes


@dataclass
class Board:
    store: Store
    root: Supervisor
    ref: ActorRef
    org_id: int
    lee: Principal
    kim: Principal

    async def socket(self, name: str) -> Pushes:
        events = Pushes()
        await self.root.start_child(ChildSpec(name, lambda: Inbox(events)))
        return events


def staff_principal(user_id: int, name: str) -> Principal:
    return Principal("staff", name, str(user_id))


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    async with open_store(tmp_path / "notices.sqlite3") as store, trio.open_nursery() as nursery:
        org = await orgs.create_organisation(store, "Riverside")
        lee = await staff.create_user(store, "lee", "Dr Lee", "x")
        kim = await staff.create_user(store, "kim", "Dr Kim", "x")
        root: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        ref = await root.start_child(ChildSpec(addresses.NOTICES, lambda: NoticeBoard(store)))
        yield Board(
            store,
            root,
            ref,
            org.id,
            staff_principal(lee.id, "Dr Lee"),
            staff_principal(kim.id, "Dr Kim"),
        )
        nursery.cancel_scope.cancel()


def notify(board: Board, user: Principal, text: str, ring: bool = True) -> Notify:
    assert user.user_id is not None
    return Notify(board.org_id, int(user.user_id), "ondemand.assigned", text, "/ondemand", ring)


async def test_notice_is_pushed_to_the_subscribed_user_only(board: Board) -> None:
    lee_tab, kim_tab = await board.socket("conn/1"), await board.socket("conn/2")
    first = await board.ref.ask(Inbound("notices.subscribe", {}, board.lee, "conn/1"))
    assert first == {"unread": 0, "notices": []}
    await board.ref.ask(Inbound("notices.subscribe", {}, board.kim, "conn/2"))

    notice_id = await board.ref.ask(notify(board, board.lee, "Ada was assigned to you"))

    with trio.fail_after(2):
        push = await lee_tab.wait_for(lambda p: p.type == "staff.notice")
    assert push.body["id"] == notice_id
    assert push.body["text"] == "Ada was assigned to you"
    assert push.body["ring"] is True and push.body["url"] == "/ondemand"
    assert push.body["unread"] == 1
    await trio.sleep(0.05)
    assert [p for p in kim_tab if p.type == "staff.notice"] == []


async def test_unread_count_and_mark_read(board: Board) -> None:
    a = await board.ref.ask(notify(board, board.lee, "one"))
    await board.ref.ask(notify(board, board.lee, "two", ring=False))
    listing: NoticeList = await board.ref.ask(ListNotices(board.lee))
    assert listing.unread == 2
    assert [n["text"] for n in listing.notices] == ["two", "one"]  # newest first

    assert await board.ref.ask(Inbound("notices.read", {"id": a}, board.lee, "conn/1")) == {
        "unread": 1
    }
    # Reading twice is harmless.
    assert await board.ref.ask(MarkNoticeRead(board.lee, a)) == 1
    listing = await board.ref.ask(ListNotices(board.lee))
    assert [n["read"] for n in listing.notices] == [False, True]


async def test_another_users_notice_cannot_be_read(board: Board) -> None:
    theirs = await board.ref.ask(notify(board, board.lee, "for Lee"))
    for forged in (theirs, 0, -1, 2**63, 2**64 - 1):
        with pytest.raises(Refusal) as refused:
            await board.ref.ask(Inbound("notices.read", {"id": forged}, board.kim, "conn/2"))
        assert refused.value.code == refusals.NOT_FOUND
    listing: NoticeList = await board.ref.ask(ListNotices(board.lee))
    assert listing.unread == 1


async def test_callers_have_no_notices(board: Board) -> None:
    caller = Principal("caller", "Ada", room_id="r1")
    with pytest.raises(Refusal) as refused:
        await board.ref.ask(Inbound("notices.subscribe", {}, caller, "conn/3"))
    assert refused.value.code == refusals.FORBIDDEN


@pytest.mark.parametrize(
    "url", ["https://evil.example/", "//evil.example", "/a\\b", "/a\nb", "javascript:x"]
)
async def test_a_notice_links_only_to_this_site(board: Board, url: str) -> None:
    assert board.lee.user_id is not None
    bad = Notify(board.org_id, int(board.lee.user_id), "k", "text", url, False)
    with pytest.raises(Refusal) as refused:
        await board.ref.ask(bad)
    assert refused.value.code == refusals.BAD_FIELD
    listing: NoticeList = await board.ref.ask(ListNotices(board.lee))
    assert listing.notices == ()


async def test_closed_socket_is_forgotten_and_notices_survive_a_restart(board: Board) -> None:
    tab = await board.socket("conn/1")
    await board.ref.ask(Inbound("notices.subscribe", {}, board.lee, "conn/1"))
    board.ref.tell(ConnectionClosed("conn/1", board.lee))
    await board.ref.ask(notify(board, board.lee, "while away"))
    await trio.sleep(0.05)
    assert tab == []

    # A new board over the same database (a restart) lists what was stored.
    fresh = await board.root.start_child(
        ChildSpec(addresses.NOTICES + "-again", lambda: NoticeBoard(board.store))
    )
    listing: NoticeList = await fresh.ask(ListNotices(board.lee))
    assert listing.unread == 1 and listing.notices[0]["text"] == "while away"
