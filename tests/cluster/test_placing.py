"""The server's side of placement: supervisors that start placed children through the node, a
message for an address nobody owns held while the server starts it again, and the admission gate
(the registry's hook, and the server's: new arrivals refused once Redis has been silent 1 s)."""

from __future__ import annotations

import pytest
import trio

import cluster.transport
from actors.messages import Arrive, DescribeArea
from cluster import PlacingSupervisor
from runtime import ActorNotFound, Refusal
from tests.cluster.echo import Note, Notes, Ping, Pong
from tests.cluster.nodes import Running, echo, running
from tests.cluster.servers import RedisServer
from waitroom.clustered import ADMIT_FRESH, NOT_PLACED, PAUSED, RefusingPlacer, admission_gate


def placed(address: str) -> bool:
    return address.startswith("room/")


async def placing(side: Running, nursery: trio.Nursery) -> PlacingSupervisor:
    supervisor: PlacingSupervisor = await nursery.start(
        PlacingSupervisor(side.node, f"rooms-{side.node.id}", placed=placed).run
    )
    return supervisor


async def test_placed_children_start_on_one_node_and_others_everywhere(
    redis_server: RedisServer,
) -> None:
    async with (
        running(redis_server.url, "a") as a,
        running(redis_server.url, "b") as b,
        trio.open_nursery() as nursery,
    ):
        rooms_a, rooms_b = await placing(a, nursery), await placing(b, nursery)
        async with trio.open_nursery() as starts:
            for n in range(20):
                starts.start_soon(rooms_a.start_child, echo(f"room/{n}", "a"))
                starts.start_soon(rooms_b.start_child, echo(f"room/{n}", "b"))
        for n in range(20):
            here = [s.node.id for s in (a, b) if f"room/{n}" in s.node.registry]
            assert len(here) == 1
            with trio.fail_after(5):
                by_a = await a.node.registry.ref(f"room/{n}").ask(Ping(n))
                by_b = await b.node.registry.ref(f"room/{n}").ask(Ping(n))
            assert by_a == by_b == Pong(n, here[0])
        # A kind that is not placed runs on every node that starts it.
        await rooms_a.start_child(echo("system/echo", "a"))
        await rooms_b.start_child(echo("system/echo", "b"))
        assert (await a.node.registry.ref("system/echo").ask(Ping(0))).by == "a"
        assert (await b.node.registry.ref("system/echo").ask(Ping(0))).by == "b"
        nursery.cancel_scope.cancel()


async def test_a_message_for_an_address_nobody_owns_waits_for_the_server_to_start_it(
    redis_server: RedisServer,
) -> None:
    async with (
        running(redis_server.url, "a") as a,
        running(redis_server.url, "b") as b,
        trio.open_nursery() as nursery,
    ):
        rooms_b = await placing(b, nursery)
        asked: list[str] = []

        def start_on_b(address: str) -> None:  # what the server's hook does: start it somewhere
            asked.append(address)
            nursery.start_soon(rooms_b.start_child, echo(address, "b"))

        a.node.transport.on_unowned = start_on_b
        a.node.registry.ref("room/gone").tell(Note("first"))
        with trio.fail_after(5):
            pong = await a.node.registry.ref("room/gone").ask(Ping(7), timeout=5)
            assert pong == Pong(7, "b")
            assert await a.node.registry.ref("room/gone").ask(Notes()) == ("first",)
        assert asked == ["room/gone"]  # asked once, though two messages waited
        assert a.node.transport.counts.held >= 1
        nursery.cancel_scope.cancel()


async def test_a_held_message_ends_as_not_found_when_nobody_starts_it(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster.transport, "HOLD_UNOWNED", 0.6)
    async with running(redis_server.url, "a") as a:
        asked: list[str] = []
        a.node.transport.on_unowned = asked.append
        with trio.fail_after(3), pytest.raises(ActorNotFound):
            await a.node.registry.ref("room/never").ask(Ping(1), timeout=3)
        assert asked and set(asked) == {"room/never"}


async def test_the_gate_refuses_before_delivery_here_and_from_another_node(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await a.node.host(a.supervisor, echo("room/r", "a"))

        def gate(address: str, message: object) -> None:
            if isinstance(message, Note):
                raise Refusal("unavailable", "no new notes now")

        a.node.registry.gate = gate
        with pytest.raises(Refusal) as local:
            a.node.registry.ref("room/r").tell(Note("x"))
        assert local.value.code == "unavailable"
        b.node.registry.ref("room/r").tell(Note("from b"))  # refused on arrival at a
        with trio.fail_after(5):
            assert await b.node.registry.ref("room/r").ask(Ping(2)) == Pong(2, "a")
            assert await a.node.registry.ref("room/r").ask(Notes()) == ()
        assert any("no new notes" in reason for reason in a.node.transport.counts.drops)


async def test_new_admissions_are_refused_once_redis_has_not_answered_for_a_second(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a:
        gate = admission_gate(a.node)
        gate("area/1", Arrive({"name": "Ann"}))  # Redis answers: let in
        redis_server.pause()
        try:
            with trio.fail_after(ADMIT_FRESH + 3):
                while a.node.health.answered_within(ADMIT_FRESH):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            with pytest.raises(Refusal) as refused:
                gate("area/1", Arrive({"name": "Bo"}))
            assert (refused.value.code, refused.value.detail) == ("unavailable", PAUSED)
            gate("area/1", DescribeArea())  # what is not an admission passes
        finally:
            redis_server.resume()
        with trio.fail_after(5):
            while not a.node.health.answered_within(ADMIT_FRESH):  # noqa: ASYNC110
                await trio.sleep(0.05)
        gate("area/1", Arrive({"name": "Cy"}))


async def test_the_servers_placer_refuses_instead_of_crashing_while_redis_is_away(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, trio.open_nursery() as nursery:
        rooms = await nursery.start(RefusingPlacer(a.node, "rooms", placed=placed).run)
        await rooms.start_child(echo("room/1", "a"))
        redis_server.pause()
        try:
            with trio.fail_after(5), pytest.raises(Refusal) as refused:
                await rooms.start_child(echo("room/2", "a"))
        finally:
            redis_server.resume()
        assert (refused.value.code, refused.value.detail) == ("unavailable", NOT_PLACED)
        assert "room/2" not in a.node.registry
        assert await a.node.registry.ref("room/1").ask(Ping(1)) == Pong(1, "a")
        nursery.cancel_scope.cancel()
