"""Several Waitroom nodes as one system: membership, placement and messages through Redis/Valkey.

The runtime (``runtime/``) resolves every address through its registry and consults a
:class:`~runtime.registry.RemoteTransport` for names it does not host; this package is that
transport and what it needs, on Redis (or Valkey) through coredis:

* ``membership``: each node's liveness key, refreshed every 1.5 s and gone about 5 s after the
  node stops refreshing it, and the list of live nodes;
* ``placement``: which node hosts an address (``SET NX PX``), refreshed while the actor runs,
  released on stop, taken over when its owner stops refreshing;
* ``codec``: the typed messages that may cross, as msgpack; anything else is refused;
* ``transport``: tells, asks and replies across nodes through one Redis stream per node;
* ``rescue``: what was left in a dead node's stream goes to the addresses' new owners;
* ``node``: one node's pieces opened and closed together.

It stands on ``runtime`` only (a contract in pyproject.toml): what crosses is registered by the
composition root, so no domain module is imported here.
"""

from cluster.codec import MessageTypes, UnknownMessageType
from cluster.connection import ClusterUnavailable
from cluster.node import Node, NodeRegistry, PlacingSupervisor, open_node
from cluster.placement import PlacementTaken

__all__ = [
    "ClusterUnavailable",
    "MessageTypes",
    "Node",
    "NodeRegistry",
    "PlacementTaken",
    "PlacingSupervisor",
    "UnknownMessageType",
    "open_node",
]
