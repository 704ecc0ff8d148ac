"""The media the load tester publishes: a short Opus and VP8 clip, encoded once and replayed.

Encoding is slow (PyAV, libvpx, libopus through aiortc's encoders), so it happens once per host
and is cached in a temporary file that every load-generator process reads at start.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgpack

from waitroom.loadtest.peersdp import (
    AUDIO_CLOCK,
    AUDIO_PTIME,
    AUDIO_TS_STEP,
    FRAME_RATE,
    VIDEO_CLOCK,
    VIDEO_TS_STEP,
)


@dataclass(frozen=True)
class Clip:
    """Pre-encoded media replayed in a loop: Opus payloads (20 ms each), VP8 frames (packets).

    ``video[0]`` is the keyframe, sent once; the loop replays ``video[1:]`` (delta frames), so the
    bit rate stays that of a steady call instead of a keyframe every loop.
    """

    audio: tuple[bytes, ...]
    video: tuple[tuple[bytes, ...], ...]

    def stats(self) -> dict[str, float]:
        deltas = self.video[1:]
        return {
            "audio_bytes_per_packet": sum(map(len, self.audio)) / len(self.audio),
            "video_packets_per_frame": sum(map(len, deltas)) / len(deltas),
            "video_kbps": sum(len(p) for f in deltas for p in f)
            * 8
            * FRAME_RATE
            / len(deltas)
            / 1000,
            "keyframe_packets": len(self.video[0]),
        }


#: Clip generation: 640x480 (media.js's ideal), a textured gradient panning sideways so the VP8
#: encoder produces delta frames of realistic size (about 2 packets per frame at aiortc's
#: 500 kbit/s default), and a speech-band tone for Opus at a browser-like 32 kbit/s.
CLIP_SECONDS = 2.0
CLIP_SIZE = (640, 480)
CLIP_NOISE = 48
OPUS_BITRATE = 32000


#: Bump when make_clip changes, so a stale cached clip is not replayed.
CLIP_VERSION = 1


def clip_cache_path() -> Path:
    return Path(tempfile.gettempdir()) / f"waitroom-loadtest-clip-v{CLIP_VERSION}.msgpack"


@functools.cache
def load_clip() -> Clip:
    """The clip, encoded once per host and cached: load-generator processes start at once.

    A missing, unreadable or malformed cache file is simply re-encoded and rewritten (atomically,
    so processes starting together never read half a file).
    """
    path = clip_cache_path()
    with contextlib.suppress(OSError, ValueError, TypeError, msgpack.UnpackException):
        audio, video = msgpack.unpackb(path.read_bytes())
        clip = Clip(tuple(audio), tuple(tuple(frame) for frame in video))
        if clip.audio and len(clip.video) > 1 and all(isinstance(a, bytes) for a in clip.audio):
            return clip
    clip = make_clip()
    with contextlib.suppress(OSError):
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(msgpack.packb([list(clip.audio), [list(f) for f in clip.video]]))
        partial.replace(path)
    return clip


@functools.cache
def make_clip(seconds: float = CLIP_SECONDS) -> Clip:
    """Encode a short clip once per process with aiortc's encoders (PyAV, libvpx, libopus)."""
    import fractions

    import numpy
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from av import AudioFrame, VideoFrame

    width, height = CLIP_SIZE
    rng = numpy.random.default_rng(1)
    gradient = (
        numpy.linspace(0, 180, height)[:, None, None]
        + numpy.linspace(0, 60, 2 * width)[None, :, None]
    )
    texture = (gradient + rng.integers(0, CLIP_NOISE, (height, 2 * width, 3))).clip(0, 255)
    texture = texture.astype(numpy.uint8)
    video_codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=VIDEO_CLOCK, payloadType=96)
    video_encoder = get_encoder(video_codec)
    frames: list[tuple[bytes, ...]] = []
    for i in range(int(seconds * FRAME_RATE)):
        x = (i * 6) % width
        frame = VideoFrame.from_ndarray(
            numpy.ascontiguousarray(texture[:, x : x + width, :]), format="bgr24"
        )
        frame.pts, frame.time_base = i * VIDEO_TS_STEP, fractions.Fraction(1, VIDEO_CLOCK)
        payloads, _ = video_encoder.encode(frame)
        frames.append(tuple(payloads))
    audio_codec = RTCRtpCodecParameters(
        mimeType="audio/opus", clockRate=AUDIO_CLOCK, channels=2, payloadType=111
    )
    audio_encoder = get_encoder(audio_codec)
    audio_encoder.codec.bit_rate = OPUS_BITRATE  # type: ignore[attr-defined]
    packets: list[bytes] = []
    for i in range(int(seconds / AUDIO_PTIME)):
        t = numpy.arange(AUDIO_TS_STEP) + i * AUDIO_TS_STEP
        wave = (numpy.sin(2 * numpy.pi * 220 * t / AUDIO_CLOCK) * 6000).astype(numpy.int16)
        pcm = numpy.stack([wave, wave], axis=1).reshape(1, -1)
        audio = AudioFrame.from_ndarray(numpy.ascontiguousarray(pcm), format="s16", layout="stereo")
        audio.sample_rate = AUDIO_CLOCK
        audio.pts, audio.time_base = i * AUDIO_TS_STEP, fractions.Fraction(1, AUDIO_CLOCK)
        payloads, _ = audio_encoder.encode(audio)
        packets.extend(payloads)
    return Clip(tuple(packets), tuple(frames))


# -- simulcast: the same picture at three sizes ---------------------------------------------------

#: The three layers media.js publishes for a large call (SIMULCAST_ENCODINGS, a 720p camera),
#: low to high: (width, height, bit/s). aiortc's encoder holds bit rates within 250k..1.5M.
SIMULCAST_LAYERS = ((320, 180, 150_000), (640, 360, 500_000), (1280, 720, 1_500_000))
SIMULCAST_VERSION = 1


@dataclass(frozen=True)
class SimulcastClip:
    """Opus payloads and, per layer (low to high), VP8 frames: ``layers[n][0]`` is a key frame.

    A peer replays ``layers[n][1:]`` in a loop and sends ``layers[n][0]`` again whenever the SFU
    asks for a key frame of layer n (PLI/FIR): nothing is encoded while the load runs.
    """

    audio: tuple[bytes, ...]
    layers: tuple[tuple[tuple[bytes, ...], ...], ...]
    sizes: tuple[tuple[int, int], ...]

    def stats(self) -> list[dict[str, float]]:
        return [Clip(self.audio, layer).stats() for layer in self.layers]


def simulcast_cache_path() -> Path:
    return Path(tempfile.gettempdir()) / f"waitroom-loadtest-simulcast-v{SIMULCAST_VERSION}.msgpack"


@functools.cache
def load_simulcast_clip(seconds: float = CLIP_SECONDS) -> SimulcastClip:
    """The three-layer clip, encoded once per host and cached like `load_clip`."""
    path = simulcast_cache_path()
    if seconds == CLIP_SECONDS:
        with contextlib.suppress(OSError, ValueError, TypeError, msgpack.UnpackException):
            audio, layers, sizes = msgpack.unpackb(path.read_bytes())
            clip = SimulcastClip(
                tuple(audio),
                tuple(tuple(tuple(frame) for frame in layer) for layer in layers),
                tuple((int(w), int(h)) for w, h in sizes),
            )
            layers_ok = all(len(layer) > 1 for layer in clip.layers)
            if clip.audio and len(clip.layers) == len(SIMULCAST_LAYERS) and layers_ok:
                return clip
    clip = make_simulcast_clip(seconds)
    if seconds == CLIP_SECONDS:
        with contextlib.suppress(OSError):
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            packed = [
                list(clip.audio),
                [[list(frame) for frame in layer] for layer in clip.layers],
                [list(size) for size in clip.sizes],
            ]
            partial.write_bytes(msgpack.packb(packed))
            partial.replace(path)
    return clip


def make_simulcast_clip(seconds: float = CLIP_SECONDS) -> SimulcastClip:
    """Encode the panning texture at each layer's size and bit rate (aiortc's VP8 encoder)."""
    import fractions

    import numpy
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from av import VideoFrame

    top_width, top_height, _ = SIMULCAST_LAYERS[-1]
    rng = numpy.random.default_rng(1)
    gradient = (
        numpy.linspace(0, 180, top_height)[:, None, None]
        + numpy.linspace(0, 60, 2 * top_width)[None, :, None]
    )
    texture = (gradient + rng.integers(0, CLIP_NOISE, (top_height, 2 * top_width, 3))).clip(0, 255)
    texture = texture.astype(numpy.uint8)
    layers: list[tuple[tuple[bytes, ...], ...]] = []
    for width, height, bitrate in SIMULCAST_LAYERS:
        codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=VIDEO_CLOCK, payloadType=96)
        encoder = get_encoder(codec)
        encoder.target_bitrate = bitrate  # type: ignore[attr-defined]
        frames: list[tuple[bytes, ...]] = []
        for i in range(int(seconds * FRAME_RATE)):
            x = (i * 6) % top_width
            full = VideoFrame.from_ndarray(
                numpy.ascontiguousarray(texture[:, x : x + top_width, :]), format="bgr24"
            )
            frame = full.reformat(width=width, height=height) if width != top_width else full
            frame.pts, frame.time_base = i * VIDEO_TS_STEP, fractions.Fraction(1, VIDEO_CLOCK)
            payloads, _ = encoder.encode(frame)
            frames.append(tuple(payloads))
        layers.append(tuple(frames))
    sizes = tuple((w, h) for w, h, _ in SIMULCAST_LAYERS)
    return SimulcastClip(
        load_clip().audio if seconds == CLIP_SECONDS else make_clip(seconds).audio,
        tuple(layers),
        sizes,
    )
