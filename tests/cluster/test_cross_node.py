"""Two nodes on one real Redis, in one process: tells, asks, refusals and timeouts cross unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio

from cluster import PlacementTaken, UnknownMessageType, open_node
from cluster.keys import INBOX_GROUP
from runtime import ActorNotFound, AskTimeout, Refusal, Supervisor
from runtime.address import on_node
from tests.cluster.echo import Deny, Hold, Note, Notes, Ping, Pong, Relay, echo_types
from tests.cluster.nodes import Running, echo, running
from tests.cluster.servers import RedisServer
from waitroom.clustered import located


@dataclass(frozen=True)
class Unlisted:
    """A message type no node registered."""


async def test_an_ask_and_a_tell_cross_to_the_owning_node_and_the_sender_does_not_change(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await b.node.host(b.supervisor, echo("room/r1", "b"))
        assert "room/r1" not in a.node.registry
        ref = a.node.registry.ref("room/r1")  # a plain ActorRef, as any sender holds
        with trio.fail_after(5):
            assert await ref.ask(Ping(1)) == Pong(1, "b")
            ref.tell(Note("one"))
            ref.tell(Note("two"))
            assert await ref.ask(Notes()) == ("one", "two")  # in order, after the tells
        assert await a.node.live_nodes() == ["a", "b"]
        assert a.node.transport.counts.sent >= 4 and b.node.transport.counts.received >= 4
        assert a.node.registry.waiting_replies() == 0


async def test_refusals_timeouts_and_missing_actors_reach_the_asker_as_on_one_node(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await b.node.host(b.supervisor, echo("room/r1", "b"))
        ref = a.node.registry.ref("room/r1")
        with trio.fail_after(5):
            with pytest.raises(Refusal) as refused:
                await ref.ask(Deny("forbidden"))
            assert (refused.value.code, refused.value.detail) == ("forbidden", "refused on b")
            with pytest.raises(AskTimeout):
                await ref.ask(Hold(), timeout=0.3)
            assert a.node.registry.waiting_replies() == 0
            with pytest.raises(ActorNotFound):
                await a.node.registry.ref("room/nobody").ask(Ping(2))
            with pytest.raises(UnknownMessageType):  # refused at the sender, nothing sent
                ref.tell(Unlisted())
            with pytest.raises(UnknownMessageType):
                await ref.ask(Unlisted())
            assert await ref.ask(Ping(3)) == Pong(3, "b")


async def test_a_type_the_receiving_node_does_not_know_is_refused_there(
    redis_server: RedisServer,
) -> None:
    wider = echo_types()
    wider.register(Unlisted)
    async with running(redis_server.url, "a", wider) as a, running(redis_server.url, "b") as b:
        await b.node.host(b.supervisor, echo("room/r1", "b"))
        with trio.fail_after(5), pytest.raises(Refusal) as refused:
            await a.node.registry.ref("room/r1").ask(Unlisted())
        assert refused.value.code == "unknown_message"
        assert "Unlisted" in refused.value.detail


async def test_an_actor_on_b_asks_an_actor_on_a_while_answering_a(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await a.node.host(a.supervisor, echo("room/home", "a"))
        await b.node.host(b.supervisor, echo("room/away", "b"))
        with trio.fail_after(5):
            assert await a.node.registry.ref("room/away").ask(Relay("room/home", 7)) == Pong(7, "a")


async def test_hosting_the_same_room_on_two_nodes_at_once_starts_it_once(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        for round_ in range(50):
            address = f"room/race-{round_}"
            outcomes: dict[str, str] = {}

            async def start(
                side: Running,
                name: str,
                address: str = address,
                outcomes: dict[str, str] = outcomes,
            ) -> None:
                try:
                    await side.node.host(side.supervisor, echo(address, name))
                    outcomes[name] = "started"
                except PlacementTaken as taken:
                    outcomes[name] = f"taken by {taken.owner}"

            async with trio.open_nursery() as nursery:
                nursery.start_soon(start, a, "a")
                nursery.start_soon(start, b, "b")
            assert sorted(outcomes.values()) in (
                ["started", "taken by a"],
                ["started", "taken by b"],
            ), outcomes
            hosts = [name for name, side in (("a", a), ("b", b)) if address in side.node.registry]
            assert len(hosts) == 1
            winner = hosts[0]
            assert outcomes[winner] == "started"
            with trio.fail_after(5):  # either node reaches it, wherever it runs
                assert (await a.node.registry.ref(address).ask(Ping(round_))).by == winner
                assert (await b.node.registry.ref(address).ask(Ping(round_))).by == winner


async def test_a_stopped_room_is_released_and_can_start_on_another_node(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await a.node.host(a.supervisor, echo("room/moving", "a"))
        with pytest.raises(PlacementTaken):
            await b.node.host(b.supervisor, echo("room/moving", "b"))
        await a.node.unhost("room/moving")
        assert await b.node.placement.owner("room/moving") is None
        await b.node.host(b.supervisor, echo("room/moving", "b"))
        with trio.fail_after(5):
            assert (await a.node.registry.ref("room/moving").ask(Ping(1))).by == "b"


def conn_node(address: str) -> str | None:
    """``conn/<node>-<n>`` names its node; every other address is placed."""
    if address.startswith("conn/"):
        return address[5:].partition("-")[0]
    return None


async def test_an_address_that_names_its_node_is_reached_without_a_placement(
    redis_server: RedisServer,
) -> None:
    async with (
        open_node(redis_server.url, echo_types(), node_id="a", prefix="t", located=conn_node) as a,
        open_node(redis_server.url, echo_types(), node_id="b", prefix="t", located=conn_node) as b,
        trio.open_nursery() as nursery,
    ):
        supervisor = await nursery.start(Supervisor(b.registry, "root-b").run)
        await supervisor.start_child(echo("conn/b-1", "b"))  # started, never placed
        assert await b.placement.owner("conn/b-1") is None
        with trio.fail_after(5):
            assert await a.registry.ref("conn/b-1").ask(Ping(1)) == Pong(1, "b")
            with pytest.raises(ActorNotFound):  # on b, but gone: b says so
                await a.registry.ref("conn/b-2").ask(Ping(2))
        with pytest.raises(ActorNotFound):  # named here and not here: refused at once
            a.registry.ref("conn/a-9").tell(Ping(3))
        nursery.cancel_scope.cancel(reason="test over")


async def test_a_per_node_actor_reaches_the_same_name_on_another_node_and_peers_are_known(
    redis_server: RedisServer,
) -> None:
    """``node/<id>/<name>`` crosses to node ``id`` and reaches its local ``name`` (each node runs
    its own copy under that name); every node knows the others (``Registry.peers``)."""
    async with (
        open_node(redis_server.url, echo_types(), node_id="a", prefix="t", located=located) as a,
        open_node(redis_server.url, echo_types(), node_id="b", prefix="t", located=located) as b,
        trio.open_nursery() as nursery,
    ):
        for node in (a, b):
            root = await nursery.start(Supervisor(node.registry, f"root-{node.id}").run)
            await root.start_child(echo("notices", node.id))
        with trio.fail_after(5):
            while a.registry.peers() != ("b",):  # noqa: ASYNC110 (a reads b within a period)
                await trio.sleep(0.05)
            assert b.registry.peers() == ("a",)
            there = a.registry.ref(on_node("b", "notices"))
            assert await there.ask(Ping(1)) == Pong(1, "b")
            here = a.registry.ref(on_node("a", "notices"))
            assert await here.ask(Ping(2)) == Pong(2, "a")  # this node's own copy, not sent
            with pytest.raises(ActorNotFound):
                await a.registry.ref(on_node("b", "nobody")).ask(Ping(3))
        nursery.cancel_scope.cancel()


async def test_one_message_told_to_several_addresses_on_a_node_crosses_once_and_keeps_order(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        rooms = ["room/r1", "room/r2", "room/r3"]
        for room in rooms:
            await b.node.host(b.supervisor, echo(room, "b"))
        await a.node.live_nodes()  # b's traits as a reads them: b reads entries for many
        registry = a.node.registry
        sent, received = a.node.transport.counts.sent, b.node.transport.counts.received
        registry.ref("room/r2").tell(Note("before"))
        everyone = Note("everyone")  # one object told to each, as a fan-out loop does
        for room in rooms:
            registry.ref(room).tell(everyone)
        registry.ref("room/r1").tell(Note("after"))
        with trio.fail_after(5):
            assert await registry.ref("room/r1").ask(Notes()) == ("everyone", "after")
            assert await registry.ref("room/r2").ask(Notes()) == ("before", "everyone")
            assert await registry.ref("room/r3").ask(Notes()) == ("everyone",)
        # before, everyone (one entry for three), after, then the three asks
        assert a.node.transport.counts.shared == 2
        assert a.node.transport.counts.sent - sent == 6
        assert b.node.transport.counts.received - received == 6


async def test_a_node_that_does_not_read_many_gets_an_entry_per_address(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        rooms = ["room/r1", "room/r2"]
        for room in rooms:
            await b.node.host(b.supervisor, echo(room, "b"))
        a.node.transport.reads_many = lambda node: False  # b as an older release
        everyone = Note("everyone")
        for room in rooms:
            a.node.registry.ref(room).tell(everyone)
        with trio.fail_after(5):
            for room in rooms:
                assert await a.node.registry.ref(room).ask(Notes()) == ("everyone",)
        assert a.node.transport.counts.shared == 0


async def test_what_a_read_queued_is_acknowledged_by_the_next_read_without_waiting_for_more(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await b.node.host(b.supervisor, echo("room/r1", "b"))
        inbox = b.node.keys.inbox("b")
        with trio.fail_after(5):
            a.node.registry.ref("room/r1").tell(Note("one"))
            assert await a.node.registry.ref("room/r1").ask(Notes()) == ("one",)
            # Nothing more is sent to b: the read now waiting carried the acknowledgement.
            while (await b.node.client.xpending(inbox, INBOX_GROUP)).pending:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert b.node.transport.counts.acknowledgements >= 1


async def test_a_message_for_an_address_claimed_but_still_starting_waits_for_its_actor(
    redis_server: RedisServer,
) -> None:
    """A handover's new home claims an area, then starts it: what reaches the node in between
    is held for the actor, not refused as not found (a dashboard's watch was told forbidden)."""
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await b.node.placement.acquire("room/late")  # claimed by b, its actor not started yet
        answers: list[object] = []
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:

                async def ask() -> None:
                    answers.append(await a.node.registry.ref("room/late").ask(Ping(1)))

                nursery.start_soon(ask)
                while not b.node.transport.counts.held:  # noqa: ASYNC110 (b holds it for the actor)
                    await trio.sleep(0.01)
                await b.node.host(b.supervisor, echo("room/late", "b"))
        assert answers == [Pong(1, "b")]
