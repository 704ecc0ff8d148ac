"""A member of staff's own account: changing their password (issue 15).

Changing it ends every session of theirs, this one too (a stolen session must not outlive the
change), so the page sends them to sign in again with the new password.
"""

from __future__ import annotations

from quart import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import addresses
from actors.admin.setup import ChangeOwnPassword
from runtime import Refusal
from web import security

blueprint = Blueprint("account", __name__)

HTTP_BAD_REQUEST = 400


@blueprint.get("/account/password")
async def password_page() -> str:
    await security.require_staff()
    return await render_template("account/password.html", error="")


@blueprint.post("/account/password")
async def change_password() -> WerkzeugResponse | tuple[str, int]:
    principal = await security.require_staff()
    form = await request.form
    new_password = form.get("new_password", "")
    if new_password != form.get("repeat_password", ""):
        page = await render_template(
            "account/password.html", error="The two new passwords are not the same."
        )
        return page, HTTP_BAD_REQUEST
    message = ChangeOwnPassword(
        principal, form.get("current_password", ""), new_password, request.remote_addr or ""
    )
    try:
        await security.ask(addresses.SETUP, message)
    except Refusal as refusal:
        page = await render_template("account/password.html", error=refusal.detail)
        return page, HTTP_BAD_REQUEST
    response = redirect(url_for("auth.sign_in", changed="password"), code=303)
    security.clear_session_cookie(response)
    return response
