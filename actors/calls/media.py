"""A call's side of media signalling: the media plane behind a small port, keyed by the call's id.

The call actor never waits for the media plane inside a handler: answering an offer can take the
media plane up to seconds (a worker process, a placement), and 60 people joining a group call must
not queue behind one another's offers. So an offer is answered in a task of the call's own
(:meth:`Signalling.answer`), and the outcome comes back to the actor as a typed message,
:class:`OfferAnswered`, handled in the mailbox like any other. Offers of one peer stay in order
(a re-offer replaces the transport, so it must not overtake the first); different peers' offers
run side by side. Everything else the port offers is synchronous and cheap.

What the media plane reports (``media.events``: a peer connected or closed, its slots changed,
the call's dominant speaker changed, which simulcast layers of a publisher are wanted) reaches the call as messages at ``call/<call id>``, sent by
the port's ``on_event`` callback (``waitroom.server``), never through this port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import trio

from runtime.kernel import Pending

#: Longest an offer may take: the media pool's own bounds (placing the call on a worker, then
#: asking it) are 10 s each; beyond that the peer is refused instead of left waiting.
OFFER_TIMEOUT = 20.0


class MediaPort(Protocol):
    """What a call needs of the media plane (``media.Worker`` and ``media.MediaPool`` satisfy it)."""

    async def open_peer(self, call_id: str, peer_id: str, offer_sdp: str) -> str: ...

    def close_peer(self, call_id: str, peer_id: str) -> None: ...

    def close_call(self, call_id: str) -> None: ...

    def set_receiving(self, call_id: str, peer_id: str, on: bool) -> None: ...

    def set_publishing(self, call_id: str, peer_id: str, on: bool) -> None: ...

    def slots(self, call_id: str, peer_id: str) -> dict[int, str]: ...

    def audio_slots(self, call_id: str, peer_id: str) -> dict[int, str]: ...

    def set_view(
        self, call_id: str, peer_id: str, shown: dict[str, int], pinned: list[str]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class OfferAnswered:
    """Told by a call's offer task to the call: the media plane's answer (or why there is none).

    ``pending`` is the deferred reply of the client's ``media.offer``; the call answers it once it
    has checked that the person is still there and gated their media.
    """

    pending: Pending[object]
    conn: str
    peer_id: str
    sdp: str | None = field(repr=False)
    error: str | None = None


class Signalling:
    """The media plane as one call sees it: every operation is about this call's id."""

    __slots__ = ("_order", "call_id", "port")

    def __init__(self, port: MediaPort | None, call_id: str) -> None:
        self.port = port
        self.call_id = call_id
        #: One lock per peer with an offer in flight, so a peer's offers are answered in order.
        self._order: dict[str, trio.Lock] = {}

    @property
    def available(self) -> bool:
        return self.port is not None

    async def answer(self, peer_id: str, offer_sdp: str) -> str:
        """The media plane's answer to ``offer_sdp``; raises what the port raises.

        Run in a task of the call, never in a handler. Waits for an earlier offer of the same peer
        first; at most :data:`OFFER_TIMEOUT` (then ``trio.TooSlowError``).
        """
        if self.port is None:
            raise RuntimeError("answer() without a media plane")
        lock = self._order.setdefault(peer_id, trio.Lock())
        try:
            with trio.fail_after(OFFER_TIMEOUT):
                async with lock:
                    return await self.port.open_peer(self.call_id, peer_id, offer_sdp)
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._order.pop(peer_id, None)

    def close_peer(self, peer_id: str) -> None:
        if self.port is not None:
            self.port.close_peer(self.call_id, peer_id)

    def close_call(self) -> None:
        if self.port is not None:
            self.port.close_call(self.call_id)

    def gate(self, peer_id: str, on: bool) -> None:
        """Forward to and from this peer (``on``) or nothing at all, from the next packet on."""
        if self.port is not None:
            self.port.set_receiving(self.call_id, peer_id, on)
            self.port.set_publishing(self.call_id, peer_id, on)

    def slot_names(self, peer_id: str) -> dict[str, str]:
        """Slot index -> the peer id whose video fills it (``room.participants`` names each)."""
        if self.port is None:
            return {}
        return {str(slot): peer for slot, peer in self.port.slots(self.call_id, peer_id).items()}

    def audio_slot_names(self, peer_id: str) -> dict[str, str]:
        """Slot index -> the peer id whose audio fills it (the loudest few, in a large call)."""
        if self.port is None:
            return {}
        slots = self.port.audio_slots(self.call_id, peer_id)
        return {str(slot): peer for slot, peer in slots.items()}

    def view(self, peer_id: str, shown: dict[str, int], pinned: list[str]) -> None:
        """What this peer's page shows (peer id -> display height) and pinned: its last-N."""
        if self.port is not None:
            self.port.set_view(self.call_id, peer_id, shown, pinned)
