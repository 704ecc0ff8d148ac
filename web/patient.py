"""The service user's pages: the arrival form, the waiting page (which becomes the call) and invites.

No personal data and no secret ever goes into a URL: the arrival reply renders the waiting page
with the caller's room token in the page, the browser keeps it (``localStorage`` per area, so a
closed tab can come back within the grace period) and rewrites the address bar to a secret-free
``/w/<slug>/wait``. Invited guests get the same treatment with ``sessionStorage`` and ``/g``.
CSRF for these anonymous forms is the double-submit cookie of :mod:`web.security`.
"""

from __future__ import annotations

import contextlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import dates
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
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
from runtime import Refusal, Registry
from runtime.address import Address
from web import caller_page_cache as pages
from web import i18n, security
from web.i18n import N_
from web.remote_areas import remote_areas

blueprint = Blueprint("patient", __name__)

#: Slugs and room ids are url-safe tokens; anything else is not ours and never reaches an actor.
_TOKEN_PART = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
#: Longest display name a guest may give (the room trims to 80 as well).
MAX_GUEST_NAME = 80
#: HTTP status for links that worked once and never will again.
GONE = 410
#: An arrival refused by the area's flood limits (issue 15).
TOO_MANY_REQUESTS = 429

#: Keys of the ASGI scope through which the lean path (:mod:`web.arrival_path`) hands these views
#: what it already learnt before it let them answer: the area it looked up (``_area`` takes it
#: once), and the refusal or failure the arrival got (the view answers it, and arrives no twice).
AREA_LOOKUP = "waitroom.area_lookup"
ARRIVAL_OUTCOME = "waitroom.arrival_outcome"


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


async def find_area(
    registry: Registry, slug: str, timeout: float = security.DIRECTORY_TIMEOUT
) -> tuple[str, AreaPublic]:
    """The area of a public link and what its page shows; a `security.WebError` (not found,
    busy) otherwise. Needs no request: the lean path looks areas up the same way. What an area
    on another node said serves this node's pages for a moment (`web.remote_areas`)."""
    if not _TOKEN_PART.match(slug):
        raise _not_found()
    try:
        address = await security.ask_through(registry, addresses.AREAS, FindArea(slug), timeout)
    except Refusal:
        raise _not_found() from None
    assert isinstance(address, str)
    kept = remote_areas(registry)
    info = kept.get(address)
    if info is None or not hmac.compare_digest(info.slug, slug):
        # Not kept, or its link was replaced meanwhile: the area itself is asked.
        try:
            info = cast(
                AreaPublic, await security.ask_through(registry, address, DescribeArea(), timeout)
            )
        except Refusal:
            raise _not_found() from None
        if address not in registry:  # on another node: kept for the next pages
            kept.keep(address, info)
    if not hmac.compare_digest(info.slug, slug):
        # This node's look-up still had a link replaced through another node: the area (which
        # every node's edit reaches) knows better. Refused, and the look-up is read again.
        with contextlib.suppress(Refusal, security.WebError):
            await security.ask_through(registry, addresses.AREAS, ReloadArea(info.id))
        raise _not_found()
    return address, info


def _hints() -> dict[str, Any]:
    """This request's ASGI scope, where the lean path leaves what it learnt."""
    return cast(dict[str, Any], request.scope)


async def _area(slug: str, timeout: float = security.DIRECTORY_TIMEOUT) -> tuple[str, AreaPublic]:
    looked = _hints().pop(AREA_LOOKUP, None)  # once: a second look must be fresh
    if isinstance(looked, security.WebError):
        raise looked
    if looked is not None:
        return cast(tuple[str, AreaPublic], looked)
    return await find_area(security.registry(), slug, timeout)


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
    return Markup(f'<input type="hidden" name="{security.CSRF_FIELD}" value="{pages.CSRF_MARK}">')


def _mark_ice() -> str:
    return pages.ICE_MARK


def ice_json() -> str:
    """This request's ICE servers as the template's ``tojson`` writes them (fresh TURN
    credentials each time)."""
    fresh_ice = cast(Callable[[], object], current_app.jinja_env.globals["ice_config"])
    return str(
        htmlsafe_json_dumps(
            fresh_ice(), dumps=current_app.jinja_env.policies["json.dumps_function"]
        )
    )


async def _cached_page(
    template: str, info: AreaPublic, context: dict[str, Any], room_token: str | None = None
) -> str:
    """A caller page from `web.caller_page_cache`, rendered on its first request. Only anonymous
    visitors get cached pages (staff see their own header), and only without a query string
    (the language switch links back to the path)."""
    if g.get("session_view") is not None or request.query_string:
        if room_token is not None:
            context = {**context, "token": room_token}
        return await render_template(template, area=info, **context)
    page_key = pages.key(template, i18n.current_locale(), request.path, info, context)
    cache = page_cache(current_app)
    page = cache.get(page_key)
    if page is None:
        page = await render_template(
            template, area=info, csrf_field=_mark_csrf_field, ice_config=_mark_ice, **context
        )
        pages.store(cache, page_key, page)
    return pages.fill(page, security.csrf_token, ice_json, room_token)


def page_cache(app: Any) -> dict[pages.Key, str]:
    """The app's cache of rendered caller pages (one per app: tests run several)."""
    cache: dict[pages.Key, str] = app.extensions.setdefault("waitroom.patient_pages", {})
    return cache


async def _waiting_page(info: AreaPublic, token: str) -> str:
    if not token:
        return await _cached_page(pages.WAITING_TEMPLATE, info, {"token": ""})
    return await _cached_page(pages.WAITING_TEMPLATE, info, pages.WAITING_WITH_TOKEN, token)


async def _form_page(
    info: AreaPublic, values: dict[str, str], error: str | None, status: int = 200
) -> tuple[str, int]:
    if not values and error is None and info.active and info.open_now:
        form = await _cached_page(pages.FORM_TEMPLATE, info, pages.EMPTY_FORM)
        return form, status
    page = await render_template(
        pages.FORM_TEMPLATE,
        area=info,
        values=values,
        error=error,
        input_types=pages.INPUT_TYPES,
        autocomplete=pages.AUTOCOMPLETE,
        next_opening=next_opening_text(info),
    )
    return page, status


def form_values(info: AreaPublic, form: Mapping[str, str]) -> dict[str, str]:
    """What an arrival form sent for the area's fields (the area actor checks them)."""
    return {str(f["key"]): form.get(str(f["key"]), "") for f in info.form_fields}


def consented(info: AreaPublic, form: Mapping[str, str]) -> bool:
    """Whether the form agreed to the area's consent text, if it has one."""
    return not info.consent_text or form.get("consent") == "yes"


@blueprint.get("/w/<slug>")
async def arrive_form(slug: str) -> tuple[str, int]:
    _, info = await _area(slug)
    return await _form_page(info, {}, None)


@blueprint.post("/w/<slug>")
async def arrive_submit(slug: str) -> tuple[str, int]:
    address, info = await _area(slug, security.SUBMIT_TIMEOUT)
    form = await request.form
    values = form_values(info, form)
    if not consented(info, form):
        return await _form_page(info, values, "Please confirm that you agree to continue.", 400)
    outcome = _hints().pop(ARRIVAL_OUTCOME, None)
    try:
        if isinstance(outcome, Refusal | security.WebError):
            raise outcome  # the lean path asked already (web.arrival_path)
        ticket = await security.ask(
            address, Arrive(values, request.remote_addr or ""), security.SUBMIT_TIMEOUT
        )
    except Refusal as refusal:
        if refusal.code in (
            refusals.CLOSED,
            refusals.INACTIVE,
        ):  # the page explains; no form to fill
            remote_areas(security.registry()).forget(address)  # what this node kept is stale
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
