"""The provider's live dashboard over their waiting areas, and the staff side of a call.

Both pages are thin: they render who the staff member is and which areas or room to talk to, and
the browser does the rest over the websocket gateway (``area.watch``, ``caller.join``,
``room.enter`` ...), where every rule is enforced by the area and room actors themselves.
"""

from __future__ import annotations

import re

from quart import Blueprint, render_template

from actors import addresses
from actors.messages import AreasFor, AreaSummary
from web import security

blueprint = Blueprint("dashboard", __name__)

_ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@blueprint.get("/dashboard")
async def dashboard() -> str:
    from web.app import public_url  # web.app imports this module

    principal = await security.require_staff()
    reply = await security.ask(addresses.AREAS, AreasFor(principal))
    areas = sorted(
        (a for a in reply if isinstance(a, AreaSummary)) if isinstance(reply, list) else [],
        key=lambda a: (a.unit_id, a.name),
    )
    # Transfer targets: every area of the same unit this provider sees; the target area decides
    # (referrer role) whether the transfer is allowed.
    targets = {a.id: [b for b in areas if b.unit_id == a.unit_id and b.id != a.id] for a in areas}
    # Each area's public link, for its "Copy link" button (the "Share link" page sends it).
    links = {a.id: public_url(f"/w/{a.slug}") for a in areas}
    return await render_template("staff/dashboard.html", areas=areas, targets=targets, links=links)


@blueprint.get("/call/<room_id>")
async def call(room_id: str) -> str:
    await security.require_staff()
    if not _ROOM_ID.match(room_id):
        raise security.WebError(404, "No such call", "This call does not exist.")
    return await render_template("staff/call.html", room_id=room_id, role="staff")
