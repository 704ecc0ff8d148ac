"""The provider home page: the waiting areas this staff member works in, with their public links."""

from __future__ import annotations

from quart import Blueprint, g, render_template

from actors import addresses
from actors.staff.directory import AreaSummary, ListMyAreas
from web import security

blueprint = Blueprint("home", __name__)


@blueprint.get("/")
@security.staff_required
async def index() -> str:
    reply = await security.ask(addresses.DIRECTORY, ListMyAreas(g.principal))
    areas = [a for a in reply if isinstance(a, AreaSummary)] if isinstance(reply, tuple) else []
    return await render_template("home.html", areas=areas)
