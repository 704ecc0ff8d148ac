"""Which client message goes to which kind of actor, who may send it, and what its body must hold.

One table keyed by message type (no chain of ifs). The gateway checks here, before any actor sees a
message, that the type is known, the sender's kind may send it, the ``to`` address is of the right
kind and one this client may address, and the body's fields are present and well typed. The target
actor then applies the business rules (roles in that area, the call's state).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors import addresses, refusals
from actors.principal import Principal
from gateway.protocol import ProtocolError
from runtime.address import Address

STAFF = frozenset({"staff"})
ROOM_MEMBERS = frozenset({"staff", "caller", "guest"})
ANYONE = frozenset({"staff", "caller", "guest"})
CALLER = frozenset({"caller"})
STAFF_AND_CALLER = frozenset({"staff", "caller"})


#: Area ids are SQLite rowids: at most 18 ASCII digits stays inside a signed 64-bit integer.
MAX_AREA_ID_DIGITS = 18
#: Caller ids are short ASCII tokens; nothing else may reach the area's lookup.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
AREA_ID_PATTERN = re.compile(rf"[0-9]{{1,{MAX_AREA_ID_DIGITS}}}", re.ASCII)


@dataclass(frozen=True)
class Field:
    kind: type
    required: bool = True
    max_len: int = 256
    #: For strings: the whole value must match (ids as ASCII digits or tokens, not ``"²"``).
    pattern: re.Pattern[str] | None = None
    #: For structured values: returns what is wrong with the value, None if it is usable.
    check: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class Route:
    target: str  # address kind: addresses.AREA, addresses.ROOM, addresses.SYSTEM
    senders: frozenset[str]
    fields: dict[str, Field] = field(default_factory=dict)
    #: A fixed actor (one per node, e.g. ``notices``): the message goes there whatever ``to`` says.
    fixed: Address | None = None


_ID = Field(str, max_len=64, pattern=TOKEN_PATTERN)
_AREA_ID = Field(str, max_len=MAX_AREA_ID_DIGITS, pattern=AREA_ID_PATTERN)
_SDP = Field(str, max_len=60_000)

#: ``media.view`` (issue 11): at most a 60-person call's tiles, a few pins, sizes in CSS pixels.
MAX_VIEW_SHOWN = 64
MAX_VIEW_PINNED = 4
MAX_VIEW_PX = 8192


def _view_size(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"w", "h"}
        and all(type(v) is int and 0 <= v <= MAX_VIEW_PX for v in value.values())
    )


def _check_shown(value: Any) -> str | None:
    """``{peer id: {"w": px, "h": px}}``, at most MAX_VIEW_SHOWN peers."""
    if len(value) > MAX_VIEW_SHOWN:
        return f"shows more than {MAX_VIEW_SHOWN} peers"
    for peer, size in value.items():
        if not isinstance(peer, str) or TOKEN_PATTERN.fullmatch(peer) is None:
            return "names a peer that is not a valid identifier"
        if not _view_size(size):
            return f'sizes must be {{"w": px, "h": px}} of whole pixels up to {MAX_VIEW_PX}'
    return None


def _check_pinned(value: Any) -> str | None:
    if len(value) > MAX_VIEW_PINNED:
        return f"pins more than {MAX_VIEW_PINNED} peers"
    if not all(isinstance(p, str) and TOKEN_PATTERN.fullmatch(p) for p in value):
        return "names a peer that is not a valid identifier"
    return None


#: ``precheck.result`` (issue 16): the caller's pre-call check, shown next to them on the console.
PRECHECK_OUTCOMES = frozenset({"ok", "failed", "unknown"})
PRECHECK_NETWORK_KEYS = frozenset({"udp", "tcp", "relay", "rtt_ms"})
#: A round trip longer than a minute is not a measurement worth showing.
MAX_PRECHECK_RTT_MS = 60_000


def _check_outcome(value: Any) -> str | None:
    if value not in PRECHECK_OUTCOMES:
        return "must be one of " + ", ".join(sorted(PRECHECK_OUTCOMES))
    return None


def _check_network(value: Any) -> str | None:
    """``{"udp": bool, "tcp": bool, "relay": bool, "rtt_ms": int | null}``, nothing else."""
    if set(value) != PRECHECK_NETWORK_KEYS:
        return "must hold exactly " + ", ".join(sorted(PRECHECK_NETWORK_KEYS))
    if not all(type(value[k]) is bool for k in ("udp", "tcp", "relay")):
        return "udp, tcp and relay must be true or false"
    rtt = value["rtt_ms"]
    if rtt is not None and not (type(rtt) is int and 0 <= rtt <= MAX_PRECHECK_RTT_MS):
        return f"rtt_ms must be null or whole milliseconds up to {MAX_PRECHECK_RTT_MS}"
    return None


_OUTCOME = Field(str, max_len=16, check=_check_outcome)

#: Staff user ids are SQLite rowids too (issue 14: ``ondemand.assign``).
_USER_ID = Field(str, max_len=MAX_AREA_ID_DIGITS, pattern=AREA_ID_PATTERN)

#: Group consultations (issue 12): member ids (``p-<participant>`` / ``s-<user id>``), at most
#: a full session's participants in one ``group.admit``.
MAX_GROUP_ADMIT = 60
_MEMBER = Field(str, max_len=64, pattern=TOKEN_PATTERN)


def _check_members(value: Any) -> str | None:
    """1 to MAX_GROUP_ADMIT member ids, each a valid identifier."""
    if not 1 <= len(value) <= MAX_GROUP_ADMIT:
        return f"must name 1 to {MAX_GROUP_ADMIT} people"
    if not all(isinstance(m, str) and TOKEN_PATTERN.fullmatch(m) for m in value):
        return "names someone by an id that is not a valid identifier"
    return None


#: Breakout rooms (issue 12; docs/protocol.md "Breakout rooms"): at most 20 rooms of 60-character
#: names; an assignment names at most a full session's participants.
MAX_BREAKOUT_ROOMS = 20
MAX_BREAKOUT_NAME = 60
_BREAKOUT_ROOM = Field(str, max_len=64, pattern=TOKEN_PATTERN)


def _check_room_names(value: Any) -> str | None:
    if len(value) > MAX_BREAKOUT_ROOMS:
        return f"names more than {MAX_BREAKOUT_ROOMS} rooms"
    if not all(isinstance(n, str) and len(n) <= MAX_BREAKOUT_NAME for n in value):
        return f"must be texts of at most {MAX_BREAKOUT_NAME} characters"
    return None


def _check_assignments(value: Any) -> str | None:
    """``{member id: room id | null}``, at most a full session's participants."""
    if len(value) > MAX_GROUP_ADMIT:
        return f"assigns more than {MAX_GROUP_ADMIT} people"
    for member, room in value.items():
        if not isinstance(member, str) or TOKEN_PATTERN.fullmatch(member) is None:
            return "names someone by an id that is not a valid identifier"
        if room is not None and (not isinstance(room, str) or not TOKEN_PATTERN.fullmatch(room)):
            return "names a room by an id that is not a valid identifier"
    return None


ROUTES: dict[str, Route] = {
    # Diagnostics: a round trip through an actor (latency probes, benchmarks, the load tester).
    "echo": Route(addresses.SYSTEM, ANYONE, {"data": Field(object, required=False)}),
    # Provider dashboard over one waiting area.
    "area.watch": Route(addresses.AREA, STAFF),
    "area.unwatch": Route(addresses.AREA, STAFF),
    "caller.join": Route(addresses.AREA, STAFF, {"caller_id": _ID}),
    "caller.hold": Route(addresses.AREA, STAFF, {"caller_id": _ID}),
    "caller.transfer": Route(addresses.AREA, STAFF, {"caller_id": _ID, "target_area": _AREA_ID}),
    "caller.end": Route(addresses.AREA, STAFF, {"caller_id": _ID}),
    "area.clear_unconnected": Route(addresses.AREA, STAFF),
    # Inside a room (a caller's private room, once joined a call).
    "room.enter": Route(addresses.ROOM, ROOM_MEMBERS, {"announce": Field(bool, required=False)}),
    "room.leave": Route(addresses.ROOM, ROOM_MEMBERS),
    "chat.send": Route(addresses.ROOM, ROOM_MEMBERS, {"text": Field(str, max_len=2000)}),
    "media.offer": Route(addresses.ROOM, ROOM_MEMBERS, {"sdp": _SDP}),
    "media.leave": Route(addresses.ROOM, ROOM_MEMBERS),
    "media.view": Route(
        addresses.ROOM,
        ROOM_MEMBERS,
        {
            "shown": Field(dict, check=_check_shown),
            "pinned": Field(list, required=False, check=_check_pinned),
        },
    ),
    "media.state": Route(
        addresses.ROOM, ROOM_MEMBERS, {"audio": Field(bool), "video": Field(bool)}
    ),
    "precheck.result": Route(
        addresses.ROOM,
        CALLER,
        {
            "camera": _OUTCOME,
            "microphone": _OUTCOME,
            "speaker": _OUTCOME,
            "network": Field(dict, check=_check_network),
        },
    ),
    "call.invite": Route(addresses.ROOM, STAFF, {"label": Field(str, required=False, max_len=80)}),
    "call.hold": Route(addresses.ROOM, STAFF),
    "call.end": Route(addresses.ROOM, STAFF),
    # A group session's call (issue 12; docs/protocol.md "Group consultations"): participants
    # may send them all; the call refuses moderator frames from them (``not_moderator``).
    "group.admit": Route(addresses.ROOM, ROOM_MEMBERS, {"ids": Field(list, check=_check_members)}),
    "group.admit_all": Route(addresses.ROOM, ROOM_MEMBERS),
    "group.send_back": Route(addresses.ROOM, ROOM_MEMBERS, {"id": _MEMBER}),
    "group.remove": Route(addresses.ROOM, ROOM_MEMBERS, {"id": _MEMBER}),
    "group.lock": Route(addresses.ROOM, ROOM_MEMBERS, {"locked": Field(bool)}),
    "group.mute": Route(addresses.ROOM, ROOM_MEMBERS, {"id": _MEMBER}),
    "group.mute_all": Route(addresses.ROOM, ROOM_MEMBERS),
    "group.ask_unmute": Route(addresses.ROOM, ROOM_MEMBERS, {"id": _MEMBER}),
    "group.camera_off": Route(addresses.ROOM, ROOM_MEMBERS, {"id": _MEMBER}),
    "group.spotlight": Route(
        addresses.ROOM,
        ROOM_MEMBERS,
        {"id": Field(str, required=False, max_len=64, pattern=TOKEN_PATTERN)},
    ),
    "group.hand": Route(addresses.ROOM, ROOM_MEMBERS, {"raised": Field(bool)}),
    "group.hand_lower": Route(addresses.ROOM, ROOM_MEMBERS, {"id": _MEMBER}),
    "group.chat_private": Route(
        addresses.ROOM, ROOM_MEMBERS, {"to": _MEMBER, "text": Field(str, max_len=2000)}
    ),
    "group.end": Route(addresses.ROOM, ROOM_MEMBERS),
    # Breakout rooms: the group call forwards them to the session's breakout desk, which refuses
    # the moderators' frames from participants (``not_moderator``); ``group.breakout.help`` also
    # reaches a breakout room's own call, from its participants.
    "group.breakout.state": Route(addresses.ROOM, ROOM_MEMBERS),
    "group.breakout.create": Route(
        addresses.ROOM,
        ROOM_MEMBERS,
        {"count": Field(int), "names": Field(list, required=False, check=_check_room_names)},
    ),
    "group.breakout.rename": Route(
        addresses.ROOM,
        ROOM_MEMBERS,
        {"room": _BREAKOUT_ROOM, "name": Field(str, max_len=MAX_BREAKOUT_NAME)},
    ),
    "group.breakout.assign": Route(
        addresses.ROOM,
        ROOM_MEMBERS,
        {
            "mode": Field(str, max_len=16),
            "assignments": Field(dict, required=False, check=_check_assignments),
        },
    ),
    "group.breakout.choose": Route(addresses.ROOM, ROOM_MEMBERS, {"room": _BREAKOUT_ROOM}),
    "group.breakout.open": Route(addresses.ROOM, ROOM_MEMBERS, {"duration": Field(int)}),
    "group.breakout.extend": Route(addresses.ROOM, ROOM_MEMBERS, {"seconds": Field(int)}),
    "group.breakout.broadcast": Route(
        addresses.ROOM, ROOM_MEMBERS, {"text": Field(str, max_len=2000)}
    ),
    "group.breakout.move": Route(
        addresses.ROOM,
        ROOM_MEMBERS,
        {
            "id": Field(str, max_len=64, pattern=TOKEN_PATTERN),
            "room": Field(str, required=False, max_len=64, pattern=TOKEN_PATTERN),
        },
    ),
    "group.breakout.help": Route(addresses.ROOM, ROOM_MEMBERS),
    "group.breakout.close": Route(addresses.ROOM, ROOM_MEMBERS),
    # On-demand queue of one organisation (issue 14; docs/protocol.md "On-demand").
    "ondemand.watch": Route(addresses.ONDEMAND_KIND, STAFF),
    "ondemand.unwatch": Route(addresses.ONDEMAND_KIND, STAFF),
    "ondemand.oncall": Route(addresses.ONDEMAND_KIND, STAFF, {"on": Field(bool)}),
    "ondemand.claim": Route(addresses.ONDEMAND_KIND, STAFF, {"request_id": _ID}),
    "ondemand.assign": Route(
        addresses.ONDEMAND_KIND, STAFF, {"request_id": _ID, "user_id": _USER_ID}
    ),
    "ondemand.decline": Route(
        addresses.ONDEMAND_KIND,
        STAFF,
        {"request_id": _ID, "reason": Field(str, required=False, max_len=500)},
    ),
    # The patient's side of an on-demand session, in their own room.
    "ondemand.step": Route(addresses.ROOM, CALLER, {"step": Field(int), "values": Field(dict)}),
    "ondemand.cancel": Route(addresses.ROOM, CALLER),
    "session.start": Route(addresses.ROOM, STAFF_AND_CALLER),
    # The staff bell (issue 14).
    "notices.subscribe": Route(addresses.NOTICES, STAFF, fixed=addresses.NOTICES),
    "notices.read": Route(addresses.NOTICES, STAFF, {"id": Field(int)}, fixed=addresses.NOTICES),
    # A provider's pending Consult Now links, live (issue 13).
    "consult.watch": Route(addresses.CONSULT, STAFF, fixed=addresses.CONSULT),
    "consult.unwatch": Route(addresses.CONSULT, STAFF, fixed=addresses.CONSULT),
    # Meeting rooms and the user room in use, live on the console (issue 13).
    "meetings.watch": Route(addresses.MEETINGS, STAFF, fixed=addresses.MEETINGS),
    "meetings.unwatch": Route(addresses.MEETINGS, STAFF, fixed=addresses.MEETINGS),
}


def resolve(
    route_type: str, to: str | None, principal: Principal, request_id: int | None
) -> tuple[Route, Address]:
    """Return the route and the target address, or raise ``ProtocolError``."""
    route = ROUTES.get(route_type)
    if route is None:
        raise ProtocolError(refusals.UNKNOWN_TYPE, f"no message type {route_type!r}", request_id)
    if principal.kind not in route.senders:
        raise ProtocolError(
            refusals.FORBIDDEN, f"{principal.kind} clients may not send {route_type}", request_id
        )
    if route.target == addresses.SYSTEM:
        return route, addresses.ECHO
    if route.fixed is not None:
        return route, route.fixed
    if principal.kind != "staff":
        # Service users and guests can only ever address their own room.
        own = addresses.room(str(principal.room_id))
        if to not in (None, own) or route.target != addresses.ROOM:
            raise ProtocolError(
                refusals.FORBIDDEN, "you may only address your own room", request_id
            )
        return route, own
    address = Address(to) if to is not None else None
    if address is None or not address.is_kind(route.target):
        raise ProtocolError(
            refusals.BAD_ADDRESS,
            f"{route_type} must be addressed to a {route.target}/<id>",
            request_id,
        )
    return route, address


def validate_body(route: Route, body: dict[str, Any], request_id: int | None) -> None:
    for name, spec in route.fields.items():
        value = body.get(name)
        if value is None:
            if spec.required:
                raise ProtocolError(
                    refusals.MISSING_FIELD, f"body field {name!r} is required", request_id
                )
            continue
        if spec.kind is object:
            continue
        if spec.kind is bool:
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, spec.kind) and not isinstance(value, bool)
        if not ok:
            raise ProtocolError(
                refusals.BAD_FIELD, f"body field {name!r} must be {spec.kind.__name__}", request_id
            )
        if isinstance(value, str):
            _check_text(name, value, spec, request_id)
        if spec.check is not None:
            problem = spec.check(value)
            if problem is not None:
                raise ProtocolError(
                    refusals.BAD_FIELD, f"body field {name!r} {problem}", request_id
                )


def _check_text(name: str, value: str, spec: Field, request_id: int | None) -> None:
    """Length, encodability (JSON may carry lone surrogates) and the field's pattern."""
    if len(value) > spec.max_len:
        raise ProtocolError(
            refusals.BAD_FIELD, f"body field {name!r} is longer than {spec.max_len}", request_id
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(
            refusals.BAD_FIELD, f"body field {name!r} is not valid text", request_id
        ) from None
    if spec.pattern is not None and spec.pattern.fullmatch(value) is None:
        raise ProtocolError(
            refusals.BAD_FIELD, f"body field {name!r} is not a valid identifier", request_id
        )
