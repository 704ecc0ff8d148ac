"""Node liveness on a real Redis: a key per node with a TTL, refreshed by its owner, listed by all."""

from __future__ import annotations

import pytest
import trio

from cluster.connection import Health, open_client
from cluster.keys import Keys
from cluster.membership import NODE_TTL, REFRESH_EVERY, Membership, NodeIdTaken
from tests.cluster.servers import RedisServer


async def test_nodes_join_are_listed_refresh_and_leave(redis_server: RedisServer) -> None:
    assert 1.0 <= REFRESH_EVERY <= 2.0 and NODE_TTL == 5.0
    async with open_client(redis_server.url) as client:
        keys = Keys("t")
        a = Membership(client, keys, Health(), "a")
        b = Membership(client, keys, Health(), "b")
        await a.join()
        await b.join()
        assert await a.live_nodes() == ["a", "b"]
        ttl = await client.pttl(keys.node("a"))
        assert 4000 < ttl <= 5000
        assert await a.refresh() is True
        with pytest.raises(NodeIdTaken):
            await Membership(client, keys, Health(), "a").join()
        await b.leave()
        assert await a.live_nodes() == ["a"]
        assert not await a.is_live("b")


async def test_a_node_that_stops_refreshing_drops_out_and_its_id_can_be_taken(
    redis_server: RedisServer,
) -> None:
    async with open_client(redis_server.url) as client:
        keys = Keys("t")
        dead = Membership(client, keys, Health(), "dead")
        await dead.join()
        await client.pexpire(keys.node("dead"), 50)  # as if its last refresh was ~5 s ago
        with trio.fail_after(2):
            while await dead.is_live("dead"):  # noqa: ASYNC110 (Redis' state, no event to wait on)
                await trio.sleep(0.01)
        successor = Membership(client, keys, Health(), "dead")
        await successor.join()
        with pytest.raises(NodeIdTaken):  # the old process comes back: it may not steal the id
            await dead.refresh()


async def test_a_node_away_longer_than_the_ttl_joins_again_on_its_next_refresh(
    redis_server: RedisServer,
) -> None:
    async with open_client(redis_server.url) as client:
        keys = Keys("t")
        node = Membership(client, keys, Health(), "n")
        await node.join()
        await client.delete([keys.node("n")])
        assert await node.refresh() is False
        assert await node.live_nodes() == ["n"]
        assert await node.refresh() is True
