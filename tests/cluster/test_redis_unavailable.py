"""Redis paused (SIGSTOP) for a few seconds: placements fail closed, local actors keep running,
everything recovers by itself when Redis answers again, and nothing is placed twice."""

from __future__ import annotations

import pytest
import trio

from cluster import ClusterUnavailable
from cluster.connection import Health
from cluster.membership import NODE_TTL
from runtime import ActorNotFound, AskTimeout
from tests.cluster.echo import Note, Notes, Ping, Pong
from tests.cluster.nodes import echo, running
from tests.cluster.servers import RedisServer

#: Seconds Redis stays paused: longer than a command's timeout, shorter than a placement's TTL.
PAUSE = 3.0


async def until_up(health: Health) -> None:
    while not health.up:
        await health.changed.wait()


async def test_a_pause_fails_new_work_closed_and_recovers_by_itself(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await a.node.host(a.supervisor, echo("room/local", "a"))
        await b.node.host(b.supervisor, echo("room/far", "b"))
        local = a.node.registry.ref("room/local")
        far = a.node.registry.ref("room/far")
        with trio.fail_after(5):
            assert await far.ask(Ping(0)) == Pong(0, "b")
        redis_server.pause()
        try:
            paused_at = trio.current_time()
            with trio.fail_after(2.5), pytest.raises(ClusterUnavailable, match="place room/new"):
                await a.node.host(a.supervisor, echo("room/new", "a"))
            assert "room/new" not in a.node.registry
            assert not a.node.health.up
            # Known down now: new work is refused at once instead of waiting for a timeout.
            with trio.fail_after(0.1):
                with pytest.raises(ClusterUnavailable):
                    await a.node.host(a.supervisor, echo("room/new", "a"))
                with pytest.raises(ClusterUnavailable):
                    await far.ask(Ping(1))
                with pytest.raises(ClusterUnavailable):
                    far.tell(Note("never sent"))
            # The node's own actors never wait on Redis: ask them for the rest of the pause.
            slowest = 0.0
            n = 0
            while trio.current_time() - paused_at < PAUSE:
                started = trio.current_time()
                with trio.fail_after(0.5):
                    assert await local.ask(Ping(n)) == Pong(n, "a")
                slowest = max(slowest, trio.current_time() - started)
                n += 1
                await trio.sleep(0.005)  # paced, so the other tasks' timeouts run meanwhile
            print(f"local asks while Redis was paused: {n}, slowest {slowest * 1000:.1f} ms")
            assert n > 100 and slowest < 0.25, (n, slowest)
        finally:
            redis_server.resume()
        with trio.fail_after(5):
            await until_up(a.node.health)
            await until_up(b.node.health)
            assert await far.ask(Ping(2)) == Pong(2, "b")
            await a.node.host(a.supervisor, echo("room/new", "a"))
            assert (await b.node.registry.ref("room/new").ask(Ping(3))).by == "a"
        # What was placed before the pause stayed where it was; nothing was sent twice or late.
        assert "room/far" in b.node.registry and "room/local" in a.node.registry
        assert await b.node.placement.owner("room/far") == "b"
        assert await a.node.live_nodes() == ["a", "b"]
        with trio.fail_after(5):
            assert await far.ask(Notes()) == ()


async def test_a_node_that_starts_while_redis_is_paused_fails_with_a_clear_error(
    redis_server: RedisServer,
) -> None:
    redis_server.pause()
    try:
        with trio.fail_after(5), pytest.raises(ClusterUnavailable, match="cluster unavailable"):
            async with running(redis_server.url, "late"):
                raise AssertionError("joined a cluster whose Redis does not answer")
    finally:
        redis_server.resume()
    with trio.fail_after(5):
        async with running(redis_server.url, "late") as late:
            assert await late.node.live_nodes() == ["late"]


async def test_redis_restarted_without_its_data_the_nodes_set_again_what_they_hold(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await a.node.host(a.supervisor, echo("room/local", "a"))
        await b.node.host(b.supervisor, echo("room/far", "b"))
        far = a.node.registry.ref("room/far")
        with trio.fail_after(5):
            assert await far.ask(Ping(0)) == Pong(0, "b")
        redis_server.restart()  # every key, stream and group is gone
        restarted_at = trio.current_time()
        with trio.fail_after(8):
            while True:
                try:
                    assert await far.ask(Ping(1), timeout=0.5) == Pong(1, "b")
                    break
                except (ClusterUnavailable, AskTimeout, ActorNotFound):
                    await trio.sleep(0.1)
            while await a.node.placement.owners(["room/far", "room/local"]) != {  # noqa: ASYNC110
                "room/far": "b",
                "room/local": "a",
            }:
                await trio.sleep(0.1)
            # Liveness keys are set again by their own loop, which may come a refresh later.
            while await a.node.live_nodes() != ["a", "b"]:  # noqa: ASYNC110
                await trio.sleep(0.1)
        print(f"crossing again {trio.current_time() - restarted_at:.2f} s after the restart")
        with trio.fail_after(5):
            assert await b.node.registry.ref("room/local").ask(Ping(2)) == Pong(2, "a")


async def test_a_pause_longer_than_the_ttls_every_node_keeps_what_it_ran(
    redis_server: RedisServer,
) -> None:
    """Redis away for longer than liveness and placements live: when it answers again, each node
    joins again and re-takes its own addresses (nobody else could take them meanwhile)."""
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await a.node.host(a.supervisor, echo("room/on-a", "a"))
        await b.node.host(b.supervisor, echo("room/on-b", "b"))
        redis_server.pause()
        try:
            paused_at = trio.current_time()
            local = a.node.registry.ref("room/on-a")
            while trio.current_time() - paused_at < NODE_TTL + 1:  # every key has expired
                with trio.fail_after(0.5):
                    assert (await local.ask(Ping(0))).by == "a"
                await trio.sleep(0.05)
        finally:
            redis_server.resume()
        with trio.fail_after(5):
            while await a.node.placement.owners(["room/on-a", "room/on-b"]) != {  # noqa: ASYNC110
                "room/on-a": "a",
                "room/on-b": "b",
            }:
                await trio.sleep(0.05)
            assert await a.node.registry.ref("room/on-b").ask(Ping(1)) == Pong(1, "b")
            assert await b.node.registry.ref("room/on-a").ask(Ping(2)) == Pong(2, "a")
        assert await a.node.live_nodes() == ["a", "b"]
        assert "room/on-a" in a.node.registry and "room/on-b" in b.node.registry


async def test_redis_out_of_memory_refuses_writes_and_nothing_crashes(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await b.node.host(b.supervisor, echo("room/far", "b"))
        far = a.node.registry.ref("room/far")
        with trio.fail_after(5):
            assert await far.ask(Ping(0)) == Pong(0, "b")
        admin = a.node.client
        await admin.config_set({"maxmemory-policy": "noeviction", "maxmemory": "1"})
        try:
            with trio.fail_after(2), pytest.raises(ClusterUnavailable, match="OOM"):
                await a.node.host(a.supervisor, echo("room/new", "a"))
            assert "room/new" not in a.node.registry
        finally:
            await admin.config_set({"maxmemory": "0"})
        with trio.fail_after(5):
            await until_up(a.node.health)
            await a.node.host(a.supervisor, echo("room/new", "a"))
            while True:  # the first send may still find Redis counted as down
                try:
                    assert await far.ask(Ping(1), timeout=1) == Pong(1, "b")
                    break
                except ClusterUnavailable:
                    await trio.sleep(0.05)
