"""A call's router: which publisher fills which slot of which subscriber, sans-IO.

Who is forwarded to whom is `media.selection`'s decision (everyone in a small call; last-N video
and loudest-k audio in a large one, in stable slots). The router applies it: it points each slot
line's consumer at the chosen publisher's producer, or at nothing, and rebuilds the fan-out tuples
the hot path walks. A slot keeps its publisher while it stays selected, so tiles do not jump.
"""

from __future__ import annotations

from media.forward import KEEP_HEIGHT, Consumer, Producer
from media.selection import Selection, SelectionConfig, Slots, View
from media.transport import Transport


class Router:
    """One call: its transports (by peer id), its selection and the fan-out to consumers."""

    def __init__(self, call_id: str, selection: SelectionConfig | None = None) -> None:
        self.call_id = call_id
        self.transports: dict[str, Transport] = {}
        self.selection = Selection(selection)

    def add(self, transport: Transport, now: float) -> tuple[set[str], list[Consumer]]:
        """Join a transport; returns (peers whose slot map changed, consumers newly attached)."""
        peer = transport.peer_id
        self.transports[peer] = transport
        lines = transport.slots.values()
        self.selection.add(
            peer,
            video_slots=sum(1 for c in lines if "video" in c),
            audio_slots=sum(1 for c in lines if "audio" in c),
            audio="audio" in transport.publish,
            video="video" in transport.publish,
        )
        return self.assign(now)

    def remove(self, peer_id: str, now: float) -> set[str]:
        """Leave: free the slots the peer filled and detach its own consumers."""
        transport = self.transports.pop(peer_id, None)
        if transport is None:
            return set()
        for consumer in transport.consumers.values():
            consumer.detach(now)
        for producer in transport.producers.values():
            for consumer in list(producer.consumers):
                consumer.detach(now)
        self.selection.remove(peer_id)
        changed, _ = self.assign(now)
        return changed

    def set_view(self, peer_id: str, view: View, now: float) -> tuple[set[str], list[Consumer]]:
        """A subscriber's page says what it shows; re-select if that changed anything."""
        if not self.selection.set_view(peer_id, view):
            return set(), []
        return self.assign(now)

    def speaker(self, peer_id: str, now: float) -> tuple[set[str], list[Consumer]]:
        """The dominant speaker changed: it moves to the front of everyone's recent speakers."""
        self.selection.speaker(peer_id)
        return self.assign(now)

    def activity(self, activity: dict[str, int], now: float) -> tuple[set[str], list[Consumer]]:
        """Recent speech activity per publisher: the loudest few may change."""
        self.selection.set_activity(activity)
        return self.assign(now)

    def assign(self, now: float) -> tuple[set[str], list[Consumer]]:
        """Apply the selection to every slot line; returns (changed peers, attached consumers)."""
        changed = self.selection.assign()
        attached: list[Consumer] = []
        transports = self.transports
        selection = self.selection
        for sub_id in changed:
            sub = transports.get(sub_id)
            if sub is None:
                continue
            slots = selection.slots(sub_id)
            for slot, lines in sub.slots.items():
                for kind, consumer in lines.items():
                    owner = (slots.video if kind == "video" else slots.audio).get(slot)
                    pub = transports.get(owner) if owner is not None else None
                    producer = pub.publish.get(kind) if pub is not None else None
                    if consumer.producer is producer:
                        continue
                    if producer is None:
                        consumer.detach(now)
                    else:
                        assert owner is not None
                        height = selection.wanted_height(sub_id, owner) if kind == "video" else None
                        consumer.attach(producer, now, height if kind == "video" else KEEP_HEIGHT)
                        attached.append(consumer)
                sub.slot_owner[slot] = (slots.video if "video" in lines else slots.audio).get(slot)
        self.refresh()
        return changed, attached

    def refresh(self) -> None:
        """Rebuild every producer's fan-out tuple after any state change (a producer nobody
        selected has no consumers, so its packets go nowhere)."""
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

    def slot_maps(self, peer_id: str) -> Slots:
        """Who fills which video slot and which audio slot of `peer_id`."""
        if peer_id not in self.transports:
            return Slots()
        return self.selection.slots(peer_id)

    def slot_map(self, peer_id: str) -> dict[int, str]:
        """Slot index -> the publisher whose video fills it (its audio, for an audio-only slot)."""
        transport = self.transports.get(peer_id)
        if transport is None:
            return {}
        return {s: owner for s, owner in sorted(transport.slot_owner.items()) if owner is not None}

    def unwanted_video(self) -> set[str]:
        """Video publishers of this call that no subscriber receives (their layers can pause)."""
        return self.selection.unwanted_video()
