"""Which addresses a cluster node places, which name their node, and the connections' spelling."""

from __future__ import annotations

import pytest

from actors import addresses
from gateway import connection
from gateway.connection import ClientSession, Limits
from runtime import Registry
from waitroom.clustered import located, placed


def test_the_per_entity_kinds_are_placed_and_the_per_node_actors_are_not() -> None:
    for address in (
        addresses.area(3),
        addresses.room("AbC"),
        addresses.ondemand(2),
        addresses.group_breakouts(9),
    ):
        assert placed(address), address
    per_node: tuple[str, ...] = (
        addresses.DIRECTORY,
        addresses.SIGN_IN,
        addresses.ROOMS,
        addresses.AREAS,
        addresses.GROUP,
        addresses.CONSULT,
        addresses.SETUP,
        addresses.ECHO,
        addresses.conn(4),
        addresses.call("x1"),
        "room/",
        "reply/a/1",
    )
    for name in per_node:
        assert not placed(name), name


def test_a_connection_names_its_node_and_nothing_else_does() -> None:
    assert located(addresses.conn("a-17")) == "a"
    assert located(addresses.conn("node-2-5")) == "node-2"  # ids may have dashes
    assert located(addresses.conn(17)) is None  # a one-node server's connection
    assert located(addresses.conn("a-")) is None
    assert located(addresses.room("a-1")) is None
    # A node's desk, and one node's copy of a per-node actor, name that node.
    assert located(addresses.node_desk("b")) == "b"
    assert located(addresses.on_node("node-2", addresses.NOTICES)) == "node-2"
    assert not placed(addresses.on_node("b", addresses.MEETINGS))


def session(registry: Registry) -> ClientSession:
    async def write(frame: bytes) -> None:
        raise AssertionError("nothing is written here")

    return ClientSession(registry, None, write, None, "127.0.0.1", Limits())  # type: ignore[arg-type]


def test_connections_are_spelled_with_their_node_only_when_clustered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_node = session(Registry()).address
    assert one_node.startswith("conn/") and one_node[5:].isdigit()
    monkeypatch.setattr(connection, "NODE_ID", "b")
    clustered = session(Registry()).address
    assert located(clustered) == "b"
    assert int(clustered.rpartition("-")[2]) > int(one_node[5:])
