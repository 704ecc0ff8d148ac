"""An organisation's on-demand list stays live across its queue's restarts and moves (issue 18).

The host keeps each queue's watchers (as the area host keeps an area's), so a queue restarted
after a fault still knows them and sends each the whole list (``ondemand.snapshot``). In a
cluster a queue is handed to its home node: ``GiveUpQueue`` stops it and answers with its
watchers, ``AdoptQueue`` starts it with them (or, when it already runs, shows them the list).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors import addresses
from actors.ondemand.messages import AdoptQueue, GiveUpQueue, QueueWatcher
from actors.ondemand.queue import OnDemandHost
from actors.principal import Principal
from tests.actors.inbox import Pushes
from tests.actors.ondemand.world import World, events_of, settle, world_at


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path) as w:
        yield w


def _host(world: World) -> OnDemandHost:
    host = world.root.instance(addresses.ONDEMAND)
    assert isinstance(host, OnDemandHost)
    return host


def _names(snapshot: dict[str, object]) -> list[str]:
    requests = snapshot["requests"]
    assert isinstance(requests, list)
    return [r["name"] for r in requests]


async def _snapshot(events: Pushes) -> dict[str, object]:
    with trio.fail_after(5):
        push = await events.wait_for(lambda p: p.type == "ondemand.snapshot")
    return push.body


def _user_id(who: Principal) -> int:
    assert who.user_id is not None
    return int(who.user_id)


async def test_a_restarted_queue_keeps_its_watchers_and_sends_the_list(
    world: World, autojump_clock: object
) -> None:
    await world.on_call(world.lee)
    _, admin_events, _ = await world.watch(world.admin)
    _, lee_events, _ = await world.watch(world.lee)
    await world.meet_now("Ada")
    await settle()
    host = _host(world)
    address = addresses.ondemand(world.org_id)
    before = host.queues.instance(address)
    assert before is not None
    before._actor_fail(RuntimeError("a fault in the queue"))  # what a bug would do
    with trio.fail_after(5):
        while host.queues.instance(address) in (None, before):  # noqa: ASYNC110 (the supervisor restarts it)
            await trio.sleep(0.01)

    for events in (admin_events, lee_events):
        assert _names(await _snapshot(events)) == ["Ada"]
    # And the restarted queue goes on pushing to the same lists.
    await world.meet_now("Grace")
    await settle()
    for events in (admin_events, lee_events):
        assert events_of(events, "ondemand.request")[-1]["request"]["name"] == "Grace"


async def test_a_queue_given_up_answers_its_watchers_and_adopted_shows_them_the_list(
    world: World, autojump_clock: object
) -> None:
    await world.on_call(world.lee)
    admin_conn, admin_events, _ = await world.watch(world.admin)
    lee_conn, lee_events, _ = await world.watch(world.lee)
    await world.meet_now("Ada")
    await settle()
    host = world.registry.ref(addresses.ONDEMAND)
    address = addresses.ondemand(world.org_id)

    watchers = await host.ask(GiveUpQueue(world.org_id))
    assert address not in world.registry
    assert watchers == tuple(
        sorted(
            (
                QueueWatcher(admin_conn, _user_id(world.admin), True),
                QueueWatcher(lee_conn, _user_id(world.lee), False),
            ),
            key=lambda w: w.conn,
        )
    )
    assert _host(world).watchers.get(world.org_id) is None  # nothing kept for a queue gone

    host.tell(AdoptQueue(world.org_id, watchers))  # what the home node's desk passes on
    for events in (admin_events, lee_events):
        snapshot = await _snapshot(events)
        assert _names(snapshot) == ["Ada"]
    assert address in world.registry
    assert (await _snapshot(lee_events))["is_admin"] is False
    assert (await _snapshot(admin_events))["is_admin"] is True
    # The new copy pushes to them as the old one did.
    await world.meet_now("Grace")
    await settle()
    for events in (admin_events, lee_events):
        assert events_of(events, "ondemand.request")[-1]["request"]["name"] == "Grace"


async def test_watchers_adopted_by_a_running_queue_get_the_list_once_and_off_call_get_none(
    world: World, autojump_clock: object
) -> None:
    """An ``AdoptQueue`` can come after a page had the queue started here: the watchers it
    brings are watchers all the same. A provider who went off call meanwhile (and is no
    administrator) is not one: they would see a list that is not theirs to see."""
    await world.meet_now("Ada")
    await settle()
    moved_conn, moved_events = await world.socket()
    kim_conn, kim_events = await world.socket()  # Dr Kim is not on call
    brought = (
        QueueWatcher(moved_conn, _user_id(world.admin), True),
        QueueWatcher(kim_conn, _user_id(world.kim), False),
    )
    host = world.registry.ref(addresses.ONDEMAND)
    host.tell(AdoptQueue(world.org_id, brought))
    assert _names(await _snapshot(moved_events)) == ["Ada"]
    await settle()
    assert events_of(kim_events, "ondemand.snapshot") == []
    host.tell(AdoptQueue(world.org_id, brought[:1]))  # a second handover message
    await world.meet_now("Grace")
    await settle()
    assert len(events_of(moved_events, "ondemand.snapshot")) == 1
    assert events_of(moved_events, "ondemand.request")[-1]["request"]["name"] == "Grace"
    assert events_of(kim_events, "ondemand.request") == []
