"""Dominant-speaker identification from RFC 6464 audio levels, pure and deterministic.

The algorithm is I. Volfin and I. Cohen, "Dominant speaker identification for multipoint
videoconferencing", Computer Speech & Language 27(4), 2013, pp. 895-910, in the form Jitsi
Videobridge (`DominantSpeakerIdentification`) and mediasoup (`ActiveSpeakerObserver`) run it on
audio levels instead of decoded audio:

* Each peer keeps its last `LEVELS` levels (one per packet, about 20 ms each), inverted so that a
  larger number is louder. Three time intervals are scored from them: *immediate* (the newest
  level, quantised into N1 sub-units), *medium* (how many of the newest N2 immediates are above
  `MEDIUM_THRESHOLD`) and *long* (how many of the newest N3 mediums are above `LONG_THRESHOLD`).
* Each interval's count becomes a *speech activity score*, the log-likelihood ratio of speech
  against silence under the paper's model: a binomial (p = 0.5) over the interval's sub-units for
  speech, an exponential with rate lambda for non-speech.
* Every `DECISION_INTERVAL` seconds the current dominant speaker is compared with each other
  peer: a peer takes over only if its log score ratio beats the dominant's by C1 (immediate),
  C2 (medium) and C3 (long) at once, the largest medium ratio winning. This hysteresis is why a
  short noise burst does not switch and why, when everyone is silent, the last speaker stays.

Two tunings for forwarding video by speaker (issue 11: a new speaker's video within 400 ms):

* Decisions every 100 ms, not Jitsi's 300 ms. The interval only spaces out the comparisons (the
  paper decides per frame); at 300 ms it added 150 ms on average to every switch. One decision
  over 60 peers costs 0.6 ms (quiet machine) to 1.2 ms (load 5), so this is 0.6-1.2 % of a core
  per 60-person call.
* A *clear takeover* waives C3. The long interval (about 1 s of history) keeps a speaker who
  just stopped ahead on the long score for about half a second, which is what made a turn
  change take 0.55-0.75 s. When the dominant speaker's newest `TAKEOVER_MEDIUMS` medium
  intervals hold no speech sub-unit at all (200 ms of silence) and the challenger's newest
  `TAKEOVER_MEDIUMS` mediums are each speech (at least `LONG_THRESHOLD` of their five
  immediates loud: the long interval's own test, less one late or quiet packet), the floor is
  free, not contested: C1 and C2 still apply, C3 does not. A speaker who talks on keeps the
  floor exactly as before (an interjection during their speech still has to win on the long
  score), a 60 ms burst never qualifies, and a false switch during a 200 ms pause costs little:
  the last-N keeps recent speakers forwarded, so both stay on screen (`media.selection`).

One deliberate difference from Jitsi: a level counts only if it is more than `FLOOR_MARGIN` above
the peer's own adaptive noise floor (the paper thresholds against a noise estimate too; Jitsi
zeroes only levels *below* the floor). A peer that claims a constant loud level from the start has
that level as its floor, so it reads as silent and cannot take the floor from people who speak.
(A peer that first sends one quiet level and then a constant loud one is not caught until the
floor rises, after `MIN_LEVEL_WINDOW` levels; the hysteresis still keeps it from taking over from
someone who is speaking.)

No Trio, no clock of its own: callers pass timestamps (seconds, monotonic), so tests are exact.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

PeerId = TypeVar("PeerId", bound=Hashable)

MAX_LEVEL = 127  # RFC 6464: 127 -dBov is silence; inverted here, 127 is the loudest
MIN_LEVEL = 0
# Interval sizes and thresholds: the values Jitsi Videobridge and mediasoup use.
N1 = 13  # sub-units of the immediate interval
N2 = 5  # immediates per medium
N3 = 10  # mediums per long
LONG_COUNT = 1
LEVELS = LONG_COUNT * N3 * N2  # 50 levels: about a second of 20 ms packets
N1_SUBUNIT_LENGTH = (MAX_LEVEL - MIN_LEVEL + N1 - 1) // N1
MEDIUM_THRESHOLD = 7
LONG_THRESHOLD = 4
C1, C2, C3 = 3.0, 2.0, 0.0
SPEECH_PROBABILITY = 0.5
LAMBDA_IMMEDIATE, LAMBDA_MEDIUM, LAMBDA_LONG = 0.78, 24.0, 47.0
MIN_SCORE = 1e-10
DECISION_INTERVAL = 0.1  # seconds between decisions (Jitsi: 0.3; see the module docstring)
#: Medium intervals (100 ms each) of silence from the dominant and of speech from a challenger
#: that make a clear takeover (C3 waived).
TAKEOVER_MEDIUMS = 2
SAMPLE_PERIOD = 0.02  # a browser's audio packet: what a peer that sends nothing is padded with
# A peer silent (no packets, e.g. Opus DTX, or muted) for longer than this is fed silence before
# a decision. Jitsi uses 40 ms (two packets); with decisions every 100 ms that turned network or
# scheduling jitter into silence in a speaker's history, and a delayed batch of their packets
# then failed the clear-takeover test. 100 ms (five packets) still reads a muted peer as silent
# within one decision.
IDLE_TIMEOUT = 0.1
# Jitsi's window for raising the noise floor: 15 s of 20 ms packets.
MIN_LEVEL_WINDOW = 750
# Levels within one immediate sub-unit of the floor are noise.
FLOOR_MARGIN = N1_SUBUNIT_LENGTH
#: Newest levels `DominantSpeaker.activity` sums (200 ms): what "loudest now" means for audio.
ACTIVITY_LEVELS = 2 * N2


def speech_activity_score(active: int, subunits: int, lam: float) -> float:
    """Volfin and Cohen's score: log of binomial speech likelihood over exponential non-speech."""
    p = SPEECH_PROBABILITY
    score = (
        math.log(math.comb(subunits, active))
        + active * math.log(p)
        + (subunits - active) * math.log(1 - p)
        - math.log(lam)
        + lam * active
    )
    return max(score, MIN_SCORE)


def _count_above(littles: list[int], per_big: int, threshold: int, bigs: int) -> list[int]:
    return [
        sum(1 for v in littles[b * per_big : (b + 1) * per_big] if v > threshold)
        for b in range(bigs)
    ]


@dataclass(slots=True)
class _Speaker:
    """One peer's recent levels (newest first, louder is larger) and its noise floor."""

    levels: deque[int] = field(default_factory=lambda: deque([MIN_LEVEL] * LEVELS, LEVELS))
    last_sample: float | None = None
    min_level: int = MIN_LEVEL
    next_min_level: int = MIN_LEVEL
    next_min_window: int = 0

    def push(self, loudness: int) -> None:
        self._update_floor(loudness)
        self.levels.appendleft(loudness)

    def _update_floor(self, level: int) -> None:
        """Jitsi's floor: falls at once to a quieter level, rises slowly (geometric mean)."""
        if level == MIN_LEVEL:
            return
        if self.min_level == MIN_LEVEL or level < self.min_level:
            self.min_level, self.next_min_level, self.next_min_window = level, MIN_LEVEL, 0
            return
        if self.next_min_level == MIN_LEVEL:
            self.next_min_level, self.next_min_window = level, 1
            return
        self.next_min_level = min(self.next_min_level, level)
        self.next_min_window += 1
        if self.next_min_window >= MIN_LEVEL_WINDOW:
            self.min_level = int(math.sqrt(self.min_level * self.next_min_level))
            self.next_min_level, self.next_min_window = MIN_LEVEL, 0

    def activity(self) -> int:
        """Speech sub-units above the noise floor in the newest `ACTIVITY_LEVELS` levels."""
        gate = self.min_level + FLOOR_MARGIN
        total = 0
        for i, v in enumerate(self.levels):
            if i >= ACTIVITY_LEVELS:
                break
            if v > gate:
                total += v // N1_SUBUNIT_LENGTH
        return total

    def scores(self) -> tuple[tuple[float, float, float], list[int]]:
        """The three intervals' scores, and the medium counts (newest first) they came from."""
        gate = self.min_level + FLOOR_MARGIN
        immediates = [v // N1_SUBUNIT_LENGTH if v > gate else 0 for v in self.levels]
        mediums = _count_above(immediates, N2, MEDIUM_THRESHOLD, N3 * LONG_COUNT)
        longs = _count_above(mediums, N3, LONG_THRESHOLD, LONG_COUNT)
        return (
            speech_activity_score(immediates[0], N1, LAMBDA_IMMEDIATE),
            speech_activity_score(mediums[0], N2, LAMBDA_MEDIUM),
            speech_activity_score(longs[0], N3, LAMBDA_LONG),
        ), mediums


_SILENT = (MIN_SCORE, MIN_SCORE, MIN_SCORE)
_NO_MEDIUMS = [0] * N3


def _silent(mediums: list[int]) -> bool:
    """The newest TAKEOVER_MEDIUMS medium intervals hold no speech sub-unit."""
    return not any(mediums[:TAKEOVER_MEDIUMS])


def _speaking(mediums: list[int]) -> bool:
    """The newest TAKEOVER_MEDIUMS medium intervals are each speech: at least LONG_THRESHOLD of
    their N2 immediates above the medium threshold (the long interval's test asks for more than
    that; one late, lost or quiet packet per 100 ms is allowed here)."""
    return all(m >= LONG_THRESHOLD for m in mediums[:TAKEOVER_MEDIUMS])


class DominantSpeaker(Generic[PeerId]):
    """Feed it (peer, level, time) samples; it says when the dominant speaker changes."""

    def __init__(self) -> None:
        self._speakers: dict[PeerId, _Speaker] = {}
        self.dominant: PeerId | None = None
        self._next_decision: float | None = None

    @property
    def peers(self) -> frozenset[PeerId]:
        """The peers it holds levels of."""
        return frozenset(self._speakers)

    def add_sample(self, peer: PeerId, level_dbov: int, now: float) -> PeerId | None:
        """One packet's RFC 6464 level (-dBov, 0 loudest). Returns the new dominant if it changed.

        Out-of-range levels are clamped, so a lying peer can say nothing the field cannot.
        """
        speaker = self._speakers.get(peer)
        if speaker is None:
            speaker = self._speakers[peer] = _Speaker()
        speaker.push(MAX_LEVEL - min(max(level_dbov, 0), MAX_LEVEL))
        speaker.last_sample = now
        return self.tick(now)

    def activity(self) -> dict[PeerId, int]:
        """Each peer's recent speech activity (0 for silence, noise or a constant claimed level),
        for choosing the loudest few to forward (`media.selection`)."""
        return {peer: speaker.activity() for peer, speaker in self._speakers.items()}

    def remove(self, peer: PeerId) -> bool:
        """Forget a peer (it left). True if it was dominant: then there is none until someone speaks."""
        self._speakers.pop(peer, None)
        if self.dominant != peer:
            return False
        self.dominant = None
        self._next_decision = None  # decide at the next sample or tick
        return True

    def tick(self, now: float) -> PeerId | None:
        """Decide if a decision interval has passed. Returns the new dominant if it changed."""
        if self._next_decision is not None and now < self._next_decision:
            return None
        self._next_decision = now + DECISION_INTERVAL
        self._pad_idle(now)
        new = self._decide()
        if new is None or new == self.dominant:
            return None
        self.dominant = new
        return new

    def _pad_idle(self, now: float) -> None:
        for speaker in self._speakers.values():
            last = speaker.last_sample
            if last is None or now - last <= IDLE_TIMEOUT:
                continue
            missing = min(LEVELS, int((now - last) / SAMPLE_PERIOD))
            for _ in range(missing):
                speaker.levels.appendleft(MIN_LEVEL)
            speaker.last_sample = now

    def _decide(self) -> PeerId | None:
        current = self._speakers.get(self.dominant) if self.dominant is not None else None
        base, base_mediums = current.scores() if current is not None else (_SILENT, _NO_MEDIUMS)
        floor_free = _silent(base_mediums)
        best: PeerId | None = None
        best_c2 = C2
        for peer, speaker in self._speakers.items():
            if peer == self.dominant:
                continue
            scores, mediums = speaker.scores()
            c1, c2, c3 = (math.log(s / b) for s, b in zip(scores, base, strict=True))
            if c1 > C1 and c2 > best_c2 and (c3 > C3 or (floor_free and _speaking(mediums))):
                best, best_c2 = peer, c2
        return best
