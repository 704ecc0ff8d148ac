"""Rendezvous hashing (``cluster.spread``): every node names the same home for an address, the
areas spread evenly, and a node that joins or leaves moves only its own share."""

from __future__ import annotations

from collections import Counter

import trio

from cluster.spread import Spread, home

ADDRESSES = [f"area/{n}" for n in range(1, 3001)]


def homes(nodes: list[str]) -> dict[str, str]:
    return {a: home(a, nodes) for a in ADDRESSES}


def test_the_home_depends_on_the_set_of_nodes_not_their_order() -> None:
    assert homes(["n1", "n2", "n3"]) == homes(["n3", "n1", "n2"])


def test_three_nodes_each_get_about_a_third() -> None:
    counts = Counter(homes(["n1", "n2", "n3"]).values())
    assert set(counts) == {"n1", "n2", "n3"}
    for count in counts.values():
        assert abs(count - 1000) < 100, counts


def test_a_node_joining_takes_only_addresses_from_the_others_to_itself() -> None:
    before, after = homes(["n1", "n2"]), homes(["n1", "n2", "n3"])
    moved = [a for a in ADDRESSES if before[a] != after[a]]
    assert all(after[a] == "n3" for a in moved)
    assert abs(len(moved) - 1000) < 100


def test_a_node_leaving_moves_only_its_own_addresses() -> None:
    before, after = homes(["n1", "n2", "n3"]), homes(["n1", "n3"])
    moved = [a for a in ADDRESSES if before[a] != after[a]]
    assert moved and all(before[a] == "n2" for a in moved)


async def test_a_spread_follows_the_live_nodes_and_always_counts_itself() -> None:
    live: list[str] = []

    async def read_live() -> list[str]:
        await trio.lowlevel.checkpoint()
        return list(live)

    spread = Spread("n1", lambda a: a.startswith("area/"), read_live)
    assert await spread.refresh() is False  # nobody else: still only itself
    assert spread.live == ("n1",)
    assert all(spread.is_home(a) for a in ADDRESSES[:50])
    live[:] = ["n1", "n2"]
    assert await spread.refresh() is True
    mine = [a for a in ADDRESSES if spread.is_home(a)]
    assert 0 < len(mine) < len(ADDRESSES)
    assert mine == [a for a in ADDRESSES if home(a, ["n1", "n2"]) == "n1"]
    assert spread.is_home("room/abc")  # not spread: wherever it is claimed
    live[:] = ["n2"]  # n1's own key lapsed for a moment: it still counts itself
    assert await spread.refresh() is False
    assert spread.live == ("n1", "n2")


async def test_a_kind_that_needs_a_trait_is_homed_only_on_nodes_that_offer_it() -> None:
    """Two releases side by side: on-demand queues are homed among the nodes whose release takes
    them over (``adopts``); areas, which every release takes, among every live node. Once the
    older node offers the trait too, the homes are those of every live node."""
    offers = {"n1": frozenset({"adopts"}), "n2": frozenset(), "n3": frozenset({"adopts"})}

    async def read_live() -> list[str]:
        await trio.lowlevel.checkpoint()
        return ["n1", "n2", "n3"]

    def needs(address: str) -> str | None:
        return "adopts" if address.startswith("ondemand/") else None

    spread = Spread("n1", lambda a: True, read_live, needs, lambda n: offers[n])
    assert await spread.refresh() is True
    queues = [f"ondemand/{n}" for n in range(1, 301)]
    assert {spread.home(q) for q in queues} == {"n1", "n3"}
    assert all(spread.home(q) == home(q, ["n1", "n3"]) for q in queues)
    assert "n2" in {spread.home(a) for a in ADDRESSES[:300]}  # areas: every node
    offers["n2"] = frozenset({"adopts"})  # n2 was upgraded
    assert await spread.refresh() is True
    assert all(spread.home(q) == home(q, ["n1", "n2", "n3"]) for q in queues)


async def test_a_node_that_lacks_the_trait_itself_homes_among_every_node() -> None:
    """A node that does not offer a trait (a build without it) does not ask it of the others."""

    async def read_live() -> list[str]:
        await trio.lowlevel.checkpoint()
        return ["n1", "n2"]

    spread = Spread(
        "n1",
        lambda a: True,
        read_live,
        lambda a: "adopts",
        lambda n: frozenset({"adopts"}) if n == "n2" else frozenset(),
    )
    await spread.refresh()
    assert {spread.home(f"ondemand/{n}") for n in range(1, 100)} == {"n1", "n2"}
