"""The Consult Now desk on several nodes (issue 18), on Trio's virtual clock.

Every node runs a desk; a provider's console watches through one node while the link is opened
through another. Linked registries stand for the nodes (``tests/actors/linked_nodes.py``), each
with the whole actor tree over one store (the shared database). Shown: the provider watching
through node b hears ``consult.opened`` and the ring of a link opened through node a; a link's
expiry is recorded and audited once although every node's desk has a timer for it, and it
still expires when the node it was sent through is gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing

from actors import addresses
from actors.boot import start_actors
from actors.consult.desk import LINK_LIFETIME, ConsultDesk
from actors.consult.messages import OpenConsultLink
from actors.inbound import Inbound
from runtime import Supervisor
from services.passwords import Passwords
from storage import consult, seed
from storage.db import open_store
from tests.actors.consult.test_desk import Desk, provider_of
from tests.actors.inbox import Pushes
from tests.actors.linked_nodes import Linked


@dataclass
class Nodes:
    links: Linked
    a: Desk
    b: Desk


@pytest.fixture
async def nodes(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Nodes]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        area_id = demo.areas[0].id
        provider = provider_of(demo.provider_user_id, demo.org_id, area_id)
        links = Linked()
        desks = []
        for node in ("a", "b"):
            registry = links.node(node)
            root: Supervisor = await nursery.start(Supervisor(registry, f"root-{node}").run)
            await start_actors(nursery, root, store)
            desk = Desk(store, registry, root, area_id, demo.org_id, provider)
            await desk.restart_desk()  # on the virtual clock
            desks.append(desk)
        yield Nodes(links, *desks)
        nursery.cancel_scope.cancel()


async def watching(desk: Desk, conn: str) -> Pushes:
    """A provider's console connected to ``desk``'s node: it watches links and notices."""
    page = await desk.socket(conn)
    await desk.ref().ask(Inbound("consult.watch", {}, desk.provider, conn))
    await desk.ref(addresses.NOTICES).ask(Inbound("notices.subscribe", {}, desk.provider, conn))
    return page


async def test_a_link_opened_through_node_a_rings_the_provider_watching_through_node_b(
    nodes: Nodes, autojump_clock: trio.testing.MockClock
) -> None:
    page = await watching(nodes.b, "conn/b-1")
    view = await nodes.b.send(label="Sam")
    secret = await nodes.b.secret(view)

    opened = await nodes.a.ref().ask(OpenConsultLink(secret, "Sam"))
    with trio.fail_after(5):
        told = await page.wait_for(lambda p: p.type == "consult.opened")
        ring = await page.wait_for(lambda p: p.type == "staff.notice")
    assert told.body["id"] == view.id and told.body["room"] == opened.room_id
    assert ring.body["ring"] is True and ring.body["url"] == f"/consult/call/{opened.room_id}"
    assert addresses.room(opened.room_id) in nodes.a.registry  # the call runs where it opened


async def test_an_expiry_is_recorded_once_although_every_node_has_a_timer(
    nodes: Nodes, autojump_clock: trio.testing.MockClock
) -> None:
    page = await watching(nodes.b, "conn/b-1")
    view = await nodes.a.send()
    await trio.sleep(1)
    desk_b = nodes.b.root.instance(addresses.CONSULT)
    assert isinstance(desk_b, ConsultDesk)
    assert view.id in desk_b.timers  # node b's desk heard of it and armed a timer too
    await trio.sleep(LINK_LIFETIME)
    assert (await consult.get_link(nodes.a.store, view.id)).state == "expired"
    assert (await nodes.a.actions()).count("consult.expired") == 1
    with trio.fail_after(5):
        await page.wait_for(lambda p: p.body.get("state") == "expired")


async def test_a_link_still_expires_when_the_node_it_was_sent_through_is_gone(
    nodes: Nodes, autojump_clock: trio.testing.MockClock
) -> None:
    page = await watching(nodes.b, "conn/b-1")
    view = await nodes.a.send()
    await trio.sleep(1)
    nodes.links.kill("a")
    await nodes.a.root.stop_child(addresses.CONSULT)  # node a's desk and its timers are gone
    await trio.sleep(LINK_LIFETIME)
    assert (await consult.get_link(nodes.b.store, view.id)).state == "expired"
    assert (await nodes.b.actions()).count("consult.expired") == 1
    with trio.fail_after(5):
        await page.wait_for(lambda p: p.body.get("state") == "expired")
