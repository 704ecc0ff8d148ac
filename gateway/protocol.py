"""The wire protocol, sans-IO: decode and validate client frames, encode server frames.

Every frame is one binary websocket message holding a msgpack map (see ``docs/protocol.md``);
from protocol version 2 a server frame may hold several maps back to back:

* client -> server: ``{"t": type, "id": request id (int, optional), "to": address (optional), "b": body}``
* server -> client: ``{"t": "reply", "id": n, "b": {...}}``, ``{"t": "error", "id": n|None,
  "b": {"code": ..., "detail": ...}}``, or an event ``{"t": "<event type>", "b": {...}}``.

Nothing here does I/O, so it is fuzzed directly and the hot path stays one ``unpackb`` and a few dict
lookups per message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from actors import refusals

#: Protocol versions this server speaks; negotiated in ``hello``.
SUPPORTED_VERSIONS = (1, 2)
#: From this version on, a server frame may carry several events, their msgpack maps concatenated:
#: a dashboard of a busy clinic gets the events queued for it in one websocket send instead of one
#: each (issue 17: sends were most of the server's per-arrival work). Replies stay one per frame.
BATCHED_EVENTS_VERSION = 2
#: A batched frame stops growing past this many bytes (the next event starts the next frame).
MAX_BATCH_BYTES = 64 * 1024
#: ... or this many events.
MAX_BATCH_EVENTS = 64
#: Largest accepted frame. An SDP offer with six participants' slots is about 12 KiB; chat and
#: arrival forms are far smaller. Anything bigger is an error, not a buffer to grow.
MAX_FRAME_BYTES = 64 * 1024
#: The websocket server's own message limit (Hypercorn's ``websocket_max_message_size``). It sits
#: above :data:`MAX_FRAME_BYTES` so that a frame a little too large gets the protocol's
#: ``frame_too_large`` error and the connection stays open; only a frame beyond this makes the
#: transport close with 1009 (it will not buffer more than this for one message).
TRANSPORT_MAX_MESSAGE_BYTES = 2 * MAX_FRAME_BYTES
#: The two types the connection answers itself, before any route: ``hello`` (identify) and
#: ``ping`` (heartbeat; answered before hello too, so a client may check the link while it signs in).
HELLO = "hello"
PING = "ping"
#: Nesting and size limits for msgpack decoding, so a hostile frame cannot build huge structures.
_MAX_ITEMS = 4096


class ProtocolError(Exception):
    """A frame the server refuses; ``code`` goes on the wire in the error frame."""

    def __init__(self, code: str, detail: str, request_id: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class ClientFrame:
    type: str
    request_id: int | None
    to: str | None
    body: dict[str, Any]


def decode(data: bytes | str) -> ClientFrame:
    """Decode and validate one client frame's envelope (not its body's fields: see routes)."""
    if isinstance(data, str):
        raise ProtocolError(refusals.BINARY_REQUIRED, "frames are binary msgpack, not text")
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolError(
            refusals.FRAME_TOO_LARGE, f"frames are limited to {MAX_FRAME_BYTES} bytes"
        )
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_array_len=_MAX_ITEMS,
            max_map_len=_MAX_ITEMS,
            max_bin_len=MAX_FRAME_BYTES,
            max_str_len=MAX_FRAME_BYTES,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(
            refusals.MALFORMED, f"not a msgpack frame ({type(exc).__name__})"
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(refusals.MALFORMED, "a frame is a msgpack map")
    request_id = obj.get("id")
    if request_id is not None and (
        not isinstance(request_id, int)
        or isinstance(request_id, bool)
        or not 0 <= request_id < 2**53
    ):
        raise ProtocolError(refusals.MALFORMED, "id must be a non-negative integer")
    msg_type = obj.get("t")
    if not isinstance(msg_type, str) or not msg_type or len(msg_type) > 64:
        raise ProtocolError(
            refusals.MALFORMED, "t (the message type) must be a short string", request_id
        )
    to = obj.get("to")
    if to is not None and (not isinstance(to, str) or len(to) > 128):
        raise ProtocolError(refusals.MALFORMED, "to must be an actor address string", request_id)
    body = obj.get("b", {})
    if not isinstance(body, dict):
        raise ProtocolError(refusals.MALFORMED, "b (the body) must be a map", request_id)
    return ClientFrame(msg_type, request_id, to, body)


_packer = msgpack.Packer(use_bin_type=True)


def _pack(obj: object) -> bytes:
    data: bytes = _packer.pack(obj)
    return data


def encode_reply(request_id: int | None, body: Mapping[str, Any]) -> bytes:
    return _pack({"t": "reply", "id": request_id, "b": body})


def encode_error(request_id: int | None, code: str, detail: str) -> bytes:
    return _pack({"t": "error", "id": request_id, "b": {"code": code, "detail": detail}})


def encode_event(event_type: str, body: Mapping[str, Any]) -> bytes:
    return _pack({"t": event_type, "b": body})


def encode_client(
    msg_type: str, body: Mapping[str, Any], request_id: int | None = None, to: str | None = None
) -> bytes:
    """Encode a client frame (used by tests, the load tester and benchmarks)."""
    frame: dict[str, Any] = {"t": msg_type, "b": dict(body)}
    if request_id is not None:
        frame["id"] = request_id
    if to is not None:
        frame["to"] = to
    return _pack(frame)


def decode_server(data: bytes) -> dict[str, Any]:
    """Decode a server frame of one message (clients of version 1: tests, the load tester)."""
    obj = msgpack.unpackb(data, raw=False)
    if not isinstance(obj, dict):
        raise ValueError("server frame is not a map")
    return obj


def decode_server_messages(data: bytes) -> list[dict[str, Any]]:
    """Every message of a server frame: one, or several events back to back (version 2)."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(data) or 1)
    unpacker.feed(data)
    messages: list[dict[str, Any]] = []
    for obj in unpacker:
        if not isinstance(obj, dict):
            raise ValueError("server frame holds something other than a map")
        messages.append(obj)
    if not messages:
        raise ValueError("empty server frame")
    return messages
