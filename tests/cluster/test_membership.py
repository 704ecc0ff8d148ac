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


async def test_the_nodes_are_listed_without_walking_the_keyspace(redis_server: RedisServer) -> None:
    """Listing the live nodes reads the set of nodes and their keys, never ``SCAN`` (a cluster
    holds a key per placed room, thousands of them); a dead node stays known, not live."""
    async with open_client(redis_server.url) as client:
        keys = Keys("t")
        a = Membership(client, keys, Health(), "a")
        b = Membership(client, keys, Health(), "b")
        await a.join()
        await b.join()
        for n in range(2000):
            await client.set(keys.place(f"room/{n}"), b"a")
        before = await client.info("commandstats")
        assert await a.live_nodes() == ["a", "b"]
        after = await client.info("commandstats")
        assert "cmdstat_scan" not in after or after["cmdstat_scan"] == before.get("cmdstat_scan")
        await client.delete([keys.node("b")])  # b died: its key is gone
        assert await a.live_nodes() == ["a"]
        assert await a.known_nodes() == {"a": True, "b": False}
        await client.delete([keys.nodes()])  # Redis lost the set: the next refresh lists a again
        assert await a.refresh() is True
        assert await a.known_nodes() == {"a": True}


async def test_each_node_reads_what_the_others_offer_and_an_older_one_offers_nothing(
    redis_server: RedisServer,
) -> None:
    """Two releases side by side: a node's traits ride on its liveness key (refreshed with it);
    a node of an older release, whose key holds only its token, offers none."""
    async with open_client(redis_server.url) as client:
        keys = Keys("t")
        new = Membership(client, keys, Health(), "new", frozenset({"adopts:x", "adopts:y"}))
        old = Membership(client, keys, Health(), "old")
        await new.join()
        await old.join()
        assert new.traits_of("new") == frozenset({"adopts:x", "adopts:y"})  # before any read
        assert old.traits_of("new") == frozenset()  # not read yet
        await old.live_nodes()
        assert old.traits_of("new") == frozenset({"adopts:x", "adopts:y"})
        await new.live_nodes()
        assert new.traits_of("old") == frozenset()
        assert await new.refresh() is True  # the refresh keeps the token it joined with
        assert (await client.get(keys.node("new"))) == new.token.encode()
        await new.leave()
        await old.live_nodes()
        assert old.traits_of("new") == frozenset()  # gone: nothing known of it
