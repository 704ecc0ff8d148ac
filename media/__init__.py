"""The media plane: a Trio SFU that forwards RTP between WebRTC peers (docs/media.md).

The control plane uses `MediaService` (one worker: one UDP port, in this process) or `MediaPool`
(N worker processes, one UDP port each, the same methods and events); peers and calls are opaque
string ids. Nothing here knows about clinics, rooms or the gateway.

The names below are loaded on first use, so that importing a pure protocol module (`media.rtp`,
`media.rtcp`, `media.stun`, `media.sdp`) does not load Trio, OpenSSL or the worker with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from media.events import (
        DominantSpeakerChanged,
        LayersWanted,
        MediaError,
        MediaEvent,
        PeerClosed,
        PeerConnected,
        SlotsChanged,
    )
    from media.pool import MediaPool
    from media.worker import Worker, WorkerConfig

    #: The facade the room/call actors use: one worker in this process (`MediaPool` for processes).
    MediaService = Worker

_HOMES = {
    "DominantSpeakerChanged": "media.events",
    "LayersWanted": "media.events",
    "MediaError": "media.events",
    "MediaEvent": "media.events",
    "MediaPool": "media.pool",
    "PeerClosed": "media.events",
    "PeerConnected": "media.events",
    "SlotsChanged": "media.events",
    "Worker": "media.worker",
    "WorkerConfig": "media.worker",
    "MediaService": "media.worker",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'media' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), "Worker" if name == "MediaService" else name)
    globals()[name] = value
    return value


__all__ = [
    "DominantSpeakerChanged",
    "LayersWanted",
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
