"""An aiortc peer in its own asyncio process, driven over stdin/stdout with JSON lines.

aiortc never runs inside the Trio server: the tests start this script with `trio.run_process`-style
pipes. Protocol: the script prints {"offer": sdp}; the test writes {"answer": sdp}; then the script
prints {"video": {slot: frames decoded}, "audio": {slot: samples received}} every REPORT_INTERVAL
seconds until stdin is closed or {"quit": true} arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import logging
import sys
import time
from typing import Any

import numpy
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from av import VideoFrame

REPORT_INTERVAL = 0.25
VIDEO_CLOCK = 90000
FRAME_RATE = 15
WIDTH, HEIGHT = 320, 240


class MovingVideo(VideoStreamTrack):
    """Small frames that change every time, so the encoder produces real deltas."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.start = time.monotonic()

    async def recv(self) -> VideoFrame:
        self.count += 1
        await asyncio.sleep(max(0.0, self.start + self.count / FRAME_RATE - time.monotonic()))
        image = numpy.zeros((HEIGHT, WIDTH, 3), numpy.uint8)
        x = (self.count * 4) % WIDTH
        image[:, x : x + 16, :] = 255
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = int(self.count * VIDEO_CLOCK / FRAME_RATE)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


async def count_frames(
    track: MediaStreamTrack, kind: str, slot: int, counts: dict[str, Any]
) -> None:
    while True:
        try:
            frame = await track.recv()
        except Exception:  # MediaStreamError once the track ends
            return
        if kind == "video":
            counts["video"][slot] = counts["video"].get(slot, 0) + 1
        else:
            samples = getattr(frame, "samples", 0)
            counts["audio"][slot] = counts["audio"].get(slot, 0) + samples


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--no-send", action="store_true")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)

    # One transport for every m-line, as browsers do: the SFU serves one 5-tuple per peer.
    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    counts: dict[str, Any] = {"video": {}, "audio": {}}
    slot_of: dict[Any, tuple[str, int]] = {}
    if not args.no_send:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        pc.addTransceiver(MovingVideo(), direction="sendonly")
    for slot in range(args.slots):
        for kind in ("audio", "video"):
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            slot_of[transceiver] = (kind, slot)
    tasks = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        for transceiver, (kind, slot) in slot_of.items():
            if transceiver.receiver.track is track:
                tasks.append(asyncio.ensure_future(count_frames(track, kind, slot, counts)))

    await pc.setLocalDescription(await pc.createOffer())
    print(json.dumps({"offer": pc.localDescription.sdp}), flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    line = await reader.readline()
    answer = json.loads(line)["answer"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def report() -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            state = {"ice": pc.iceConnectionState, "conn": pc.connectionState}
            print(json.dumps({**counts, **state}), flush=True)

    reporter = asyncio.ensure_future(report())
    while True:
        line = await reader.readline()
        if not line or json.loads(line).get("quit"):
            break
    reporter.cancel()
    await pc.close()
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
