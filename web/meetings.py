"""Pages of meeting rooms and user rooms: the staff call pages, the guest link, administration.

Thin like every page: each asks the ``meetings`` host (which decides every rule) and renders the
reply; the call itself is the shared call page (``_room.html``, ``room.js``) over the websocket.

* ``/meetings/<id>``: a member enters a meeting room from the console (refused without the role,
  for an archived room, for another organisation's room, which answers like a missing one).
* ``/me/room``: the signed-in staff member's own user room; only its owner gets in.
* ``/m/<link>``: a meeting room's guest link; the guest gives a name (POST) and gets the call page
  with a token of their own in the page, never in a URL. ``/m`` is that page after a reload.
* ``/admin/meetings``: administrators create, rename, archive meeting rooms, rotate guest links,
  and create and archive user rooms (each a form: post, then redirect with a fixed message).

The console shows the meeting rooms a member may enter, who is in each, and the user room
(sections ``meeting_rooms`` and ``user_room``); every staff page's menu lists the user room.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from quart import Blueprint, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import addresses, refusals
from actors.meetings.messages import (
    ArchiveMeetingRoom,
    ArchiveUserRoom,
    CreateMeetingRoom,
    CreateUserRoom,
    DescribeGuestLink,
    EnterMeetingRoom,
    EnterUserRoom,
    GuestEnter,
    GuestLinkInfo,
    ListMeetingSetup,
    MeetingRoomsFor,
    MeetingRoomView,
    MeetingSetupView,
    RenameMeetingRoom,
    RotateGuestLink,
    UserRoomFor,
    UserRoomView,
)
from actors.messages import GuestPass
from actors.principal import Principal
from runtime import Refusal
from web import console, security
from web.i18n import N_

blueprint = Blueprint("meetings", __name__)

#: Guest links and room ids are url-safe tokens; anything else never reaches an actor.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Longest name a guest may give (the call trims to 80 as well).
MAX_GUEST_NAME = 80
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_GONE = 410
#: Console places (web/console.py lists the orders taken).
MEETING_ROOMS_ORDER = 30
USER_ROOM_ORDER = 40

DONE = {
    "created": "Meeting room created.",
    "renamed": "Meeting room renamed.",
    "archived": "Meeting room archived. Its guest link no longer works.",
    "rotated": "New guest link made. The old link no longer admits anyone.",
    "user_room": "User room created.",
    "user_room_archived": "User room archived.",
}


def _remote() -> str:
    return request.remote_addr or ""


def _int(value: str) -> int:
    return int(value) if value.isdigit() and len(value) <= 18 else 0


# -- staff: the call pages ----------------------------------------------------------------------


def _refused(refusal: Refusal) -> security.WebError:
    if refusal.code == refusals.FORBIDDEN:
        return security.WebError(HTTP_FORBIDDEN, "Not allowed", refusal.detail)
    if refusal.code == refusals.CLOSED:
        return security.WebError(HTTP_GONE, "This room has been archived", refusal.detail)
    return security.WebError(HTTP_NOT_FOUND, "No such room", "There is no such room.")


@blueprint.get("/meetings/<meeting_id>")
async def meeting_room(meeting_id: str) -> str:
    principal = await security.require_staff()
    number = _int(meeting_id)
    if not number:
        raise security.WebError(HTTP_NOT_FOUND, "No such room", "There is no such room.")
    try:
        room = await security.ask(addresses.MEETINGS, EnterMeetingRoom(principal, number))
    except Refusal as refusal:
        raise _refused(refusal) from None
    assert isinstance(room, MeetingRoomView)
    return await render_template("meetings/call.html", room=room, kind="meeting", role="staff")


@blueprint.get("/me/room")
async def user_room() -> str:
    principal = await security.require_staff()
    try:
        room = await security.ask(addresses.MEETINGS, EnterUserRoom(principal))
    except Refusal as refusal:
        raise _refused(refusal) from None
    assert isinstance(room, UserRoomView)
    return await render_template("meetings/call.html", room=room, kind="user", role="staff")


# -- guests: the guest link ---------------------------------------------------------------------


def _link_gone() -> security.WebError:
    return security.WebError(
        HTTP_GONE,
        N_("This link does not work"),
        N_(
            "This meeting room link is not valid any more. Ask the person who sent it "
            "for the current link."
        ),
    )


async def _describe(link: str) -> GuestLinkInfo:
    if not _TOKEN.match(link):
        raise _link_gone()
    try:
        info = await security.ask(addresses.MEETINGS, DescribeGuestLink(link))
    except Refusal:
        raise _link_gone() from None
    assert isinstance(info, GuestLinkInfo)
    return info


@blueprint.get("/m/<link>")
async def guest_link(link: str) -> tuple[str, int]:
    """The name form. Opening it starts nothing (link previews do GETs)."""
    info = await _describe(link)
    page = await render_template("meetings/guest_link.html", room=info, error=None, name="")
    return page, 200


@blueprint.post("/m/<link>")
async def guest_enter(link: str) -> tuple[str, int]:
    info = await _describe(link)
    form = await request.form
    name = form.get("name", "").strip()[:MAX_GUEST_NAME]
    if not name:
        page = await render_template(
            "meetings/guest_link.html", room=info, error=N_("Please enter your name."), name=""
        )
        return page, HTTP_BAD_REQUEST
    try:
        guest = await security.ask(addresses.MEETINGS, GuestEnter(link, name, _remote()))
    except Refusal as refusal:
        if refusal.code == refusals.CALL_FULL:
            page = await render_template(
                "meetings/guest_link.html",
                room=info,
                error=N_("This meeting is full: a meeting room holds 6 people. Try again later."),
                name=name,
            )
            return page, HTTP_CONFLICT
        raise _link_gone() from None
    assert isinstance(guest, GuestPass)
    page = await render_template(
        "meetings/guest.html", token=guest.token, room_name=guest.area_name
    )
    return page, 200


@blueprint.get("/m")
async def guest_call() -> tuple[str, int]:
    """A guest's call page after a reload: the token lives in the tab's ``sessionStorage``."""
    page = await render_template("meetings/guest.html", token="", room_name="")
    return page, 200


# -- administrators -----------------------------------------------------------------------------


async def _admin_page(principal: Principal, error: str = "", status: int = 200) -> tuple[str, int]:
    try:
        view = await security.ask(addresses.MEETINGS, ListMeetingSetup(principal))
    except Refusal as refusal:
        raise security.WebError(
            HTTP_FORBIDDEN, "Not allowed", "Only administrators can manage meeting rooms."
        ) from refusal
    assert isinstance(view, MeetingSetupView)
    units = {u.id: u.name for u in view.units}
    people = {p.id: p for p in view.staff}
    page = await render_template(
        "meetings/admin.html",
        view=view,
        units=units,
        people=people,
        done=DONE.get(request.args.get("done", ""), ""),
        error=error,
    )
    return page, status


@blueprint.get("/admin/meetings")
async def admin() -> tuple[str, int]:
    return await _admin_page(await security.require_staff())


async def _admin_post(build: Any, done: str, **path: str) -> WerkzeugResponse | tuple[str, int]:
    """Build the message from the form, ask the host, redirect; a refusal re-renders the page."""
    principal = await security.require_staff()
    form = await request.form
    try:
        await security.ask(addresses.MEETINGS, build(principal, form, **path))
    except Refusal as refusal:
        status = HTTP_FORBIDDEN if refusal.code == refusals.FORBIDDEN else HTTP_BAD_REQUEST
        return await _admin_page(principal, refusal.detail, status)
    return redirect(url_for("meetings.admin", done=done), code=303)


def _create(principal: Principal, form: MultiDict[str, str]) -> object:
    return CreateMeetingRoom(
        principal, _int(form.get("unit_id", "")), form.get("name", ""), _remote()
    )


def _rename(principal: Principal, form: MultiDict[str, str], meeting_id: str) -> object:
    return RenameMeetingRoom(principal, _int(meeting_id), form.get("name", ""), _remote())


def _archive(principal: Principal, form: MultiDict[str, str], meeting_id: str) -> object:
    return ArchiveMeetingRoom(principal, _int(meeting_id), _remote())


def _rotate(principal: Principal, form: MultiDict[str, str], meeting_id: str) -> object:
    return RotateGuestLink(principal, _int(meeting_id), _remote())


def _create_user_room(principal: Principal, form: MultiDict[str, str]) -> object:
    return CreateUserRoom(
        principal, _int(form.get("unit_id", "")), _int(form.get("user_id", "")), _remote()
    )


def _archive_user_room(principal: Principal, form: MultiDict[str, str], room_id: str) -> object:
    if not _TOKEN.match(room_id):
        raise Refusal(refusals.FORBIDDEN, "You are not an administrator here.")
    return ArchiveUserRoom(principal, room_id, _remote())


@blueprint.post("/admin/meetings/rooms")
async def create_room() -> WerkzeugResponse | tuple[str, int]:
    return await _admin_post(_create, "created")


@blueprint.post("/admin/meetings/rooms/<meeting_id>/rename")
async def rename_room(meeting_id: str) -> WerkzeugResponse | tuple[str, int]:
    return await _admin_post(_rename, "renamed", meeting_id=meeting_id)


@blueprint.post("/admin/meetings/rooms/<meeting_id>/archive")
async def archive_room(meeting_id: str) -> WerkzeugResponse | tuple[str, int]:
    return await _admin_post(_archive, "archived", meeting_id=meeting_id)


@blueprint.post("/admin/meetings/rooms/<meeting_id>/rotate")
async def rotate_link(meeting_id: str) -> WerkzeugResponse | tuple[str, int]:
    return await _admin_post(_rotate, "rotated", meeting_id=meeting_id)


@blueprint.post("/admin/meetings/user-rooms")
async def create_user_room() -> WerkzeugResponse | tuple[str, int]:
    return await _admin_post(_create_user_room, "user_room")


@blueprint.post("/admin/meetings/user-rooms/<room_id>/archive")
async def archive_user_room(room_id: str) -> WerkzeugResponse | tuple[str, int]:
    return await _admin_post(_archive_user_room, "user_room_archived", room_id=room_id)


# -- the console and the menu -------------------------------------------------------------------


async def _meeting_rooms_section(principal: Principal) -> Mapping[str, object] | None:
    rooms = await security.ask(addresses.MEETINGS, MeetingRoomsFor(principal))
    if not isinstance(rooms, tuple) or not rooms:
        return None
    return {"rooms": rooms}


async def _user_room_section(principal: Principal) -> Mapping[str, object] | None:
    room = await security.ask(addresses.MEETINGS, UserRoomFor(principal))
    if not isinstance(room, UserRoomView):
        return None
    return {"room": room}


console.register_section("meeting_rooms", MEETING_ROOMS_ORDER, _meeting_rooms_section)
console.register_section("user_room", USER_ROOM_ORDER, _user_room_section)


@blueprint.app_context_processor
async def _menu() -> dict[str, object]:
    """``my_user_room`` for the menu of every staff page (``None``: no room, or not staff)."""
    principal = security.current_principal()
    if principal is None or not principal.is_staff:
        return {"my_user_room": None}
    try:
        room = await security.ask(addresses.MEETINGS, UserRoomFor(principal))
    except (Refusal, security.WebError):
        room = None
    return {"my_user_room": room if isinstance(room, UserRoomView) else None}
