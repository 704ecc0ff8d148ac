"""A per-node actor addressed on a given node (``node/<id>/<name>``) and the registry's peers.

Several actors run once per node under one name; ``runtime.address.on_node`` names one node's
copy. The registry of that node hands it to its local actor; any other registry leaves it to its
remote transport (which carries it to that node); a node alone has no peers and pays nothing.
"""

from __future__ import annotations

import pytest

from runtime import ActorNotFound, Registry
from runtime.address import on_node
from runtime.kernel import Envelope, Mailbox


class Carried:
    """A remote transport that only records what it was given."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def owns(self, address: str) -> bool:
        return address.startswith("node/b/")

    def deliver(self, address: str, envelope: Envelope) -> None:
        self.sent.append(address)

    def reply(self, address: str, outcome: object) -> None:
        raise AssertionError("no replies here")


def test_this_node_s_copy_gets_it_and_another_node_s_goes_to_the_transport() -> None:
    carried = Carried()
    registry = Registry(carried, node="a", peers=lambda: ("b", "a", "c"))
    notices = Mailbox("notices")
    registry.register(notices)

    registry.deliver(on_node("a", "notices"), Envelope("here"))
    registry.deliver(on_node("b", "notices"), Envelope("there"))

    envelope = notices.get_nowait()
    assert envelope is not None and envelope.message == "here"
    assert carried.sent == ["node/b/notices"]
    assert registry.peers() == ("b", "c")  # sorted, this node left out
    with pytest.raises(ActorNotFound):  # no such actor on this node: refused, not carried
        registry.deliver(on_node("a", "nobody"), Envelope("lost"))
    with pytest.raises(ActorNotFound):
        registry.deliver("node/a/", Envelope("lost"))


def test_one_node_alone_has_no_peers_and_no_node_names() -> None:
    registry = Registry()
    registry.register(Mailbox("notices"))
    assert registry.peers() == ()
    with pytest.raises(ActorNotFound):
        registry.deliver("node//notices", Envelope("lost"))


@pytest.mark.parametrize(("node", "name"), [("", "notices"), ("a/b", "notices"), ("a", "")])
def test_a_bad_node_or_name_is_refused(node: str, name: str) -> None:
    with pytest.raises(ValueError):
        on_node(node, name)
