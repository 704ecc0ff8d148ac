"""An area's public facts asked across nodes serve the next pages of the asking node for a moment;
an area on the asking node is always asked (`web.remote_areas`, issue 18)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest
import trio

from actors import addresses
from actors.messages import AreaPublic, DescribeArea, FindArea
from runtime import Actor, ChildSpec, Restart, handles
from tests.cluster.nodes import running
from tests.cluster.servers import RedisServer
from waitroom.clustered import message_types
from web import patient, remote_areas, security

FACTS = AreaPublic(7, "Clinic", "the-link", 1, "UTC", True, None, (), "", True)


class Host(Actor):
    """``areas`` on the asking node: every link is area 7."""

    @handles(FindArea)
    async def find(self, message: FindArea) -> str:
        return "area/7"


class Area(Actor):
    """``area/7``: answers with its facts, and counts the asks."""

    def __init__(self, asked: list[int], facts: list[AreaPublic]) -> None:
        super().__init__()
        self.asked = asked
        self.facts = facts

    @handles(DescribeArea)
    async def describe(self, message: DescribeArea) -> AreaPublic:
        self.asked.append(1)
        return self.facts[0]


async def test_facts_of_an_area_on_another_node_serve_the_next_pages_and_a_new_link_asks_again(
    redis_server: RedisServer,
) -> None:
    asked: list[int] = []
    facts = [FACTS]
    types = message_types()
    async with (
        running(redis_server.url, "a", types) as a,
        running(redis_server.url, "b", types) as b,
    ):
        for side in (a, b):  # a host on each node, as every node has (not placed)
            await side.supervisor.start_child(
                ChildSpec(str(addresses.AREAS), Host, Restart.PERMANENT)
            )
        await b.node.host(
            b.supervisor, ChildSpec("area/7", partial(Area, asked, facts), Restart.PERMANENT)
        )
        with trio.fail_after(5):
            for _ in range(3):  # a form, its submission, and another arrival's form
                assert await patient.find_area(a.node.registry, "the-link") == ("area/7", FACTS)
            assert len(asked) == 1

            # The link was replaced (through any node): what a kept is not trusted for it.
            facts[0] = replace(FACTS, slug="new-link")
            assert (await patient.find_area(a.node.registry, "new-link"))[1].slug == "new-link"
            assert len(asked) == 2

            remote_areas.remote_areas(a.node.registry).forget("area/7")  # a refused arrival
            await patient.find_area(a.node.registry, "new-link")
            assert len(asked) == 3

            # On its own node the area is asked each time: that costs nothing.
            for _ in range(2):
                await patient.find_area(b.node.registry, "new-link")
            assert len(asked) == 5
            with pytest.raises(security.WebError):
                await patient.find_area(a.node.registry, "no such link!")
