"""``/``: where staff land after sign-in, the console (:mod:`web.console`) over all their work."""

from __future__ import annotations

from quart import Blueprint, g

from web import console, security

blueprint = Blueprint("home", __name__)


@blueprint.get("/")
@security.staff_required
async def index() -> str:
    return await console.render_console(g.principal)
