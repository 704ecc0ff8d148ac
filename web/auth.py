"""Staff sign-in and sign-out pages: the only views that create or end a web session."""

from __future__ import annotations

from urllib.parse import urlsplit

from quart import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import addresses, refusals
from actors.staff.directory import SessionInfo, SignOut
from actors.staff.signin import SignIn
from runtime import Refusal
from services.throttle import WINDOW_SECONDS
from web import security

blueprint = Blueprint("auth", __name__)

#: Longest username a form may send; the Directory refuses longer ones anyway.
MAX_USERNAME_LENGTH = 254
UNAUTHORIZED = 401
TOO_MANY_REQUESTS = 429
#: How long a sign-in may wait for the sign-in desk. Password checks are slow on purpose (argon2)
#: and the desk takes them in turn, so a Monday-morning burst of 100 staff queues for a few
#: seconds: with the 5 s of other page asks, two thirds of them got "Service busy" (503) in
#: bench/signin_burst.py (issue 17). The desk's own order keeps the throttle exact.
SIGN_IN_TIMEOUT = 30.0


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after sign-in is a phishing tool."""
    if not target:
        return url_for("home.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("home.index")
    if "\\" in target:
        return url_for("home.index")
    return target


@blueprint.get("/sign-in")
async def sign_in() -> str | WerkzeugResponse:
    if security.current_principal() is not None:
        return redirect(_safe_next(request.args.get("next")), code=303)
    return await render_template(
        "sign_in.html", next=request.args.get("next", ""), error=None, username=""
    )


@blueprint.post("/sign-in")
async def sign_in_submit() -> tuple[str, int] | WerkzeugResponse:
    form = await request.form
    username = form.get("username", "")[:MAX_USERNAME_LENGTH]
    password = form.get("password", "")
    target = form.get("next", "")
    try:
        info = await security.ask(
            addresses.SIGN_IN,
            SignIn(username, password, request.remote_addr or ""),
            timeout=SIGN_IN_TIMEOUT,
        )
    except Refusal as refusal:
        throttled = refusal.code == refusals.TOO_MANY_ATTEMPTS
        page = await render_template(
            "sign_in.html",
            next=target,
            username=username,
            error=(
                "Too many failed sign-ins from your network. "
                f"Wait {round(WINDOW_SECONDS / 60)} minutes and try again."
                if throttled
                else "The username or password is not right. Check them and try again."
            ),
        )
        return page, TOO_MANY_REQUESTS if throttled else UNAUTHORIZED
    assert isinstance(info, SessionInfo)
    # Whatever session this browser held before is over; the new one has a new id.
    old = security.session_cookie()
    if old:
        await security.ask(addresses.DIRECTORY, SignOut(old, request.remote_addr or ""))
    g.session_view = None
    response = redirect(_safe_next(target), code=303)
    security.set_session_cookie(response, info.session_id)
    return response


@blueprint.post("/sign-out")
async def sign_out() -> WerkzeugResponse:
    session_id = security.session_cookie()
    if session_id:
        await security.ask(addresses.DIRECTORY, SignOut(session_id, request.remote_addr or ""))
    response = redirect(url_for("auth.sign_in", signed_out=1), code=303)
    security.clear_session_cookie(response)
    return response
