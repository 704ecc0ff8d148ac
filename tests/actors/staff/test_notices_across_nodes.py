"""The notice board on two nodes (issue 18): a notice stored through node a reaches the staff
member's sockets subscribed through node b, and is stored once.

Two linked registries stand for the nodes (``tests/actors/linked_nodes.py``), one store for the
shared database.
"""

from __future__ import annotations

from pathlib import Path

import trio

from actors import addresses
from actors.inbound import Inbound
from actors.principal import Principal
from actors.staff.notices import ListNotices, NoticeBoard, NoticeList, Notify
from runtime import ChildSpec, Supervisor
from storage import orgs, staff
from storage.db import open_store
from tests.actors.inbox import Inbox, Pushes
from tests.actors.linked_nodes import Linked


async def test_a_notice_stored_on_node_a_rings_the_socket_subscribed_on_node_b(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with open_store(tmp_path / "notices.sqlite3") as store:
        org = await orgs.create_organisation(store, "Riverside")
        user = await staff.create_user(store, "lee", "Dr Lee", "x")
        lee = Principal("staff", "Dr Lee", str(user.id))
        links = Linked()
        roots: dict[str, Supervisor] = {}
        for node in ("a", "b"):
            roots[node] = await nursery.start(Supervisor(links.node(node), f"root-{node}").run)
            await roots[node].start_child(ChildSpec(addresses.NOTICES, lambda: NoticeBoard(store)))
        on_b = Pushes()
        await roots["b"].start_child(ChildSpec("conn/b-1", lambda: Inbox(on_b)))
        board_b = links.registries["b"].ref(addresses.NOTICES)
        await board_b.ask(Inbound("notices.subscribe", {}, lee, "conn/b-1"))

        board_a = links.registries["a"].ref(addresses.NOTICES)
        notice = Notify(org.id, user.id, "consult.opened", "Sam opened your link", "/consult", True)
        notice_id = await board_a.ask(notice)

        with trio.fail_after(2):
            push = await on_b.wait_for(lambda p: p.type == "staff.notice")
        assert push.body["id"] == notice_id and push.body["ring"] is True
        assert push.body["unread"] == 1 and push.body["text"] == "Sam opened your link"
        listing: NoticeList = await board_b.ask(ListNotices(lee))
        assert [n["id"] for n in listing.notices] == [notice_id]  # stored once, by node a
        nursery.cancel_scope.cancel()
