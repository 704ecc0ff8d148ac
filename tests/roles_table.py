"""Which role may do what: every websocket message type and every page, for every role (issue 15).

This module IS the table: ``docs/roles.md`` is generated from it (``python -m tests.roles_table``
writes it; tests/test_role_table.py fails when the document differs, when a route in
gateway/routes.py or a page of the app is missing here, and when the server's answer to any role
differs from a cell). Cells are read from the code: the gateway's route table (which kind of
client may send a type), the actor that owns the thing (an area checks roles there, a call its
entry rule, the setup actor administrator rights) and each page's own checks.

A cell is ``ALLOWED`` (the role passes the rights checks; the request may still fail on its
body or the state of things), ``"refused <code>"`` (a websocket error code, or an HTTP status)
or ``NA``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

CALLER = "caller"
GUEST = "guest"
PROVIDER = "provider"
REFERRER = "referrer"
UNIT_ADMIN = "unit administrator"
ORG_ADMIN = "organisation administrator"
STRANGER = "stranger"
ANONYMOUS = "anonymous"
ROLES = (CALLER, GUEST, PROVIDER, REFERRER, UNIT_ADMIN, ORG_ADMIN, STRANGER, ANONYMOUS)

ALLOWED = "allowed"
NA = "n.a."

#: Who each role is in the walk (the demo organisation's areas are "A" and "B").
WHO = {
    CALLER: "a patient who arrived through A's form and is in a call with the provider",
    GUEST: "someone the provider invited into that call (`call.invite`)",
    PROVIDER: "the demo provider: provider and referrer of A and B, in the caller's call",
    REFERRER: "referrer of B only (no provider role anywhere)",
    UNIT_ADMIN: "unit administrator of the demo unit (which holds A and B)",
    ORG_ADMIN: "organisation administrator of the demo organisation",
    STRANGER: "organisation administrator and provider of another organisation",
    ANONYMOUS: "no session, no token (on the websocket: no `hello`)",
}


def refused(code: str | int) -> str:
    return f"refused {code}"


def _row(*cells: str) -> dict[str, str]:
    assert len(cells) == len(ROLES), cells
    return dict(zip(ROLES, cells, strict=True))


@dataclass(frozen=True)
class Ws:
    """One websocket message type: where the walk sends it and the cells."""

    to: str  # "area" (A), "room" (the caller's room), "ondemand" (the organisation), "fixed"
    cells: dict[str, str]
    note: str = ""


@dataclass(frozen=True)
class Page:
    cells: dict[str, str]
    note: str = ""


A = ALLOWED
R = refused

WEBSOCKET: dict[str, Ws] = {
    "echo": Ws("fixed", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "area.watch": Ws(
        "area",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "area.unwatch": Ws(
        "area", _row(R("forbidden"), R("forbidden"), A, A, A, A, A, R("hello_required"))
    ),
    "caller.join": Ws(
        "area",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "caller.hold": Ws(
        "area",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "caller.transfer": Ws(
        "area",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "caller.end": Ws(
        "area",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "area.clear_unconnected": Ws(
        "area",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "room.enter": Ws(
        "room",
        _row(
            A,
            A,
            A,
            R("forbidden"),
            R("join_confirm_needed"),
            R("join_confirm_needed"),
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "room.leave": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "chat.send": Ws(
        "room",
        _row(
            A,
            A,
            A,
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("hello_required"),
        ),
    ),
    "media.offer": Ws(
        "room",
        _row(
            A,
            A,
            A,
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("hello_required"),
        ),
    ),
    "media.leave": Ws(
        "room",
        _row(
            A,
            A,
            A,
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("hello_required"),
        ),
    ),
    "media.view": Ws(
        "room",
        _row(
            A,
            A,
            A,
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("hello_required"),
        ),
    ),
    "media.state": Ws(
        "room",
        _row(
            A,
            A,
            A,
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("hello_required"),
        ),
    ),
    "call.invite": Ws(
        "room",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("hello_required"),
        ),
    ),
    "call.hold": Ws(
        "room",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("hello_required"),
        ),
    ),
    "call.end": Ws(
        "room",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("not_in_room"),
            R("hello_required"),
        ),
    ),
    "ondemand.watch": Ws(
        "ondemand",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "ondemand.unwatch": Ws(
        "ondemand", _row(R("forbidden"), R("forbidden"), A, A, A, A, A, R("hello_required"))
    ),
    "ondemand.oncall": Ws(
        "ondemand",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "ondemand.claim": Ws(
        "ondemand",
        _row(
            R("forbidden"),
            R("forbidden"),
            A,
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "ondemand.assign": Ws(
        "ondemand",
        _row(
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "ondemand.decline": Ws(
        "ondemand",
        _row(
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            A,
            A,
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "ondemand.step": Ws(
        "room",
        _row(
            A,
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "ondemand.cancel": Ws(
        "room",
        _row(
            A,
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "precheck.result": Ws(
        "room",
        _row(
            A,
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("forbidden"),
            R("hello_required"),
        ),
    ),
    "session.start": Ws("room", _row(A, R("forbidden"), A, A, A, A, A, R("hello_required"))),
    "group.admit": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.admit_all": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.send_back": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.remove": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.lock": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.mute": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.mute_all": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.ask_unmute": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.camera_off": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.spotlight": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.hand": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.hand_lower": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.chat_private": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.end": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.state": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.create": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.rename": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.assign": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.choose": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.open": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.extend": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.broadcast": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.move": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.help": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "group.breakout.close": Ws("room", _row(A, A, A, A, A, A, A, R("hello_required"))),
    "notices.subscribe": Ws(
        "fixed", _row(R("forbidden"), R("forbidden"), A, A, A, A, A, R("hello_required"))
    ),
    "notices.read": Ws(
        "fixed", _row(R("forbidden"), R("forbidden"), A, A, A, A, A, R("hello_required"))
    ),
    "consult.watch": Ws(
        "fixed", _row(R("forbidden"), R("forbidden"), A, A, A, A, A, R("hello_required"))
    ),
    "consult.unwatch": Ws(
        "fixed", _row(R("forbidden"), R("forbidden"), A, A, A, A, A, R("hello_required"))
    ),
    "meetings.watch": Ws(
        "fixed", _row(R("forbidden"), R("forbidden"), A, A, A, A, A, R("hello_required"))
    ),
    "meetings.unwatch": Ws(
        "fixed", _row(R("forbidden"), R("forbidden"), A, A, A, A, A, R("hello_required"))
    ),
}

PAGES: dict[tuple[str, str], Page] = {
    ("GET", "/"): Page(_row(R(303), R(303), A, A, A, A, A, R(303))),
    ("GET", "/account/password"): Page(_row(R(303), R(303), A, A, A, A, A, R(303))),
    ("POST", "/account/password"): Page(_row(R(401), R(401), A, A, A, A, A, R(401))),
    ("GET", "/admin/audit"): Page(_row(R(303), R(303), R(403), R(403), R(403), A, A, R(303))),
    ("POST", "/admin/audit/verify"): Page(
        _row(R(401), R(401), R(403), R(403), R(403), A, A, R(401))
    ),
    ("GET", "/admin/meetings"): Page(_row(R(303), R(303), R(403), R(403), A, A, A, R(303))),
    ("POST", "/admin/meetings/rooms"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("POST", "/admin/meetings/rooms/<meeting_id>/archive"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("POST", "/admin/meetings/rooms/<meeting_id>/rename"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("POST", "/admin/meetings/rooms/<meeting_id>/rotate"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("POST", "/admin/meetings/user-rooms"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("POST", "/admin/meetings/user-rooms/<room_id>/archive"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("GET", "/admin/outbox"): Page(_row(R(303), R(303), R(403), R(403), R(403), A, A, R(303))),
    ("GET", "/admin/reports"): Page(
        _row(R(303), R(303), R(403), R(403), R(403), A, R(404), R(303))
    ),
    ("GET", "/admin/reports.csv"): Page(
        _row(R(303), R(303), R(403), R(403), R(403), A, R(404), R(303))
    ),
    ("GET", "/admin/reports.png"): Page(
        _row(R(303), R(303), R(403), R(403), R(403), A, R(404), R(303))
    ),
    ("GET", "/admin/setup"): Page(_row(R(303), R(303), R(403), R(403), A, A, A, R(303))),
    ("POST", "/admin/setup/areas"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("GET", "/admin/setup/areas/<int:area_id>"): Page(
        _row(R(303), R(303), R(404), R(404), A, A, R(404), R(303))
    ),
    ("POST", "/admin/setup/areas/<int:area_id>"): Page(
        _row(R(401), R(401), R(404), R(404), A, A, R(404), R(401))
    ),
    ("POST", "/admin/setup/areas/<int:area_id>/closures"): Page(
        _row(R(401), R(401), R(404), R(404), A, A, R(404), R(401))
    ),
    ("POST", "/admin/setup/areas/<int:area_id>/closures/<int:closure_id>/remove"): Page(
        _row(R(401), R(401), R(404), R(404), A, A, R(404), R(401))
    ),
    ("POST", "/admin/setup/areas/<int:area_id>/rotate-link"): Page(
        _row(R(401), R(401), R(404), R(404), A, A, R(404), R(401))
    ),
    ("POST", "/admin/setup/grants"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("POST", "/admin/setup/revoke"): Page(
        _row(R(401), R(401), R(403), R(403), A, A, R(403), R(401))
    ),
    ("POST", "/admin/setup/staff"): Page(_row(R(401), R(401), R(403), R(403), A, A, A, R(401))),
    ("POST", "/admin/setup/staff/<int:user_id>/active"): Page(
        _row(R(401), R(401), R(404), R(404), A, A, R(404), R(401))
    ),
    ("POST", "/admin/setup/staff/<int:user_id>/password"): Page(
        _row(R(401), R(401), R(404), R(404), A, A, R(404), R(401))
    ),
    ("GET", "/areas/<int:area_id>/leaflet.pdf"): Page(
        _row(R(303), R(303), A, R(404), A, A, R(404), R(303))
    ),
    ("GET", "/areas/<int:area_id>/share"): Page(
        _row(R(303), R(303), A, R(404), A, A, R(404), R(303))
    ),
    ("POST", "/areas/<int:area_id>/share"): Page(
        _row(R(401), R(401), A, R(404), A, A, R(404), R(401))
    ),
    ("GET", "/c/<secret>"): Page(
        _row(R(404), R(404), R(404), R(404), R(404), R(404), R(404), R(404))
    ),
    ("POST", "/c/<secret>"): Page(
        _row(R(404), R(404), R(404), R(404), R(404), R(404), R(404), R(404))
    ),
    ("GET", "/call/<room_id>"): Page(_row(R(303), R(303), A, A, A, A, R(404), R(303))),
    ("POST", "/consult/<link_id>/cancel"): Page(
        _row(R(401), R(401), R(404), R(403), R(404), R(404), R(404), R(401))
    ),
    ("POST", "/consult/<link_id>/extend"): Page(
        _row(R(401), R(401), R(404), R(403), R(404), R(404), R(404), R(401))
    ),
    ("GET", "/consult/call/<room_id>"): Page(
        _row(R(303), R(303), R(404), R(404), R(404), R(404), R(404), R(303))
    ),
    ("GET", "/consult/new"): Page(_row(R(303), R(303), A, R(403), A, A, A, R(303))),
    ("POST", "/consult/new"): Page(_row(R(401), R(401), A, R(403), A, A, A, R(401))),
    ("GET", "/dashboard"): Page(_row(R(303), R(303), A, A, A, A, A, R(303))),
    ("GET", "/g"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/g/<link>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("POST", "/g/<link>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/g/<link>/wait"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/group/new"): Page(_row(R(303), R(303), A, R(403), A, A, A, R(303))),
    ("POST", "/group/new"): Page(_row(R(401), R(401), A, R(403), A, A, R(404), R(401))),
    ("GET", "/group/<session_id>"): Page(_row(R(303), R(303), A, R(403), A, A, R(404), R(303))),
    ("GET", "/group/<session_id>/call"): Page(
        _row(R(303), R(303), A, R(403), A, A, R(404), R(303))
    ),
    ("GET", "/group/<session_id>/leaflet.pdf"): Page(
        _row(R(303), R(303), A, R(403), A, A, R(404), R(303))
    ),
    ("POST", "/group/<session_id>/share"): Page(
        _row(R(401), R(401), A, R(403), A, A, R(404), R(401))
    ),
    ("POST", "/group/<session_id>/register"): Page(
        _row(R(401), R(401), A, R(403), A, A, R(404), R(401))
    ),
    ("POST", "/group/<session_id>/registrations/<registration_id>/remove"): Page(
        _row(R(401), R(401), A, R(403), A, A, R(404), R(401))
    ),
    ("POST", "/group/<session_id>/rotate"): Page(
        _row(R(401), R(401), A, R(403), A, A, R(404), R(401))
    ),
    ("POST", "/group/<session_id>/cancel"): Page(
        _row(R(401), R(401), A, R(403), A, A, R(404), R(401))
    ),
    ("GET", "/healthz"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/i/<token>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("POST", "/i/<token>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/lang/<code>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/m"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/m/<link>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("POST", "/m/<link>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/me/room"): Page(_row(R(303), R(303), A, R(404), R(404), R(404), R(404), R(303))),
    ("GET", "/meetings/<meeting_id>"): Page(_row(R(303), R(303), A, R(403), A, A, R(404), R(303))),
    ("GET", "/o/<org_id>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/o/<org_id>/meet"): Page(_row(A, A, A, A, A, A, A, A)),
    ("POST", "/o/<org_id>/meet"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/o/<org_id>/meet/wait"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/ondemand"): Page(_row(R(303), R(303), A, R(403), A, A, A, R(303))),
    ("POST", "/ondemand/oncall"): Page(_row(R(401), R(401), A, R(403), A, A, A, R(401))),
    ("GET", "/ondemand/session/<room_id>"): Page(
        _row(R(303), R(303), R(404), R(404), R(404), R(404), R(404), R(303))
    ),
    ("GET", "/ondemand/settings"): Page(_row(R(303), R(303), R(403), R(403), A, A, A, R(303))),
    ("POST", "/ondemand/settings"): Page(_row(R(401), R(401), R(403), R(403), A, A, A, R(401))),
    ("GET", "/sign-in"): Page(_row(A, A, A, A, A, A, A, A)),
    ("POST", "/sign-in"): Page(_row(A, A, A, A, A, A, A, A)),
    ("POST", "/sign-out"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/w/<slug>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("POST", "/w/<slug>"): Page(_row(A, A, A, A, A, A, A, A)),
    ("GET", "/w/<slug>/wait"): Page(_row(A, A, A, A, A, A, A, A)),
}


#: Why a cell is what it is, where the code's reason is not obvious from the role.
WS_NOTES = {
    "echo": "diagnostics: a round trip through `system/echo`",
    "area.unwatch": "a no-op for anyone not watching (answers `{}`, says nothing of the area)",
    "caller.join": "the area checks the provider role (unit and organisation administrators "
    "hold it for their areas); another organisation's area is `forbidden` like a missing one",
    "room.enter": "staff other than the joined provider: `join_confirm_needed` unless invited "
    "or sent with `announce: true` (audited, and everyone in the call is told)",
    "room.leave": "a no-op for someone not in the room",
    "chat.send": "room messages need `room.enter` first: others are `not_in_room`",
    "media.offer": "allowed senders get `bad_sdp` for the walk's one-line SDP",
    "call.invite": "staff in the room only (the gateway refuses callers and guests)",
    "call.end": "closes every socket of the room with 4001",
    "ondemand.watch": "providers and administrators of the organisation; a provider must be "
    "on call",
    "ondemand.assign": "administrators only",
    "ondemand.decline": "administrators only",
    "ondemand.step": "the patient of an on-demand session; a caller room answers `unknown_type`",
    "ondemand.cancel": "as `ondemand.step`",
    "precheck.result": "the caller's own pre-call check, shown on the area's list (issue 16)",
    "session.start": "on-demand sessions only: a caller room answers `unknown_type`",
    "group.admit": "group sessions only (a caller room answers `unknown_type`); in a group "
    "call the session's moderators and the unit's administrators only: participants get "
    "`not_moderator`, other staff cannot enter (`forbidden`); see docs/protocol.md",
    "group.hand": "group sessions only, any admitted participant; a waiting one gets "
    "`not_admitted`",
    "group.chat_private": "group sessions only; between participants as the session's privacy "
    "says (`private_chat_off`)",
    "group.breakout.state": "group sessions only (a caller room answers `unknown_type`); "
    "forwarded to the session's breakout desk: create, rename, assign, open, extend, broadcast, "
    "move and close are the moderators' (participants get `not_moderator`), choose and help the "
    'participants\'; see docs/protocol.md "Breakout rooms"',
    "notices.read": "the member's own bell; the walk's id is nobody's (`not_found`)",
    "consult.watch": "the member's own Consult Now links",
    "meetings.watch": "the rooms that member may enter",
}
PAGE_NOTES = {
    ("GET", "/admin/audit"): "the administrator's own organisation only: another's area "
    "shows no rows, like a missing one",
    ("GET", "/admin/outbox"): "the administrator's own organisation only",
    ("GET", "/admin/reports"): "organisation administrators; another organisation's area is "
    "404 like a missing one",
    ("GET", "/admin/setup"): "administrators, each of their own units (the stranger: theirs)",
    ("POST", "/admin/setup/staff"): "creates staff in the administrator's own organisation",
    ("POST", "/admin/setup/grants"): "the walk grants on area A; the stranger is refused",
    ("GET", "/admin/meetings"): "administrators, their own organisation's rooms",
    ("GET", "/areas/<int:area_id>/share"): "providers of the area and its administrators; "
    "404 for others, like a missing area",
    ("GET", "/call/<room_id>"): "a page shell for staff of the call's organisation: nothing "
    "of the call is in it; `room.enter` decides who gets in; another organisation's call is 404 "
    "like a missing one",
    ("GET", "/consult/call/<room_id>"): "as `/call/<room_id>`, for a Consult Now call: the walk "
    "names a caller's room, so 404 for everyone alike (tests/web/test_other_org_ids.py opens "
    "a real one)",
    ("GET", "/ondemand/session/<room_id>"): "as `/consult/call/<room_id>`, for an on-demand "
    "session",
    ("GET", "/consult/new"): "providers of a waiting area (the stranger: of their own)",
    ("POST", "/consult/<link_id>/cancel"): "the sender's own links: the walk names none that "
    "exists, so providers get 404 (someone else's link too); non-providers 403",
    ("POST", "/consult/<link_id>/extend"): "as cancel",
    ("GET", "/c/<secret>"): "a public link page: the walk's secret is not a link, 404 for "
    "everyone alike",
    ("POST", "/c/<secret>"): "as GET",
    ("GET", "/me/room"): "the member's own user room: 404 for those who have none",
    ("GET", "/meetings/<meeting_id>"): "meeting members of its unit and administrators; "
    "another organisation's room is 404 like a missing one",
    ("GET", "/ondemand"): "providers and administrators (the stranger: of their own organisation)",
    ("GET", "/sign-in"): "a signed-in member is sent on (303)",
    ("POST", "/sign-in"): "401 is the failed sign-in's answer (the walk sends no password)",
    ("POST", "/sign-out"): "ends the session if there is one; 303 to sign-in for everyone",
    ("GET", "/w/<slug>"): "the public arrival form",
    ("GET", "/i/<token>"): "an unclaimed invitation; claiming needs a name (400 without)",
    ("GET", "/group/new"): "providers of a unit's waiting areas and administrators",
    ("POST", "/group/new"): "in a unit the sender may run sessions in; another organisation's "
    "unit is 404 like a missing one",
    ("GET", "/group/<session_id>"): "the session's moderators (the walk's provider created it) "
    "and its unit's administrators; another organisation's session is 404 like a missing one",
    ("GET", "/g/<link>"): "the session's public link: a name form; opening it creates nobody",
    ("POST", "/g/<link>"): "an arrival into the group waiting area (refused while locked, "
    "full or ended)",
}


def render() -> str:
    """The Markdown of docs/roles.md."""
    lines = [
        "# Roles: who may do what",
        "",
        "<!-- Generated by `python -m tests.roles_table` from tests/roles_table.py: edit that, "
        "not this. -->",
        "",
        "Every websocket message type and every page, for every role. tests/test_role_table.py "
        "walks this table against a real server (every cell, every role) and fails when the "
        "server answers otherwise, when a refusal changed anything (audit rows, callers, rooms, "
        "tokens, grants, staff, areas, outbox), or when a message type or page exists that the "
        "table does not list.",
        "",
        "**allowed**: the role passes the rights checks (the request may still be refused for "
        "its body or the state of things, e.g. `not_found` for a caller id that is not there); "
        "**refused X**: the websocket error code or HTTP status the role gets; **n.a.**: the "
        "role cannot send it at all. The walk's roles:",
        "",
    ]
    lines += [f"- **{role}**: {who}" for role, who in WHO.items()]
    lines += [
        "",
        "Refusals that must not tell things apart answer alike: another organisation's area and "
        "a missing one are both `forbidden` on the websocket and 404 on pages.",
        "",
        "## Websocket messages",
        "",
        "Sent to: area A (`area/<id>`), the caller's room (`room/<id>`), the organisation's "
        "on-demand queue (`ondemand/<org>`), or a fixed actor.",
        "",
        "| Type | Sent to | " + " | ".join(ROLES) + " | Note |",
        "|---|---|" + "---|" * len(ROLES) + "---|",
    ]
    for name, ws in WEBSOCKET.items():
        cells = " | ".join(ws.cells[r] for r in ROLES)
        lines.append(f"| `{name}` | {ws.to} | {cells} | {WS_NOTES.get(name, ws.note)} |")
    lines += [
        "",
        "## Pages",
        "",
        "Staff pages send a visitor without a session to sign in (303); a staff member without "
        "the right gets 403, or 404 where a 403 would say the thing exists. Callers and guests "
        "are visitors without a session on pages (their token lives in the tab, not a cookie).",
        "",
        "| Method | Path | " + " | ".join(ROLES) + " | Note |",
        "|---|---|" + "---|" * len(ROLES) + "---|",
    ]
    for (method, path), page in PAGES.items():
        cells = " | ".join(page.cells[r] for r in ROLES)
        note = PAGE_NOTES.get((method, path), page.note)
        lines.append(f"| {method} | `{path}` | {cells} | {note} |")
    return "\n".join(lines) + "\n"


DOC = Path(__file__).resolve().parents[1] / "docs" / "roles.md"

if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")
