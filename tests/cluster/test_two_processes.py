"""Nodes as separate processes on one real Redis: a message from node A to B and back, a placement
race between two processes, and kill -9 of a room's node followed by its takeover."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import trio

from tests.cluster.echo import Note, Notes, Ping, Pong, Relay
from tests.cluster.nodes import echo, running
from tests.cluster.servers import NodeProcess, RedisServer


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    """Node processes a test starts; every one is stopped afterwards."""
    started: list[NodeProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


async def test_a_message_from_node_a_to_an_actor_on_node_b_and_back(
    redis_server: RedisServer, processes: list[NodeProcess]
) -> None:
    b = NodeProcess(redis_server.url, "b", "--host", "room/on-b")
    processes.append(b)
    assert b.read() == {"ready": "b"}
    async with running(redis_server.url, "a") as a:
        await a.node.host(a.supervisor, echo("room/on-a", "a"))
        ref = a.node.registry.ref("room/on-b")
        with trio.fail_after(5):
            assert await ref.ask(Ping(1)) == Pong(1, "b")
            # B's actor asks A's actor while answering A: there and back, twice across.
            assert await ref.ask(Relay("room/on-a", 2)) == Pong(2, "a")
        assert await a.node.live_nodes() == ["a", "b"]


async def test_two_processes_racing_for_the_same_rooms_each_room_starts_once(
    redis_server: RedisServer, processes: list[NodeProcess]
) -> None:
    rooms = 200
    racers = [NodeProcess(redis_server.url, name, "--race", str(rooms)) for name in ("p", "q")]
    processes.extend(racers)
    for racer in racers:
        assert racer.read() == {"ready": racer.node_id}
    for racer in racers:
        racer.send("go")
    won = {racer.node_id: set(racer.read()["won"]) for racer in racers}  # type: ignore[call-overload]
    assert won["p"].isdisjoint(won["q"])
    assert won["p"] | won["q"] == {f"room/race-{n}" for n in range(rooms)}
    print("race won:", json.dumps({k: len(v) for k, v in won.items()}))
    async with running(redis_server.url, "judge") as judge:
        with trio.fail_after(10):
            for node_id, addresses in won.items():
                for address in sorted(addresses)[:20]:
                    assert (await judge.node.registry.ref(address).ask(Ping(0))).by == node_id


async def test_kill_9_of_a_room_s_node_its_room_is_taken_over_after_the_ttl(
    redis_server: RedisServer, processes: list[NodeProcess]
) -> None:
    b = NodeProcess(redis_server.url, "b", "--host", "room/r")
    processes.append(b)
    assert b.read() == {"ready": "b"}
    async with running(redis_server.url, "a") as a:
        ref = a.node.registry.ref("room/r")
        with trio.fail_after(5):
            assert (await ref.ask(Ping(1))).by == "b"
        b.kill()
        killed_at = trio.current_time()
        assert await a.node.placement.claim("room/r") == "b"  # not yet: b's key still lives
        with trio.fail_after(8):
            while "b" in await a.node.live_nodes():  # noqa: ASYNC110 (Redis' state)
                await trio.sleep(0.1)
            while await a.node.placement.claim("room/r") != "a":  # noqa: ASYNC110
                await trio.sleep(0.1)
        taken_after = trio.current_time() - killed_at
        print(f"room taken over {taken_after:.2f} s after kill -9")
        assert 3.0 < taken_after < 7.0
        await a.node.unhost("room/r")
        await a.node.host(a.supervisor, echo("room/r", "a"))
        with trio.fail_after(5):
            assert (await ref.ask(Ping(2))).by == "a"


async def test_what_was_sent_to_a_killed_node_reaches_its_room_where_the_room_starts_again(
    redis_server: RedisServer, processes: list[NodeProcess]
) -> None:
    b = NodeProcess(redis_server.url, "b", "--host", "room/r")
    processes.append(b)
    assert b.read() == {"ready": "b"}
    async with running(redis_server.url, "a") as a, trio.open_nursery() as nursery:
        ref = a.node.registry.ref("room/r")
        with trio.fail_after(5):
            assert (await ref.ask(Ping(1))).by == "b"  # a now knows b owns it
        b.kill()
        ref.tell(Note("sent after the kill"))  # both land in the dead node's inbox
        answers: list[Pong] = []

        async def ask_across_the_takeover() -> None:
            answers.append(await ref.ask(Ping(2), timeout=12))

        nursery.start_soon(ask_across_the_takeover)
        with trio.fail_after(8):
            while await a.node.placement.claim("room/r") != "a":  # noqa: ASYNC110 (Redis' state)
                await trio.sleep(0.1)
        await a.node.host(a.supervisor, echo("room/r", "a"))  # the room starts again on a
        with trio.fail_after(5):
            while not answers:  # noqa: ASYNC110 (the rescue sweeps every second)
                await trio.sleep(0.05)
        assert answers == [Pong(2, "a")]
        assert await ref.ask(Notes()) == ("sent after the kill",)  # in order, once
        assert a.node.rescue.rescued == 2
