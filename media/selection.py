"""Who is forwarded to whom in one call: last-N video and loudest-k audio, in stable slots. Sans-IO.

Each subscriber offered a fixed number of receive slots (`media.sdp`: the n-th audio and the n-th
video receive line are slot n). This module decides, per subscriber, which publisher's video fills
each video slot and whose audio fills each audio slot, the way Jitsi Videobridge ("last-N") and
LiveKit do, without ever renegotiating:

* **Everyone fits** (every other publisher's audio and video has a slot): everyone is forwarded,
  audio and video of a publisher in the same slot, as before large calls existed.
* **Video** otherwise: at most ``min(video slots, last_n)`` publishers, in this order: those the
  subscriber pinned (the moderator), those it shows on screen (its page of the gallery, as the
  page reports with ``media.view``), then the most recent dominant speakers; a page that never
  reported a view is filled up in join order (it shows everyone). Nobody else's video is sent.
* **Audio** otherwise: anyone pinned, then the ``loudest`` publishers by recent speech activity
  (levels above the publisher's own noise floor, `media.speaker`, so a constant claimed level
  counts for nothing), then whoever holds a slot already, the recent speakers and join order,
  up to the audio slot count.
* **Stable slots**: a publisher keeps its slot while it stays selected; a newcomer takes the
  lowest free slot (for audio, the index of its video slot when that one is free, so the answer's
  ``slot<n>`` stream pairs one person's sound and picture). A challenger needs
  `AUDIO_HOLD_BONUS` more activity than a holder to take an audio place, so two speakers at
  about the same level do not flap.

The subscriber's wanted display height of each publisher it receives (`wanted_heights`) and
"wanted by nobody" (`unwanted_video`) are for the layer choice of simulcast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Issue 11's defaults for a large call: 9 videos and 3 loudest voices per subscriber.
DEFAULT_LAST_N = 9
DEFAULT_LOUDEST = 3
#: Extra speech activity (sub-units, `media.speaker.activity`) a holder of an audio place has
#: over a challenger: one immediate interval's full scale.
AUDIO_HOLD_BONUS = 13
#: Recent dominant speakers remembered, newest first (enough for any last-N).
SPEAKER_MEMORY = 64
#: Display height assumed for a publisher the subscriber receives but did not say it shows.
#: A page that never reported a view shows everyone at tile size: no reason to go low.
UNKNOWN_HEIGHT = 720
#: A recent speaker forwarded ahead of being shown: the lowest layer is enough to switch fast.
PREROLL_HEIGHT = 180
#: Limits of one view (also checked at the gateway): a 60-person call and a few pins.
MAX_SHOWN = 64
MAX_PINNED = 4
MAX_DISPLAY_PX = 8192


@dataclass(frozen=True, slots=True)
class SelectionConfig:
    """Per-call caps: `last_n` videos and `loudest` voices per subscriber (beyond pins)."""

    last_n: int = DEFAULT_LAST_N
    loudest: int = DEFAULT_LOUDEST


@dataclass(frozen=True, slots=True)
class View:
    """What a subscriber's page shows: peer id -> display height (px), and whom it pinned."""

    shown: Mapping[str, int]
    pinned: tuple[str, ...] = ()


@dataclass(slots=True)
class _Publisher:
    audio: bool
    video: bool


@dataclass(slots=True)
class _Subscriber:
    video: dict[int, str | None]
    audio: dict[int, str | None]
    view: View | None = None


@dataclass(frozen=True, slots=True)
class Slots:
    """One subscriber's slot maps: slot index -> publisher, for video and for audio."""

    video: dict[int, str] = field(default_factory=dict)
    audio: dict[int, str] = field(default_factory=dict)


class Selection:
    """One call's selection. Feed it joins, leaves, views, speakers and activity; `assign` says
    which subscribers' slot maps changed."""

    def __init__(self, config: SelectionConfig | None = None) -> None:
        self.config = config or SelectionConfig()
        self._publishers: dict[str, _Publisher] = {}  # join order
        self._subscribers: dict[str, _Subscriber] = {}
        self._speakers: list[str] = []  # most recent dominant speaker first
        self._activity: dict[str, int] = {}

    # ---- inputs ---------------------------------------------------------------------------------

    def add(
        self, peer: str, *, video_slots: int, audio_slots: int, audio: bool, video: bool
    ) -> None:
        """A peer joins (or rejoins with a new offer): what it publishes and how many slots it has."""
        self.remove(peer)
        self._publishers[peer] = _Publisher(audio, video)
        self._subscribers[peer] = _Subscriber(
            {i: None for i in range(video_slots)}, {i: None for i in range(audio_slots)}
        )

    def remove(self, peer: str) -> None:
        """A peer leaves: its slots at others free up at the next `assign`."""
        self._publishers.pop(peer, None)
        self._subscribers.pop(peer, None)
        self._activity.pop(peer, None)
        if peer in self._speakers:
            self._speakers.remove(peer)

    def set_view(self, peer: str, view: View) -> bool:
        """The subscriber's page shows this now, cut to `MAX_SHOWN` and `MAX_PINNED`.

        Ids of peers not (yet) in the call are kept but select nobody until such a peer joins:
        a page lays out the tile of someone whose media is still connecting.
        """
        sub = self._subscribers.get(peer)
        if sub is None:
            return False
        shown = {
            p: max(0, min(int(h), MAX_DISPLAY_PX))
            for p, h in list(view.shown.items())[:MAX_SHOWN]
            if p != peer
        }
        pinned = tuple(dict.fromkeys(p for p in view.pinned[:MAX_PINNED] if p != peer))
        clean = View(shown, pinned)
        if sub.view == clean:
            return False
        sub.view = clean
        return True

    def speaker(self, peer: str) -> None:
        """The call's dominant speaker is now `peer` (`media.speaker`)."""
        if peer not in self._publishers:
            return
        if peer in self._speakers:
            self._speakers.remove(peer)
        self._speakers.insert(0, peer)
        del self._speakers[SPEAKER_MEMORY:]

    def set_activity(self, activity: Mapping[str, int]) -> None:
        """Recent speech activity per publisher (`DominantSpeaker.activity`); others read 0."""
        self._activity = {p: a for p, a in activity.items() if p in self._publishers}

    # ---- outputs --------------------------------------------------------------------------------

    @property
    def dominant(self) -> str | None:
        return self._speakers[0] if self._speakers else None

    def slots(self, peer: str) -> Slots:
        sub = self._subscribers.get(peer)
        if sub is None:
            return Slots()
        return Slots(_filled(sub.video), _filled(sub.audio))

    def assign(self) -> set[str]:
        """Re-map every subscriber's slots; returns the subscribers whose maps changed."""
        changed: set[str] = set()
        for peer, sub in self._subscribers.items():
            before = (dict(sub.video), dict(sub.audio))
            video, audio = self._choose(peer, sub)
            _place(sub.video, video, {})
            _place(sub.audio, audio, {p: s for s, p in sub.video.items() if p is not None})
            if (sub.video, sub.audio) != before:
                changed.add(peer)
        return changed

    def wanted_heights(self, publisher: str) -> dict[str, int]:
        """Subscriber -> the display height it wants `publisher`'s video at (receivers only)."""
        out: dict[str, int] = {}
        for peer in self._subscribers:
            height = self.wanted_height(peer, publisher)
            if height is not None:
                out[peer] = height
        return out

    def wanted_height(self, subscriber: str, publisher: str) -> int | None:
        """The height `subscriber` wants `publisher` at, None if it does not receive its video."""
        sub = self._subscribers.get(subscriber)
        if sub is None or publisher not in sub.video.values():
            return None
        view = sub.view
        if view is None or (publisher in view.pinned and publisher not in view.shown):
            return UNKNOWN_HEIGHT
        return view.shown.get(publisher, PREROLL_HEIGHT)

    def unwanted_video(self) -> set[str]:
        """Video publishers no subscriber receives: their layers can be paused."""
        wanted: set[str] = set()
        for sub in self._subscribers.values():
            wanted.update(p for p in sub.video.values() if p is not None)
        return {p for p, pub in self._publishers.items() if pub.video and p not in wanted}

    # ---- the policy -----------------------------------------------------------------------------

    def _choose(self, peer: str, sub: _Subscriber) -> tuple[list[str], list[str]]:
        """The publishers `peer` should receive video and audio of, in priority order."""
        others = [p for p in self._publishers if p != peer]
        video_cands = [p for p in others if self._publishers[p].video]
        audio_cands = [p for p in others if self._publishers[p].audio]
        n_video = min(len(sub.video), self.config.last_n)
        n_audio = len(sub.audio)
        if len(video_cands) <= n_video and len(audio_cands) <= n_audio:
            return video_cands, audio_cands
        view = sub.view
        pinned = list(view.pinned) if view is not None else []
        held_video = [p for p in sub.video.values() if p is not None]
        speakers = self._speakers
        # Video: pins, then what the page shows (recent speakers and holders first), then the
        # recent speakers, then (a page that never said what it shows) join order.
        order: list[str] = list(pinned)
        if view is not None:
            shown = set(view.shown)
            order += [p for p in speakers if p in shown]
            order += [p for p in held_video if p in shown]
            order += [p for p in view.shown]
        order += speakers
        if view is None:
            order += held_video
            order += video_cands
        video = _take(order, set(video_cands), n_video)
        # Audio: pins, the loudest (holders get a bonus), then holders, speakers, join order.
        audio_set = set(audio_cands)
        held_audio = {p for p in sub.audio.values() if p is not None}
        activity = self._activity
        ranked = sorted(
            (p for p in audio_cands if activity.get(p, 0) > 0),
            key=lambda p: -(activity.get(p, 0) + (AUDIO_HOLD_BONUS if p in held_audio else 0)),
        )
        order = [p for p in pinned if p in audio_set]
        loud = _take(ranked, audio_set - set(order), self.config.loudest)
        order += loud
        order += [p for p in sub.audio.values() if p is not None]
        order += speakers
        order += audio_cands
        audio = _take(order, audio_set, n_audio)
        return video, audio


def _take(order: Iterable[str], allowed: set[str], limit: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for p in order:
        if len(out) >= limit:
            break
        if p in allowed and p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _place(slots: dict[int, str | None], chosen: list[str], prefer: Mapping[str, int]) -> None:
    """Keep holders that stay chosen in their slot; newcomers take `prefer`red or lowest free."""
    wanted = set(chosen)
    for s, p in slots.items():
        if p is not None and p not in wanted:
            slots[s] = None
    placed = {p for p in slots.values() if p is not None}
    for p in chosen:
        if p in placed:
            continue
        index = prefer.get(p)
        if index is None or slots.get(index, "") is not None:
            free = [s for s in sorted(slots) if slots[s] is None]
            if not free:
                break
            index = free[0]
        slots[index] = p
        placed.add(p)


def _filled(slots: dict[int, str | None]) -> dict[int, str]:
    return {s: p for s, p in sorted(slots.items()) if p is not None}
