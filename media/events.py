"""What the media plane tells the control plane, in one vocabulary for a `Worker` and a `MediaPool`.

Events are reported through the `on_event` callback (in pipe order for a pool); `MediaError` is
how a request is refused. Kept apart from the worker so the pool and the rooms use these names
without loading the worker's socket code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """ICE and DTLS completed: media flows from now on."""

    call_id: str
    peer_id: str


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The worker closed a transport on its own (consent expiry, DTLS failure, timeout)."""

    call_id: str
    peer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SlotsChanged:
    """Which peer now fills which receive slot of `peer_id` (slot index -> peer id).

    `slots` names whose video fills each slot (whose audio, for a slot without a video line);
    `audio` whose audio, which in a large call is the loudest few and need not be the same peer.
    """

    call_id: str
    peer_id: str
    slots: dict[int, str]
    audio: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DominantSpeakerChanged:
    """The call's dominant speaker is now `peer_id` (RFC 6464 levels, `media.speaker`)."""

    call_id: str
    peer_id: str


@dataclass(frozen=True, slots=True)
class LayersWanted:
    """Which of `peer_id`'s simulcast layers (rids, low to high) someone wants: the publisher
    should send these and pause the others (`media.layers`). Debounced by the media plane: a
    layer is left out only after nobody wanted it for a while, and never the lowest."""

    call_id: str
    peer_id: str
    active: tuple[str, ...]


MediaEvent = PeerConnected | PeerClosed | SlotsChanged | DominantSpeakerChanged | LayersWanted


class MediaError(Exception):
    """A control-plane request the media plane refuses (bad offer, worker not running)."""
