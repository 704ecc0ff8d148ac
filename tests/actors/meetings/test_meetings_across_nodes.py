"""Meeting consoles on several nodes (issue 18): each node runs a ``meetings`` host, a room's call
runs on one node, consoles watch through any.

Linked registries stand for the nodes (``tests/actors/linked_nodes.py``), each with the whole
actor tree as the server starts it, over one store (the shared database). Shown: a console
watching through node b hears who enters a call running on node a and lists them; a node that
starts later learns who is in the calls already running; archiving the room through node b ends
its call on node a; a user room created through one node is known to the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from actors import addresses
from actors.boot import start_actors
from actors.inbound import Inbound
from actors.meetings.messages import (
    ArchiveMeetingRoom,
    CreateMeetingRoom,
    CreateUserRoom,
    EnterMeetingRoom,
    MeetingAdminEntry,
    MeetingRoomsFor,
    MeetingRoomView,
    UserRoomFor,
)
from actors.principal import Principal
from actors.staff.directory import principal_of
from runtime import ChildSpec, Registry, Supervisor
from services.passwords import Passwords
from storage import seed
from tests.actors.inbox import Inbox, Pushes
from tests.actors.linked_nodes import Linked
from tests.actors.meetings.schema import meeting_store

MEMBER = "Dr Demo Provider"


async def tree(nursery: trio.Nursery, registry: Registry, store: Any) -> Supervisor:
    root: Supervisor = await nursery.start(Supervisor(registry, f"root-{registry.node}").run)
    await start_actors(nursery, root, store)
    return root


def occupancy(meeting_id: int, people: list[str]) -> Any:
    return lambda p: (
        p.type == "meetings.occupancy" and p.body == {"id": meeting_id, "people": people}
    )


async def listed(registry: Registry, member: Principal, meeting_id: int) -> tuple[str, ...]:
    views: tuple[MeetingRoomView, ...] = await registry.ref(addresses.MEETINGS).ask(
        MeetingRoomsFor(member)
    )
    return next(v.people for v in views if v.id == meeting_id)


async def test_a_console_on_node_b_hears_and_lists_a_call_on_node_a_and_ends_it(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with meeting_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        admin = await principal_of(store, demo.admin_user_id, "Demo Administrator")
        member = await principal_of(store, demo.provider_user_id, MEMBER)
        links = Linked()
        a, b = links.node("a"), links.node("b")
        root_a = await tree(nursery, a, store)
        root_b = await tree(nursery, b, store)
        room: MeetingAdminEntry = await b.ref(addresses.MEETINGS).ask(
            CreateMeetingRoom(admin, demo.unit_id, "Huddle")
        )
        console = Pushes()
        await root_b.start_child(ChildSpec("conn/b-1", lambda: Inbox(console)))
        watch = Inbound("meetings.watch", {}, member, "conn/b-1")
        first = await b.ref(addresses.MEETINGS).ask(watch)
        assert {"id": room.id, "people": []} in first["rooms"]

        # The member enters through node a: the call runs there.
        view = await a.ref(addresses.MEETINGS).ask(EnterMeetingRoom(member, room.id))
        await root_a.start_child(ChildSpec("conn/a-1", Inbox))
        call = addresses.room(view.room_id)
        await a.ref(call).ask(Inbound("room.enter", {}, member, "conn/a-1"))
        assert call in a and call not in b

        with trio.fail_after(2):
            await console.wait_for(occupancy(room.id, [MEMBER]))
        assert await listed(b, member, room.id) == (MEMBER,)

        # A node that starts now learns who is in the call from the others.
        c = links.node("c")
        await tree(nursery, c, store)
        with trio.fail_after(2):
            while await listed(c, member, room.id) != (MEMBER,):  # noqa: ASYNC110
                await trio.sleep(0.01)

        # Archived through node b: the call on node a ends, and the console hears it empty.
        await b.ref(addresses.MEETINGS).ask(ArchiveMeetingRoom(admin, room.id))
        with trio.fail_after(5):
            await console.wait_for(occupancy(room.id, []))
            while call in a:  # noqa: ASYNC110 (the registry has no event for an actor's end)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def test_a_user_room_created_through_one_node_is_known_to_the_others(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with meeting_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        admin = await principal_of(store, demo.admin_user_id, "Demo Administrator")
        member = await principal_of(store, demo.provider_user_id, MEMBER)
        links = Linked()
        a, b = links.node("a"), links.node("b")
        await tree(nursery, a, store)
        await tree(nursery, b, store)
        assert await b.ref(addresses.MEETINGS).ask(UserRoomFor(member)) is None
        await a.ref(addresses.MEETINGS).ask(
            CreateUserRoom(admin, demo.unit_id, demo.provider_user_id)
        )
        with trio.fail_after(2):
            while await b.ref(addresses.MEETINGS).ask(UserRoomFor(member)) is None:  # noqa: ASYNC110
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
