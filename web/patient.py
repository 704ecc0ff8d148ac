"""The service user's pages: the arrival form, the waiting page (which becomes the call) and invites.

No personal data and no secret ever goes into a URL: the arrival reply renders the waiting page
with the caller's room token in the page, the browser keeps it (``localStorage`` per area, so a
closed tab can come back within the grace period) and rewrites the address bar to a secret-free
``/w/<slug>/wait``. Invited guests get the same treatment with ``sessionStorage`` and ``/g``.
CSRF for these anonymous forms is the double-submit cookie of :mod:`web.security`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import dates
from quart import Blueprint, render_template, request

from actors import addresses, refusals
from actors.messages import (
    AreaPublic,
    ArrivalTicket,
    Arrive,
    ClaimInvite,
    DescribeArea,
    FindArea,
    GuestPass,
)
from runtime import Refusal
from web import i18n, security
from web.i18n import N_

blueprint = Blueprint("patient", __name__)

#: Slugs and room ids are url-safe tokens; anything else is not ours and never reaches an actor.
_TOKEN_PART = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
#: Longest display name a guest may give (the room trims to 80 as well).
MAX_GUEST_NAME = 80
#: HTTP status for links that worked once and never will again.
GONE = 410
#: An arrival refused by the area's flood limits (issue 15).
TOO_MANY_REQUESTS = 429

#: Input type per arrival-form field kind (``reason`` becomes a textarea in the template).
INPUT_TYPES = {"name": "text", "dob": "date", "phone": "tel", "reason": "text", "custom": "text"}
AUTOCOMPLETE = {"name": "name", "dob": "bday", "phone": "tel"}


def _gettext(text: str, **values: Any) -> str:
    """The ``_`` the templates use, until the i18n engineer's catalogues install the real one."""
    return text % values if values else text


@blueprint.record_once
def _install_gettext_fallback(state: Any) -> None:
    # setdefault: whatever jinja2.ext.i18n (or Babel) installed first wins over this identity.
    state.app.jinja_env.globals.setdefault("_", _gettext)
    state.app.jinja_env.globals.setdefault("gettext", _gettext)


def _not_found() -> security.WebError:
    return security.WebError(
        404,
        N_("Link not recognised"),
        N_("There is no waiting area at this link. Check the link your clinic sent you."),
    )


def _gone() -> security.WebError:
    return security.WebError(
        GONE,
        N_("This link has ended"),
        N_("This invitation has already been used, has expired, or the consultation has ended."),
    )


async def _area(slug: str) -> tuple[str, AreaPublic]:
    if not _TOKEN_PART.match(slug):
        raise _not_found()
    try:
        address = await security.ask(addresses.AREAS, FindArea(slug))
    except Refusal:
        raise _not_found() from None
    assert isinstance(address, str)
    try:
        info = await security.ask(address, DescribeArea())
    except Refusal:
        raise _not_found() from None
    assert isinstance(info, AreaPublic)
    return address, info


def next_opening_text(
    info: AreaPublic, locale: str | None = None, now: datetime | None = None
) -> str | None:
    """When the area opens next, as a sentence in the caller's language: the day and time on the
    area's own clock, written the locale's way (Babel), and how long that is from now."""
    if info.next_opening is None:
        return None
    zone = info.time_zone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = "UTC"
    code = locale or i18n.current_locale()
    babel_code = i18n.DEFAULT_LOCALE if code == i18n.PSEUDO_LOCALE else code
    opening = datetime.fromisoformat(info.next_opening)
    ahead = max(opening - (now or datetime.now(UTC)), timedelta(0))
    text: str = i18n.translations_for(code).ugettext(
        "It opens next on %(day)s at %(time)s (%(zone)s), %(from_now)s."
    )
    return text % {
        "day": i18n.format_date(opening, zone, code),
        "time": i18n.format_time(opening, zone, code),
        "zone": zone,
        "from_now": dates.format_timedelta(ahead, add_direction=True, locale=babel_code),
    }


async def _form_page(
    info: AreaPublic, values: dict[str, str], error: str | None, status: int = 200
) -> tuple[str, int]:
    page = await render_template(
        "patient/arrive.html",
        area=info,
        values=values,
        error=error,
        input_types=INPUT_TYPES,
        autocomplete=AUTOCOMPLETE,
        next_opening=next_opening_text(info),
    )
    return page, status


@blueprint.get("/w/<slug>")
async def arrive_form(slug: str) -> tuple[str, int]:
    _, info = await _area(slug)
    return await _form_page(info, {}, None)


@blueprint.post("/w/<slug>")
async def arrive_submit(slug: str) -> tuple[str, int]:
    address, info = await _area(slug)
    form = await request.form
    values = {str(f["key"]): form.get(str(f["key"]), "") for f in info.form_fields}
    if info.consent_text and form.get("consent") != "yes":
        return await _form_page(info, values, "Please confirm that you agree to continue.", 400)
    try:
        ticket = await security.ask(address, Arrive(values, request.remote_addr or ""))
    except Refusal as refusal:
        if refusal.code in (
            refusals.CLOSED,
            refusals.INACTIVE,
        ):  # the page explains; no form to fill
            _, info = await _area(slug)
            return await _form_page(info, values, None, 409)
        if refusal.code == refusals.TOO_MANY_ARRIVALS:
            too_many = N_(
                "Too many arrivals have come from your connection. Please wait a few minutes "
                "and try again, or phone the clinic."
            )
            return await _form_page(info, values, too_many, TOO_MANY_REQUESTS)
        return await _form_page(info, values, refusal.detail, 400)
    assert isinstance(ticket, ArrivalTicket)
    page = await render_template("patient/waiting.html", area=info, token=ticket.token)
    return page, 200


@blueprint.get("/w/<slug>/wait")
async def waiting(slug: str) -> tuple[str, int]:
    """The waiting page without a token: the browser brings its own from ``localStorage``."""
    _, info = await _area(slug)
    page = await render_template("patient/waiting.html", area=info, token="")
    return page, 200


def _invite_room(token: str) -> tuple[str, str]:
    room_id, _, secret = token.partition(".")
    if not _TOKEN_PART.match(room_id) or not _TOKEN_PART.match(secret):
        raise _gone()
    if addresses.room(room_id) not in security.registry():
        raise _gone()
    return room_id, secret


@blueprint.get("/i/<token>")
async def invite(token: str) -> tuple[str, int]:
    """The landing page of an invite link. Opening it consumes nothing (link previews do GETs)."""
    _invite_room(token)
    page = await render_template("patient/invite.html", error=None, name="")
    return page, 200


@blueprint.post("/i/<token>")
async def invite_claim(token: str) -> tuple[str, int]:
    room_id, secret = _invite_room(token)
    form = await request.form
    name = form.get("name", "").strip()[:MAX_GUEST_NAME]
    if not name:
        page = await render_template(
            "patient/invite.html", error="Please enter your name.", name=""
        )
        return page, 400
    try:
        guest = await security.ask(
            addresses.room(room_id), ClaimInvite(secret, name, request.remote_addr or "")
        )
    except Refusal:
        raise _gone() from None
    assert isinstance(guest, GuestPass)
    page = await render_template("patient/guest.html", token=guest.token, area_name=guest.area_name)
    return page, 200


@blueprint.get("/g")
async def guest() -> tuple[str, int]:
    """A guest's call page after a reload: the token lives in the tab's ``sessionStorage``."""
    page = await render_template("patient/guest.html", token="", area_name="")
    return page, 200
