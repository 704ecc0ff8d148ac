"""A node's hosted actors and their placements stay in step: an actor that stops releases its
address, an address taken over while the node was away is stopped here, hosting twice is harmless."""

from __future__ import annotations

import trio

from cluster.placement import REFRESH_EVERY
from runtime import ActorNotFound, Restart, Stop
from tests.cluster.echo import Ping, Pong
from tests.cluster.nodes import Running, echo, running
from tests.cluster.servers import RedisServer


async def test_hosting_an_address_that_runs_here_again_keeps_it(redis_server: RedisServer) -> None:
    async with running(redis_server.url, "a") as a:
        await a.node.host(a.supervisor, echo("room/r", "a"))
        await a.node.host(a.supervisor, echo("room/r", "a"))
        assert "room/r" in a.node.registry
        assert await a.node.placement.owner("room/r") == "a"
        assert await a.node.registry.ref("room/r").ask(Ping(1)) == Pong(1, "a")


async def test_an_actor_that_stops_by_itself_releases_its_address_within_a_period(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await a.node.host(a.supervisor, echo("room/r", "a", Restart.TRANSIENT))
        await a.node.registry.ref("room/r").ask(Stop())  # a room that empties ends itself
        with trio.fail_after(REFRESH_EVERY * 3):
            while await a.node.placement.owner("room/r") is not None:  # noqa: ASYNC110
                await trio.sleep(0.05)
        await b.node.host(b.supervisor, echo("room/r", "b"))
        with trio.fail_after(5):
            assert (await a.node.registry.ref("room/r").ask(Ping(2))).by == "b"


async def test_an_address_taken_over_while_this_node_was_away_is_stopped_here(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a:
        await a.node.host(a.supervisor, echo("room/r", "a"))
        # As if a's key had expired while a was away and node c had started the room since.
        await a.node.client.set(a.node.keys.place("room/r"), "c")
        with trio.fail_after(REFRESH_EVERY * 3):
            while "room/r" in a.node.registry:  # noqa: ASYNC110 (the refresh loop's work)
                await trio.sleep(0.05)
        assert "room/r" not in a.node.placement.held
        assert await a.node.placement.owner("room/r") == "c"  # c's claim is left alone
        try:
            a.node.registry.ref("room/r").tell(Ping(3))  # now goes to c's inbox
        except ActorNotFound as exc:
            raise AssertionError("the address should route to its new owner") from exc


async def test_two_nodes_ensuring_the_same_rooms_at_once_agree_on_one_owner_each(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        owners: dict[str, list[str]] = {}

        async def ensure(side: Running, name: str, address: str) -> None:
            owner = await side.node.ensure(side.supervisor, echo(address, name))
            owners.setdefault(address, []).append(owner)

        async with trio.open_nursery() as nursery:
            for n in range(100):
                nursery.start_soon(ensure, a, "a", f"room/{n}")
                nursery.start_soon(ensure, b, "b", f"room/{n}")
        for address, said in owners.items():
            assert len(said) == 2 and said[0] == said[1], (address, said)
            running_on = [s for s, side in (("a", a), ("b", b)) if address in side.node.registry]
            assert running_on == [said[0]]
        with trio.fail_after(5):
            for n in range(0, 100, 10):
                by_a = await a.node.registry.ref(f"room/{n}").ask(Ping(n))
                by_b = await b.node.registry.ref(f"room/{n}").ask(Ping(n))
                assert by_a == by_b == Pong(n, owners[f"room/{n}"][0])
