"""The Redis key names of one cluster, in one place, so no module spells a key by hand.

Every key starts with the cluster's prefix (``waitroom`` unless an operator runs two clusters on
one Redis), so a look at the keyspace shows one cluster at a time. Nothing on a regular path
scans the keyspace (it holds a key per placed room): the nodes are listed in one set.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "waitroom"

#: The consumer group every node reads its own inbox stream with (one consumer: the node).
INBOX_GROUP = "deliver"


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def node(self, node_id: str) -> str:
        """A node's liveness key: present while the node refreshes it."""
        return f"{self.prefix}:node:{node_id}"

    def nodes(self) -> str:
        """The set of every node id that joined (live or not): the live ones are those whose
        liveness key exists, the others may have an inbox left to rescue."""
        return f"{self.prefix}:nodes"

    def place(self, address: str) -> str:
        """Who hosts ``address``: the owning node's id, with a TTL its owner keeps refreshing."""
        return f"{self.prefix}:place:{address}"

    def address_of_place(self, key: str) -> str:
        return key.removeprefix(f"{self.prefix}:place:")

    def inbox(self, node_id: str) -> str:
        """The stream of messages and replies addressed to one node."""
        return f"{self.prefix}:inbox:{node_id}"
