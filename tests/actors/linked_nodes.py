"""Several registries in one process that reach each other as cluster nodes do, for actor tests.

Each registry is a node: ``peers()`` are the other live ones, ``node/<id>/<name>`` and
``reply/<id>/<n>`` go to node ``id``, and any other address goes to the node that hosts it
(as placement would find it). Messages are handed over as they are, in order, with no Redis and
no codec: what crosses the real transport is checked by ``tests/cluster/test_message_types.py``
and the two-node tests. A node taken out with :meth:`Linked.kill` is no peer any more and
nothing reaches it, as after ``kill -9`` once its liveness key expired.
"""

from __future__ import annotations

from runtime import Registry
from runtime.address import NODE_KIND, SEPARATOR
from runtime.kernel import Envelope


class Linked:
    """The nodes, by id; :meth:`node` makes one."""

    def __init__(self) -> None:
        self.registries: dict[str, Registry] = {}

    def node(self, node_id: str) -> Registry:
        registry = Registry(
            _Side(self, node_id), node=node_id, peers=lambda: tuple(self.registries)
        )
        self.registries[node_id] = registry
        return registry

    def kill(self, node_id: str) -> None:
        del self.registries[node_id]

    def target(self, address: str, asker: str) -> Registry | None:
        """The live node other than ``asker`` that ``address`` goes to, if any."""
        kind, _, rest = address.partition(SEPARATOR)
        if kind in (NODE_KIND, "reply"):
            node = rest.partition(SEPARATOR)[0]
            return self.registries.get(node) if node != asker else None
        return next(
            (r for n, r in self.registries.items() if n != asker and address in r),
            None,
        )


class _Side:
    """One node's view of the others: its registry's remote transport."""

    def __init__(self, links: Linked, node_id: str) -> None:
        self.links = links
        self.node_id = node_id

    def owns(self, address: str) -> bool:
        return self.links.target(address, self.node_id) is not None

    def deliver(self, address: str, envelope: Envelope) -> None:
        registry = self.links.target(address, self.node_id)
        assert registry is not None
        registry.deliver(address, envelope)

    def reply(self, address: str, outcome: object) -> None:
        registry = self.links.target(address, self.node_id)
        if registry is not None:
            registry.reply(address, outcome)
