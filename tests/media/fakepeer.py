"""The media tests' fake browser: `waitroom.loadtest.mediapeer.MediaPeer` opened on a worker directly.

The peer itself (offer, STUN checks, DTLS client with the fingerprint check, SRTP) lives in the load
tester, which drives it through the gateway; here the tests skip signalling and ask the worker.
"""

from __future__ import annotations

from media.worker import Worker
from waitroom.loadtest.mediapeer import RECV_TIMEOUT, MediaPeer
from waitroom.loadtest.peersdp import AUDIO_PT, VIDEO_PT, Answer, offer_sdp, parse_answer

__all__ = [
    "AUDIO_PT",
    "RECV_TIMEOUT",
    "VIDEO_PT",
    "Answer",
    "FakePeer",
    "offer_sdp",
    "parse_answer",
]


class FakePeer(MediaPeer):
    """One fake browser whose offer goes straight to `worker.open_peer`."""

    async def open(self, worker: Worker, call_id: str, peer_id: str, slots: int = 2) -> Answer:
        self.bind()
        return self.accept(await worker.open_peer(call_id, peer_id, self.offer(slots)))

    async def connect(self, worker: Worker, call_id: str, peer_id: str, slots: int = 2) -> None:
        await self.open(worker, call_id, peer_id, slots)
        await self.establish()
