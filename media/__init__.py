"""The media plane: a Trio SFU that forwards RTP between WebRTC peers (docs/media.md).

The control plane uses `MediaService` (one worker: one UDP port, in this process) or `MediaPool`
(N worker processes, one UDP port each, the same methods and events); peers and calls are opaque
string ids. Nothing here knows about clinics, rooms or the gateway.
"""

from media.pool import MediaPool
from media.worker import (
    MediaError,
    MediaEvent,
    PeerClosed,
    PeerConnected,
    SlotsChanged,
    Worker,
    WorkerConfig,
)

#: The facade the room/call actors use: one worker in this process (`MediaPool` for processes).
MediaService = Worker

__all__ = [
    "MediaError",
    "MediaEvent",
    "MediaPool",
    "MediaService",
    "PeerClosed",
    "PeerConnected",
    "SlotsChanged",
    "Worker",
    "WorkerConfig",
]
