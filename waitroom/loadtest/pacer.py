"""Real-time pacing of every publishing peer of a process from one heap, one task.

One task for all peers (not one per peer) and synchronous sends: a hundred peers cost one wake-up
per due packet batch, not a hundred sleeping tasks.
"""

from __future__ import annotations

import heapq
import secrets
from typing import TYPE_CHECKING

import trio

from waitroom.loadtest.clip import Clip, SimulcastClip
from waitroom.loadtest.peersdp import AUDIO_PT, AUDIO_PTIME, FRAME_RATE, VIDEO_PT
from waitroom.loadtest.tally import MediaTally

if TYPE_CHECKING:
    from waitroom.loadtest.mediapeer import MediaPeer

#: The pump sends everything due within this much of now in one wake-up.
PUMP_SLACK = 0.001
#: Consent freshness (RFC 7675): browsers re-check about every 5 s; the SFU expires at 30 s.
CONSENT_INTERVAL = 5.0
#: Receiver reports (and REMB) from each peer: libwebrtc sends RTCP about once a second.
REPORT_INTERVAL = 1.0
_CONSENT = 0
_REPORT = 1


class MediaPump:
    """Paces every publishing peer of a process from one heap: 50 Opus packets/s, 30 VP8 frames/s.

    Each packet's RTP timestamp is its scheduled time, so any lateness of the pump, the SFU or the
    receiver shows up as interarrival jitter at the receiver. Start offsets are random so a
    hundred peers do not send in lockstep.

    With a `SimulcastClip`, a simulcast peer sends each frame on all three layers and a
    single-layer peer the middle one; a layer the SFU asked a key frame of (``keyframe_due``)
    sends its key frame next. Peers with extensions also send receiver reports every second.
    """

    def __init__(self, clip: Clip | SimulcastClip, tally: MediaTally) -> None:
        self.clip = clip
        if isinstance(clip, SimulcastClip):
            self.layers = clip.layers
            self.single = clip.layers[len(clip.layers) // 2]
        else:
            self.layers = (clip.video,)
            self.single = clip.video
        self.tally = tally
        self._heap: list[tuple[float, int, int, MediaPeer, int]] = []
        self._order = 0
        self._wake = trio.Event()

    def add(self, peer: MediaPeer) -> None:
        """Start publishing ``peer`` now (audio, video and consent checks)."""
        now = trio.current_time()
        peer.publishing = True
        self.tally.live.add(peer)
        offset = secrets.randbelow(1000) / 1000 * AUDIO_PTIME
        self._push(now + offset, peer, AUDIO_PT, 0)
        self._push(now + offset, peer, VIDEO_PT, 0)
        self._push(now + CONSENT_INTERVAL, peer, _CONSENT, 0)
        if peer.extensions or peer.light_receive:
            self._push(now + offset + REPORT_INTERVAL, peer, _REPORT, 0)
        self._wake.set()

    def remove(self, peer: MediaPeer) -> None:
        """Stop publishing (its heap entries lapse) and fold its receive counts into the tally."""
        if peer in self.tally.live:
            peer.publishing = False
            self.tally.retire(peer)

    def _push(self, due: float, peer: MediaPeer, kind: int, index: int) -> None:
        self._order += 1
        heapq.heappush(self._heap, (due, self._order, index, peer, kind))

    def _send_due(self, now: float) -> None:
        heap, clip, tally = self._heap, self.clip, self.tally
        audio = clip.audio
        while heap and heap[0][0] <= now + PUMP_SLACK:
            due, _, index, peer, kind = heapq.heappop(heap)
            if not peer.publishing:
                continue
            if kind == AUDIO_PT:
                peer.send_rtp(tally, AUDIO_PT, audio[index % len(audio)], index, False, now=due)
                self._push(due + AUDIO_PTIME, peer, kind, index + 1)
            elif kind == VIDEO_PT:
                if peer.layered:
                    for layer, frames in enumerate(self.layers):
                        self._send_frame(peer, frames, index, layer, layer)
                else:
                    self._send_frame(peer, self.single, index, 0, None)
                self._push(due + 1 / FRAME_RATE, peer, kind, index + 1)
            elif kind == _REPORT:
                peer.send_receiver_report()
                self._push(due + REPORT_INTERVAL, peer, kind, index + 1)
            else:
                peer.send_consent()
                self._push(due + CONSENT_INTERVAL, peer, kind, index + 1)

    def _send_frame(
        self,
        peer: MediaPeer,
        frames: tuple[tuple[bytes, ...], ...],
        index: int,
        due_key: int,
        layer: int | None,
    ) -> None:
        """One frame of one layer: its key frame first, or when the SFU asked; else a delta."""
        if index == 0 or due_key in peer.keyframe_due:
            peer.keyframe_due.discard(due_key)
            if index:
                peer.keyframes_sent += 1
            frame = frames[0]
        else:
            frame = frames[1 + (index - 1) % (len(frames) - 1)]
        last = len(frame) - 1
        for n, payload in enumerate(frame):
            peer.send_rtp(self.tally, VIDEO_PT, payload, index, n == last, layer=layer)

    async def run(self) -> None:
        """Send until cancelled; sleeps until the next packet is due (or a peer is added)."""
        while True:
            self._send_due(trio.current_time())
            if self._heap:
                with trio.move_on_at(self._heap[0][0]):
                    await self._wake.wait()
            else:
                await self._wake.wait()
            self._wake = trio.Event()
