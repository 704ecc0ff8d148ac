"""The control pipe between the control plane and a media worker process: framed msgpack.

Sans-IO. A frame is a 4-byte big-endian length and a msgpack map with string keys. The reader is
incremental and never trusts the peer: a frame longer than `MAX_FRAME` is skipped byte by byte
(never buffered), a body that is not a msgpack map of string keys is refused; both are reported
as `Refused` so the caller counts them and goes on reading the frames after it.

Commands (control plane -> worker), `id` present when a reply is wanted:
  {"op": "open", "id", "call", "peer", "sdp"} -> {"id", "ok", "sdp" | "error", "slots", "present"}
  {"op": "close_peer", "call", "peer"}, {"op": "close_call", "call"}
  {"op": "receiving" | "publishing", "call", "peer", "on"}
  {"op": "view", "call", "peer", "shown": [[peer, height]], "pinned": [peer]} (what the peer's
    page shows; at most `MAX_VIEW_SHOWN` and `MAX_VIEW_PINNED` entries)
  {"op": "stats", "id"} -> {"id", "ok", "stats"}
  {"op": "shutdown"}
Events (worker -> control plane):
  {"ev": "ready", "port", "pid"}, {"ev": "connected", "call", "peer"},
  {"ev": "closed", "call", "peer", "reason"}, {"ev": "slots", "call", "peer", "slots": [[i, p]], "audio": [[i, p]]}
  (who fills each slot's video, and each slot's audio; the open reply carries both too),
  {"ev": "speaker", "call", "peer"} (the call's dominant speaker changed),
  {"ev": "refused", "reason"} for a frame without a usable id
Every command with an id gets exactly one reply with that id, in command order; a command that
cannot be used is answered {"id", "ok": false, "error", "refused": true}.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

#: An SDP offer of a six-party call is about 10 kB; the gateway caps messages at 64 kB.
MAX_FRAME = 256 * 1024
_LENGTH = struct.Struct("!I")
HEADER_LENGTH = _LENGTH.size


#: A view names at most this many shown peers and pins (`media.selection` cuts to its own limits).
MAX_VIEW_SHOWN = 64
MAX_VIEW_PINNED = 4
MAX_VIEW_ID = 256
MAX_VIEW_HEIGHT = 8192


class ControlError(Exception):
    """A frame or a field the other side sent that cannot be used."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A frame that was read and thrown away, and why."""

    reason: str


Frame = dict[str, Any]


def encode(message: Frame) -> bytes:
    """One frame: length prefix + msgpack body. Raises ControlError if it would be too long."""
    body: bytes = msgpack.packb(message, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise ControlError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _LENGTH.pack(len(body)) + body


class FrameReader:
    """Incremental decoder: `feed` bytes as they arrive, get whole frames or refusals back."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized frame still to throw away

    def feed(self, data: bytes | bytearray) -> list[Frame | Refused]:
        out: list[Frame | Refused] = []
        view = memoryview(data)
        if self._skip:
            taken = min(self._skip, len(view))
            self._skip -= taken
            view = view[taken:]
        self._buf += view
        buf = self._buf
        pos = 0
        while not self._skip and len(buf) - pos >= HEADER_LENGTH:
            (length,) = _LENGTH.unpack_from(buf, pos)
            if length > self.max_frame:
                out.append(Refused("frame_too_long"))
                pos += HEADER_LENGTH
                taken = min(length, len(buf) - pos)
                pos += taken
                self._skip = length - taken
                continue
            if len(buf) - pos - HEADER_LENGTH < length:
                break
            body = bytes(buf[pos + HEADER_LENGTH : pos + HEADER_LENGTH + length])
            pos += HEADER_LENGTH + length
            out.append(_decode(body))
        del buf[:pos]
        return out


def _decode(body: bytes) -> Frame | Refused:
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several unrelated types for bad input
        return Refused("not_msgpack")
    if not isinstance(value, dict):
        return Refused("not_a_map")
    return value


def text(frame: Frame, key: str, max_length: int = MAX_FRAME) -> str:
    """A required string field."""
    value = frame.get(key)
    if not isinstance(value, str) or len(value) > max_length:
        raise ControlError(f"field {key!r} must be a string")
    return value


def flag(frame: Frame, key: str) -> bool:
    value = frame.get(key)
    if not isinstance(value, bool):
        raise ControlError(f"field {key!r} must be a boolean")
    return value


def request_id(frame: Frame) -> int | None:
    value = frame.get("id")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ControlError("field 'id' must be a non-negative integer")
    return value


def view_fields(frame: Frame) -> tuple[dict[str, int], list[str]]:
    """A `view` command's shown peers (peer -> display height) and pins, checked strictly."""
    shown = frame.get("shown")
    pinned = frame.get("pinned")
    if not isinstance(shown, list) or len(shown) > MAX_VIEW_SHOWN:
        raise ControlError("field 'shown' must be a short list of [peer, height] pairs")
    if not isinstance(pinned, list) or len(pinned) > MAX_VIEW_PINNED:
        raise ControlError("field 'pinned' must be a short list of peer ids")
    out: dict[str, int] = {}
    for pair in shown:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or len(pair[0]) > MAX_VIEW_ID
            or type(pair[1]) is not int
            or not 0 <= pair[1] <= MAX_VIEW_HEIGHT
        ):
            raise ControlError("field 'shown' must be a short list of [peer, height] pairs")
        out[pair[0]] = pair[1]
    if not all(isinstance(p, str) and len(p) <= MAX_VIEW_ID for p in pinned):
        raise ControlError("field 'pinned' must be a short list of peer ids")
    return out, list(pinned)
