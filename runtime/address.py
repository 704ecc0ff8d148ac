"""Actor addresses: a kind and an id, spelled ``kind/id`` on the wire and in the registry.

An :class:`Address` is a ``str`` (so the registry's lookups and the wire format stay plain strings
on the hot path) that knows its parts. The kinds Waitroom uses, and their constructors, live in one
place above the runtime (``actors/addresses.py``); nothing else spells an address by hand.
"""

from __future__ import annotations

SEPARATOR = "/"
#: The kind of a cluster node's own addresses: ``node/<id>`` (its desk) and
#: ``node/<id>/<name>`` (the per-node actor ``name`` on that node, :func:`on_node`).
NODE_KIND = "node"


class Address(str):
    """``kind/id``: ``area/12``, ``room/AbC``, ``conn/7``; a fixed name (``directory``) has no id."""

    __slots__ = ()

    @classmethod
    def of(cls, kind: str, ident: object) -> Address:
        """The address of actor ``ident`` of ``kind``; ``kind`` must not contain the separator."""
        if not kind or SEPARATOR in kind:
            raise ValueError(f"bad address kind {kind!r}")
        return cls(f"{kind}{SEPARATOR}{ident}")

    @classmethod
    def named(cls, name: str) -> Address:
        """A fixed, well-known name (one actor of its kind per node): ``directory``, ``areas``."""
        return cls(name)

    @classmethod
    def parse(cls, text: str) -> Address:
        """Accept ``kind/id`` with both parts non-empty; raise ``ValueError`` for anything else."""
        kind, sep, ident = text.partition(SEPARATOR)
        if not sep or not kind or not ident:
            raise ValueError(f"not an address: {text!r}")
        return cls(text)

    @property
    def kind(self) -> str:
        """The part before the separator (the whole name for a fixed name)."""
        return self.partition(SEPARATOR)[0]

    @property
    def ident(self) -> str:
        """The part after the separator (empty for a fixed name)."""
        return self.partition(SEPARATOR)[2]

    def is_kind(self, kind: str) -> bool:
        return self.startswith(kind + SEPARATOR) and len(self) > len(kind) + 1


def on_node(node_id: str, name: str) -> Address:
    """The per-node actor ``name`` (``notices``, ``meetings``) of node ``node_id``.

    Every node runs its own copy of such an actor under the same name; this form names one
    node's copy from another node, so the transport carries it there (``node/<id>/<name>``) and
    that node's registry hands it to its local ``name``.
    """
    if not node_id or SEPARATOR in node_id or not name:
        raise ValueError(f"bad node {node_id!r} or name {name!r}")
    return Address(f"{NODE_KIND}{SEPARATOR}{node_id}{SEPARATOR}{name}")


def kind_of(address: str) -> str:
    """The kind of any address string, for metrics and logs."""
    return address.partition(SEPARATOR)[0]
