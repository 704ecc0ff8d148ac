"""The media plane: a Trio SFU that forwards RTP between WebRTC peers (docs/media.md).

The control plane uses `MediaService` (one worker: one UDP port) and its events; peers and calls
are opaque string ids. Nothing here knows about clinics, rooms or the gateway.
"""

from media.worker import (
    MediaError,
    MediaEvent,
    PeerClosed,
    PeerConnected,
    SlotsChanged,
    Worker,
    WorkerConfig,
)

#: The facade the room/call actors use. Today one service is one worker in this process.
MediaService = Worker

__all__ = [
    "MediaError",
    "MediaEvent",
    "MediaService",
    "PeerClosed",
    "PeerConnected",
    "SlotsChanged",
    "Worker",
    "WorkerConfig",
]
