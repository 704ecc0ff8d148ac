"""An aiortc publisher retransmits a packet the media worker lost and NACKed (issue 11).

The worker's own loss detection does the NACKing: the test drops one video packet before the
data path sees it, the next packet opens a gap, `DataPath.on_rtp` sends a generic NACK built by
`rtcp.build_nack`, and aiortc (which routes RTCP feedback by its media SSRC) resends the packet.
With the media SSRC left at 0, aiortc ignores the NACK and the packet never comes back.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import trio

from media.sdp import parse_offer
from media.transport import Transport
from tests.media.conftest import RecordingWorker
from tests.media.test_aiortc_interop import PEER_SCRIPT, AiortcPeer, wait_for

pytestmark = pytest.mark.slow

# Let the stream settle (keyframe sent, producer started) before losing a packet.
PACKETS_BEFORE_DROP = 40
RETRANSMIT_DEADLINE = 5.0
SEQ_OFFSET = 2
SSRC_OFFSET = 8


def _seq(data: bytes) -> int:
    return int.from_bytes(data[SEQ_OFFSET : SEQ_OFFSET + 2], "big")


def _ssrc(data: bytes) -> int:
    return int.from_bytes(data[SSRC_OFFSET : SSRC_OFFSET + 4], "big")


class DropOnce:
    """Stands in front of the worker's RTP path: drops one video packet, then watches for it."""

    def __init__(self, worker: RecordingWorker, video_ssrc: int) -> None:
        self.worker = worker
        self.video_ssrc = video_ssrc
        self.forward: Callable[[Transport, bytes], None] = worker._on_rtp
        self.seen = 0
        self.dropped: int | None = None
        self.resent_accepted = 0
        worker._on_rtp = self

    def __call__(self, transport: Transport, data: bytes) -> None:
        if _ssrc(data) != self.video_ssrc:
            self.forward(transport, data)
            return
        self.seen += 1
        seq = _seq(data)
        if self.dropped is None and self.seen > PACKETS_BEFORE_DROP:
            self.dropped = seq  # lost on the way in: never reaches SRTP or the data path
            return
        before = self.worker.counters.rtp_in
        self.forward(transport, data)
        if seq == self.dropped and self.worker.counters.rtp_in == before + 1:
            self.resent_accepted += 1  # arrived again and passed SRTP authentication


async def test_aiortc_publisher_retransmits_a_packet_the_server_nacks(
    worker: RecordingWorker,
) -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, str(PEER_SCRIPT), "--slots", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    peer = AiortcPeer(process, "publisher")
    try:
        async with trio.open_nursery() as nursery:
            offer = (await peer.read())["offer"]
            video = [
                m for m in parse_offer(offer).media if m.kind == "video" and m.ssrc is not None
            ]
            assert video, offer
            # aiortc offers RTX, but the answer does not accept it: the original packet comes back.
            ssrc = video[0].ssrc
            assert ssrc is not None
            spy = DropOnce(worker, ssrc)
            answer = await worker.open_peer("call-nack", "publisher", offer)
            await peer.write({"answer": answer})
            nursery.start_soon(peer.follow)
            await wait_for(
                lambda: spy.dropped is not None, RETRANSMIT_DEADLINE, "a video packet to drop"
            )
            await wait_for(
                lambda: spy.resent_accepted > 0,
                RETRANSMIT_DEADLINE,
                f"publisher resends NACKed packet {spy.dropped}",
            )
            stats = worker.stats()
            assert stats["nack_upstream"] >= 1, stats
            await peer.quit()
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
