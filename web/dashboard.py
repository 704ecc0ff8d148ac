"""The console's waiting-area section (who waits, live), and the staff side of a call.

Both are thin: they render who the staff member is and which areas or room to talk to, and the
browser does the rest over the websocket gateway (``area.watch``, ``caller.join``,
``room.enter`` ...), where every rule is enforced by the area and room actors themselves.
``/dashboard`` was the live list's own page; it now shows the console, so old links still work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import trio
from quart import Blueprint, render_template

from actors import addresses
from actors.messages import AreasFor, AreaSummary, FindRoomPage
from actors.principal import Principal
from actors.staff.directory import AreaSummary as GrantedArea
from actors.staff.directory import ListMyAreas
from runtime import Refusal
from web import console, security

blueprint = Blueprint("dashboard", __name__)

_ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
#: The waiting-area section comes first: it is where most of the work is.
WAITING_AREAS_ORDER = 10


async def load_waiting_areas(principal: Principal) -> Mapping[str, object] | None:
    """The areas this person is a provider in (live lists), and the others they hold a grant in.

    The live list's areas come from the areas host (``AreasFor``: provider role); the unit names,
    kinds and whether an area is switched on come from the directory (``ListMyAreas``).
    """
    replies: dict[str, object] = {}

    async def ask(key: str, address: str, message: object) -> None:
        replies[key] = await security.ask(address, message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, "live", addresses.AREAS, AreasFor(principal))
        nursery.start_soon(ask, "granted", addresses.DIRECTORY, ListMyAreas(principal))
    live_reply, granted_reply = replies["live"], replies["granted"]
    live = sorted(
        (a for a in live_reply if isinstance(a, AreaSummary))
        if isinstance(live_reply, list)
        else [],
        key=lambda a: (a.unit_id, a.name),
    )
    granted = (
        [a for a in granted_reply if isinstance(a, GrantedArea)]
        if isinstance(granted_reply, tuple)
        else []
    )
    info = {a.area_id: a for a in granted}
    live_ids = {str(a.id) for a in live}
    others = [a for a in granted if a.area_id not in live_ids]
    # Transfer targets: every area of the same unit this provider sees; the target area decides
    # (referrer role) whether the transfer is allowed.
    targets = {a.id: [b for b in live if b.unit_id == a.unit_id and b.id != a.id] for a in live}
    return {"areas": live, "targets": targets, "info": info, "others": others}


console.register_section("waiting_areas", WAITING_AREAS_ORDER, load_waiting_areas)


@blueprint.get("/dashboard")
async def dashboard() -> str:
    return await console.render_console(await security.require_staff())


@blueprint.get("/call/<room_id>")
async def call(room_id: str) -> str:
    principal = await security.require_staff()
    missing = security.WebError(404, "No such call", "This call does not exist.")
    if not _ROOM_ID.match(room_id):
        raise missing
    try:  # another organisation's call gets the page of a call that does not exist (issue 15)
        await security.ask(addresses.ROOMS, FindRoomPage(principal, room_id, "caller"))
    except Refusal:
        raise missing from None
    return await render_template("staff/call.html", room_id=room_id, role="staff")
