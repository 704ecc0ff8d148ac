"""The service user's pages: the arrival form, the waiting page (which becomes the call) and invites.

No personal data and no secret ever goes into a URL: the arrival reply renders the waiting page
with the caller's room token in the page, the browser keeps it (``localStorage`` per area, so a
closed tab can come back within the grace period) and rewrites the address bar to a secret-free
``/w/<slug>/wait``. Invited guests get the same treatment with ``sessionStorage`` and ``/g``.
CSRF for these anonymous forms is the double-submit cookie of :mod:`web.security`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import dates
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape
from quart import Blueprint, current_app, g, render_template, request

from actors import addresses, refusals
from actors.messages import (
    AreaPublic,
    ArrivalTicket,
    Arrive,
    CheckInvite,
    ClaimInvite,
    DescribeArea,
    FindArea,
    GuestPass,
    ReloadArea,
)
from runtime import Refusal
from runtime.address import Address
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

#: Rendered caller pages kept per app (see `_cached_page`); the oldest half goes when it is full.
MAX_CACHED_PAGES = 512
#: Stand-ins rendered into a cached page where each request's own values go (never valid values:
#: a CSRF token, a room token and ICE JSON never contain ``~``).
_CSRF_MARK = "~wr-csrf~"
_TOKEN_MARK = "~wr-token~"
_ICE_MARK = "~wr-ice~"


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


async def _area(slug: str, timeout: float = security.DIRECTORY_TIMEOUT) -> tuple[str, AreaPublic]:
    if not _TOKEN_PART.match(slug):
        raise _not_found()
    try:
        address = await security.ask(addresses.AREAS, FindArea(slug), timeout)
    except Refusal:
        raise _not_found() from None
    assert isinstance(address, str)
    try:
        info = await security.ask(address, DescribeArea(), timeout)
    except Refusal:
        raise _not_found() from None
    assert isinstance(info, AreaPublic)
    if not hmac.compare_digest(info.slug, slug):
        # This node's look-up still had a link replaced through another node: the area (which
        # every node's edit reaches) knows better. Refused, and the look-up is read again.
        with contextlib.suppress(Refusal, security.WebError):
            await security.ask(addresses.AREAS, ReloadArea(info.id))
        raise _not_found()
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


def _mark_csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="{security.CSRF_FIELD}" value="{_CSRF_MARK}">')


def _mark_ice() -> str:
    return _ICE_MARK


async def _cached_page(template: str, info: AreaPublic, **context: Any) -> str:
    """A caller page rendered once per area, language and variant, then filled in per request.

    Every arrival renders two of these pages (the form, then the waiting page), and Jinja was
    about a tenth of the server's samples at 40 arrivals/s (issue 17). What differs between two
    callers of one area is only the CSRF token, the room token and the ICE servers (fresh TURN
    credentials): the page is rendered with stand-ins for them and each request swaps in its own,
    escaped as the template would. Only anonymous visitors get cached pages (staff see their own
    header), only without a query string (the language switch links back to the path), and the
    key holds everything else a page shows (the area as the area actor described it, the locale).
    """
    if g.get("session_view") is not None or request.query_string:
        return await render_template(template, area=info, **context)
    # ``next_opening`` moves with the clock while an area is open, and neither page shows it then.
    shown = dataclasses.replace(info, next_opening=None) if info.open_now else info
    key = (template, i18n.current_locale(), request.path, repr(shown), repr(context))
    cache: dict[tuple[str, ...], str] = current_app.extensions.setdefault(
        "waitroom.patient_pages", {}
    )
    page = cache.get(key)
    if page is None:
        page = await render_template(
            template, area=info, csrf_field=_mark_csrf_field, ice_config=_mark_ice, **context
        )
        if len(cache) >= MAX_CACHED_PAGES:
            for old in list(cache)[: MAX_CACHED_PAGES // 2]:
                del cache[old]
        cache[key] = page
    if _CSRF_MARK in page:
        page = page.replace(_CSRF_MARK, str(escape(security.csrf_token())))
    if _ICE_MARK in page:
        fresh_ice = cast(Callable[[], object], current_app.jinja_env.globals["ice_config"])
        ice = htmlsafe_json_dumps(
            fresh_ice(),
            dumps=current_app.jinja_env.policies["json.dumps_function"],
        )
        page = page.replace(f'"{_ICE_MARK}"', str(ice))
    return page


async def _waiting_page(info: AreaPublic, token: str) -> str:
    if not token:
        return await _cached_page("patient/waiting.html", info, token="")
    page = await _cached_page("patient/waiting.html", info, token=_TOKEN_MARK)
    return page.replace(_TOKEN_MARK, str(escape(token)))


async def _form_page(
    info: AreaPublic, values: dict[str, str], error: str | None, status: int = 200
) -> tuple[str, int]:
    if not values and error is None and info.active and info.open_now:
        form = await _cached_page(
            "patient/arrive.html",
            info,
            values={},
            error=None,
            input_types=INPUT_TYPES,
            autocomplete=AUTOCOMPLETE,
            next_opening=None,
        )
        return form, status
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
    address, info = await _area(slug, security.SUBMIT_TIMEOUT)
    form = await request.form
    values = {str(f["key"]): form.get(str(f["key"]), "") for f in info.form_fields}
    if info.consent_text and form.get("consent") != "yes":
        return await _form_page(info, values, "Please confirm that you agree to continue.", 400)
    try:
        ticket = await security.ask(
            address, Arrive(values, request.remote_addr or ""), security.SUBMIT_TIMEOUT
        )
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
    return await _waiting_page(info, ticket.token), 200


@blueprint.get("/w/<slug>/wait")
async def waiting(slug: str) -> tuple[str, int]:
    """The waiting page without a token: the browser brings its own from ``localStorage``."""
    _, info = await _area(slug)
    return await _waiting_page(info, ""), 200


def _invite_room(token: str) -> tuple[Address, str]:
    """Who checks an invite link: the room while it runs, else the invite desk, which does the
    same storage check before the same refusal (no timing oracle of live rooms; issue 15)."""
    room_id, _, secret = token.partition(".")
    if not _TOKEN_PART.match(room_id) or not _TOKEN_PART.match(secret):
        raise _gone()
    room = addresses.room(room_id)
    return (room if room in security.registry() else addresses.INVITES), secret


@blueprint.get("/i/<token>")
async def invite(token: str) -> tuple[str, int]:
    """The landing page of an invite link. Opening it consumes nothing (link previews do GETs).
    A wrong secret gets the page a used link or an ended call gets (no oracle of live rooms)."""
    room, secret = _invite_room(token)
    try:
        await security.ask(room, CheckInvite(secret))
    except Refusal:
        raise _gone() from None
    page = await render_template("patient/invite.html", error=None, name="")
    return page, 200


@blueprint.post("/i/<token>")
async def invite_claim(token: str) -> tuple[str, int]:
    room, secret = _invite_room(token)
    form = await request.form
    name = form.get("name", "").strip()[:MAX_GUEST_NAME]
    if not name:
        page = await render_template(
            "patient/invite.html", error="Please enter your name.", name=""
        )
        return page, 400
    try:
        guest = await security.ask(room, ClaimInvite(secret, name, request.remote_addr or ""))
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
