"""Placement on a real Redis: one owner per address, idempotent claims, release, loss and takeover."""

from __future__ import annotations

import pytest
import trio

from cluster.connection import Health, open_client
from cluster.keys import Keys
from cluster.placement import PLACE_TTL, Placement, PlacementTaken
from tests.cluster.servers import RedisServer

KEYS = Keys("t")


async def test_one_owner_a_claim_repeated_is_confirmed_and_a_release_frees_it(
    redis_server: RedisServer,
) -> None:
    async with open_client(redis_server.url) as client:
        a = Placement(client, KEYS, Health(), "a")
        b = Placement(client, KEYS, Health(), "b")
        assert await a.claim("room/1") == "a"
        assert await a.claim("room/1") == "a"  # a claim whose answer was lost can be repeated
        assert await b.claim("room/1") == "a"
        with pytest.raises(PlacementTaken, match="node a"):
            await b.acquire("room/1")
        assert 4000 < await client.pttl(KEYS.place("room/1")) <= PLACE_TTL * 1000
        assert await b.owners(["room/1", "room/2"]) == {"room/1": "a", "room/2": None}
        await b.release("room/1")  # not b's: nothing happens
        assert await a.owner("room/1") == "a"
        await a.release("room/1")
        assert await a.owner("room/1") is None and a.held == set()
        assert await b.claim("room/1") == "b"


async def test_refresh_extends_what_is_still_ours_and_reports_what_was_taken_over(
    redis_server: RedisServer,
) -> None:
    async with open_client(redis_server.url) as client:
        a = Placement(client, KEYS, Health(), "a", ttl=0.2)
        b = Placement(client, KEYS, Health(), "b")
        for n in range(3):
            await a.acquire(f"room/{n}")
        await client.delete([KEYS.place("room/1")])  # expired while a was away ...
        await b.acquire("room/1")  # ... and taken over
        await client.delete([KEYS.place("room/2")])  # expired, nobody took it: a keeps it
        assert await a.refresh() == ["room/1"]
        assert a.held == {"room/0", "room/2"}
        assert await client.pttl(KEYS.place("room/0")) > 0
        assert await a.owners(["room/1", "room/2"]) == {"room/1": "b", "room/2": "a"}


async def test_the_owner_s_key_expires_and_another_node_takes_the_address_over(
    redis_server: RedisServer,
) -> None:
    async with open_client(redis_server.url) as client:
        dying = Placement(client, KEYS, Health(), "dying", ttl=0.1)
        heir = Placement(client, KEYS, Health(), "heir")
        await dying.acquire("room/x")
        assert await heir.claim("room/x") == "dying"
        with trio.fail_after(2):
            # No refresh: the key expires by itself (Redis' state, no event to wait on).
            while await heir.claim("room/x") != "heir":  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert await dying.refresh() == ["room/x"]


async def test_two_nodes_starting_the_same_rooms_at_once_exactly_one_wins_each(
    redis_server: RedisServer,
) -> None:
    """Two clients on their own connections race for 300 addresses, all claims in flight at once."""
    async with open_client(redis_server.url) as one, open_client(redis_server.url) as two:
        a = Placement(one, KEYS, Health(), "a")
        b = Placement(two, KEYS, Health(), "b")
        results: dict[str, list[str]] = {}

        async def race(placement: Placement, address: str) -> None:
            results.setdefault(address, []).append(await placement.claim(address))

        async with trio.open_nursery() as nursery:
            for n in range(300):
                nursery.start_soon(race, a, f"room/{n}")
                nursery.start_soon(race, b, f"room/{n}")
        wins = {"a": 0, "b": 0}
        for address, owners in results.items():
            assert len(owners) == 2 and owners[0] == owners[1], (address, owners)
            wins[owners[0]] += 1
        assert a.held.isdisjoint(b.held) and len(a.held) + len(b.held) == 300
        assert wins == {"a": len(a.held), "b": len(b.held)}
