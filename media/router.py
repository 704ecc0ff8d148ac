"""A call's router: which publisher fills which slot of which subscriber, sans-IO.

Slots are assigned lowest-free-first in join order and kept while both peers stay, so a
participant does not jump between tiles when someone else joins or leaves.
"""

from __future__ import annotations

from media.forward import Consumer, Producer
from media.transport import Transport


class Router:
    """One call: its transports (by peer id) and the fan-out from producers to consumers."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.transports: dict[str, Transport] = {}

    def add(self, transport: Transport, now: float) -> tuple[set[str], list[Consumer]]:
        """Join a transport; returns (peers whose slot map changed, consumers newly attached)."""
        self.transports[transport.peer_id] = transport
        return self.assign(now)

    def remove(self, peer_id: str, now: float) -> set[str]:
        """Leave: free the slots the peer filled and detach its own consumers."""
        transport = self.transports.pop(peer_id, None)
        changed: set[str] = set()
        if transport is None:
            return changed
        for consumer in transport.consumers.values():
            consumer.detach(now)
        for producer in transport.producers.values():
            for consumer in list(producer.consumers):
                consumer.detach(now)
        for other in self.transports.values():
            for slot, owner in other.slot_owner.items():
                if owner == peer_id:
                    other.slot_owner[slot] = None
                    changed.add(other.peer_id)
        new_changed, _ = self.assign(now)
        self.refresh()
        return changed | new_changed

    def assign(self, now: float) -> tuple[set[str], list[Consumer]]:
        """Give every publisher a slot at every other peer that has one free."""
        changed: set[str] = set()
        attached: list[Consumer] = []
        for sub in self.transports.values():
            shown = set(sub.slot_owner.values())
            for pub in self.transports.values():
                if pub is sub or not pub.publish or pub.peer_id in shown:
                    continue
                free = [s for s in sorted(sub.slot_owner) if sub.slot_owner[s] is None]
                if not free:
                    break
                slot = free[0]
                sub.slot_owner[slot] = pub.peer_id
                shown.add(pub.peer_id)
                changed.add(sub.peer_id)
                for kind, consumer in sub.slots[slot].items():
                    producer = pub.publish.get(kind)
                    if producer is not None:
                        consumer.attach(producer, now)
                        attached.append(consumer)
        self.refresh()
        return changed, attached

    def refresh(self) -> None:
        """Rebuild every producer's fan-out tuple after any state change (cheap: <= 6 peers)."""
        for pub in self.transports.values():
            for producer in pub.producers.values():
                producer.targets = self._targets(pub, producer)

    @staticmethod
    def _targets(pub: Transport, producer: Producer) -> tuple[Consumer, ...]:
        if not pub.publishing:
            return ()
        out = []
        for consumer in producer.consumers:
            sub = consumer.transport
            if sub.can_receive and sub.srtp is not None and sub.addr is not None:
                consumer.protect = sub.srtp.tx.protect
                consumer.addr = sub.addr
                out.append(consumer)
        return tuple(out)

    def slot_map(self, peer_id: str) -> dict[int, str]:
        transport = self.transports.get(peer_id)
        if transport is None:
            return {}
        return {s: owner for s, owner in sorted(transport.slot_owner.items()) if owner is not None}
