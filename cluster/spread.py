"""Which live node should host an address: rendezvous hashing over the membership.

Placement (``cluster.placement``) makes sure an address runs on exactly one node, but not on
*which*: the first node to claim it wins, so a node started first would own every area and the
others would only forward to it. A :class:`Spread` names a *home* for each address it spreads:
the live node with the highest hash of (node, address). Every node computes the same home from
the same membership, with no shared table; when a node joins, only the addresses whose home it
becomes move (about 1/n of them), and when one dies only its own move.

The view of the live nodes is read from Redis by :meth:`Spread.refresh` (the server does it every
couple of seconds); between refreshes nodes may briefly disagree, which costs a nudge that is
ignored, never a second copy: placement still decides who runs an address.

**Two releases side by side.** A kind of address that a newer release spreads may be one an
older node cannot take over (it lacks the message that hands it over). Such a kind *needs* a
trait (``cluster.membership``), and its home is chosen among the live nodes that offer it; once
every node is upgraded, that is every node, and the homes are what they would have been.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from hashlib import blake2b

#: Homes remembered per view of the membership (cleared when the view changes).
HOME_CACHE_SIZE = 100_000


def rank(node: str, address: str) -> int:
    """The weight of ``node`` for ``address`` (the same on every node and every Python run)."""
    digest = blake2b(f"{node}\x00{address}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def home(address: str, nodes: Iterable[str]) -> str:
    """The node of ``nodes`` that should host ``address`` (a tie, never seen in practice, goes
    to the smallest id, so every node still agrees)."""
    return max(sorted(nodes), key=lambda node: rank(node, address))


class Spread:
    """This node's view of the live nodes, and the home of each spread address in that view.

    ``spreads(address)`` says which addresses are spread (others run wherever they are first
    claimed); ``read_live()`` reads the live node ids (``Membership.live_nodes``). This node
    always counts as live in its own view, so a node whose liveness key lapsed for a moment
    does not send its addresses away. ``needs(address)`` names the trait a home of ``address``
    must offer (None: any node), ``traits_of(node)`` what a node offers, as last read
    (``Membership.traits_of``); a trait this node needs and lacks itself is not asked of others.
    """

    def __init__(
        self,
        node_id: str,
        spreads: Callable[[str], bool],
        read_live: Callable[[], Awaitable[list[str]]],
        needs: Callable[[str], str | None] = lambda address: None,
        traits_of: Callable[[str], frozenset[str]] = lambda node: frozenset(),
    ) -> None:
        self.node_id = node_id
        self.spreads = spreads
        self._read_live = read_live
        self._needs = needs
        self._traits_of = traits_of
        self.live: tuple[str, ...] = (node_id,)
        self.traits: Mapping[str, frozenset[str]] = {node_id: traits_of(node_id)}
        self._homes: dict[str, str] = {}

    async def refresh(self) -> bool:
        """Read the live nodes (and what each offers) again; whether the view changed."""
        live = tuple(sorted(set(await self._read_live()) | {self.node_id}))
        traits = {node: self._traits_of(node) for node in live}
        if live == self.live and traits == self.traits:
            return False
        self.live = live
        self.traits = traits
        self._homes.clear()
        return True

    def home(self, address: str) -> str:
        """The live node that should host ``address`` in this view."""
        found = self._homes.get(address)
        if found is None:
            if len(self._homes) >= HOME_CACHE_SIZE:
                self._homes.clear()
            found = self._homes[address] = home(address, self._candidates(address))
        return found

    def _candidates(self, address: str) -> tuple[str, ...]:
        need = self._needs(address)
        if need is None or need not in self.traits.get(self.node_id, frozenset()):
            return self.live
        return tuple(n for n in self.live if need in self.traits.get(n, frozenset()))

    def is_home(self, address: str) -> bool:
        """Whether this node should host ``address`` (always, for an address not spread)."""
        return not self.spreads(address) or self.home(address) == self.node_id
