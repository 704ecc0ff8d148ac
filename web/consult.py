"""Consult Now pages: the provider's send page and console section, and the recipient's link.

* ``/consult/new`` (staff, a provider somewhere): send a link by text message or email, and the
  provider's pending links with the time left (``consult.js`` counts down and follows
  ``consult.watch``), each with Extend and Cancel (plain forms, so they work without JavaScript).
* ``/c/<secret>``: the recipient's landing page. ``GET`` uses nothing (link previewers fetch it)
  and shows one button; ``POST`` opens the link once and answers the guest's call page, whose
  script keeps the guest token in ``sessionStorage`` and rewrites the address to ``/g``, so no
  reusable URL is left in the address bar. Expired, used or cancelled links get a page saying so
  (410) in the recipient's language: their chosen one, else the link's, else the browser's.

Every rule is the ``consult`` desk's (``actors.consult``); these views only ask and render.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from quart import Blueprint, g, redirect, render_template, request
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import addresses, refusals
from actors.consult.messages import (
    LINK_MARK,
    MINUTES_MARK,
    CancelConsultLink,
    Channel,
    CheckConsultLink,
    ConsultPass,
    DescribeLinkTimes,
    ExtendConsultLink,
    LinkStatus,
    LinkTimes,
    LinkView,
    MyConsultLinks,
    OpenConsultLink,
    SendConsultLink,
)
from actors.messages import AreasFor, AreaSummary, FindRoomPage
from actors.principal import Principal
from runtime import Refusal
from web import console, i18n, security
from web.i18n import N_

blueprint = Blueprint("consult", __name__)

#: The console lists Consult Now links after the waiting areas, group sessions and rooms.
CONSOLE_ORDER = 50
#: The desk waits for the outbox, which may wait for an SMTP server (15 s) before answering.
SEND_TIMEOUT = 35.0
#: HTTP status of a link that worked once, or was cancelled or ran out, and never will again.
GONE = 410
NOT_FOUND = 404
BAD_REQUEST = 400
MAX_NAME = 80
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_AREA_ID = re.compile(r"^[0-9]{1,18}$")

#: What the recipient is told for each state a link can no longer be opened in.
_GONE_TEXT = {
    "expired": (
        N_("This link has expired"),
        N_(
            "The link was valid for a few minutes only. Ask the person who sent it to send you "
            "a new one."
        ),
    ),
    "used": (
        N_("This link has been used"),
        N_(
            "The video call this link started is already open on another device, or has ended. "
            "A link works once. Ask the person who sent it for a new one."
        ),
    ),
    "cancelled": (
        N_("This link has been cancelled"),
        N_("The person who sent it cancelled it. If you still need to talk, ask them again."),
    ),
    "unknown": (
        N_("Link not recognised"),
        N_("There is no video call at this link. Check the link you were sent."),
    ),
}
_REFUSAL_STATE = {
    refusals.LINK_EXPIRED: "expired",
    refusals.LINK_USED: "used",
    refusals.LINK_CANCELLED: "cancelled",
}


# -- the provider's side ---------------------------------------------------------------------------
async def _provider_areas(principal: Principal) -> list[AreaSummary]:
    reply = await security.ask(addresses.AREAS, AreasFor(principal))
    areas = [a for a in reply if isinstance(a, AreaSummary)] if isinstance(reply, list) else []
    return sorted(areas, key=lambda a: (a.unit_id, a.name))


async def _my_links(principal: Principal) -> list[LinkView]:
    reply = await security.ask(addresses.CONSULT, MyConsultLinks(principal))
    return [v for v in reply if isinstance(v, LinkView)] if isinstance(reply, tuple) else []


def _not_a_provider() -> security.WebError:
    return security.WebError(
        403,
        N_("Not allowed"),
        N_("Consult Now links are sent by providers of a waiting area."),
    )


async def _send_page(
    principal: Principal,
    *,
    error: str | None = None,
    values: Mapping[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    areas = await _provider_areas(principal)
    if not areas:
        raise _not_a_provider()
    times = await security.ask(addresses.CONSULT, DescribeLinkTimes())
    assert isinstance(times, LinkTimes)
    page = await render_template(
        "consult/new.html",
        areas=areas,
        links=await _my_links(principal),
        error=error,
        values=values or {"channel": "sms", "lang": i18n.current_locale()},
        locales=i18n.LOCALES,
        locale_names={lang.code: lang.native_name for lang in i18n.languages()},
        lifetime_minutes=f"{times.lifetime_seconds / 60:g}",
        extension_minutes=f"{times.extension_seconds / 60:g}",
        max_extensions=times.max_extensions,
    )
    return page, status


def message_for(lang: str, provider: str, area: str) -> tuple[str, str]:
    """(subject, body) in the recipient's language, the body with the desk's link mark."""
    _ = i18n.translations_for(lang).ugettext
    subject: str = _("Video call now: %(area)s") % {"area": area}
    body: str = _(
        "%(provider)s (%(area)s) asks you to join a video call now. Open this link within "
        "%(minutes)s minutes and press the button: %(link)s"
    ) % {"provider": provider, "area": area, "minutes": MINUTES_MARK, "link": LINK_MARK}
    return subject, body


@blueprint.get("/consult/new")
async def send_page() -> tuple[str, int]:
    return await _send_page(await security.require_staff())


@blueprint.post("/consult/new")
async def send() -> tuple[str, int] | WerkzeugResponse:
    from web.app import public_url  # web.app imports this module

    principal = await security.require_staff()
    form = await request.form
    values = {
        key: form.get(key, "").strip()
        for key in ("area_id", "channel", "recipient", "label", "lang")
    }
    areas = {str(a.id): a for a in await _provider_areas(principal)}
    if not areas:
        raise _not_a_provider()
    area = areas.get(values["area_id"]) if _AREA_ID.match(values["area_id"]) else None
    if area is None and len(areas) == 1 and not values["area_id"]:
        area = next(iter(areas.values()))
    if area is None:
        return await _send_page(
            principal, error="Choose one of your waiting areas.", values=values, status=BAD_REQUEST
        )
    lang = values["lang"] if values["lang"] in i18n.LOCALES else i18n.DEFAULT_LOCALE
    subject, body = message_for(lang, principal.display_name, area.name)
    channel: Channel = "email" if values["channel"] == "email" else "sms"
    try:
        await security.ask(
            addresses.CONSULT,
            SendConsultLink(
                principal,
                area.id,
                channel,
                values["recipient"],
                subject,
                body,
                public_url(""),
                label=values["label"][:MAX_NAME],
                lang=lang,
                remote_addr=request.remote_addr or "",
            ),
            timeout=SEND_TIMEOUT,
        )
    except Refusal as refusal:
        return await _send_page(
            principal, error=refusal.detail.capitalize() + ".", values=values, status=BAD_REQUEST
        )
    return redirect("/consult/new", 303)


async def _change(
    message: ExtendConsultLink | CancelConsultLink,
) -> tuple[str, int] | WerkzeugResponse:
    try:
        await security.ask(addresses.CONSULT, message)
    except Refusal as refusal:
        status = NOT_FOUND if refusal.code == refusals.NOT_FOUND else BAD_REQUEST
        return await _send_page(
            message.principal, error=refusal.detail.capitalize() + ".", status=status
        )
    return redirect("/consult/new", 303)


@blueprint.post("/consult/<link_id>/extend")
async def extend(link_id: str) -> tuple[str, int] | WerkzeugResponse:
    principal = await security.require_staff()
    if not _LINK_ID.match(link_id):
        raise security.WebError(NOT_FOUND, N_("Page not found"), N_("No such link."))
    return await _change(ExtendConsultLink(principal, link_id, request.remote_addr or ""))


@blueprint.post("/consult/<link_id>/cancel")
async def cancel(link_id: str) -> tuple[str, int] | WerkzeugResponse:
    principal = await security.require_staff()
    if not _LINK_ID.match(link_id):
        raise security.WebError(NOT_FOUND, N_("Page not found"), N_("No such link."))
    return await _change(CancelConsultLink(principal, link_id, request.remote_addr or ""))


@blueprint.get("/consult/call/<room_id>")
async def provider_call(room_id: str) -> str:
    """The provider's call page (the ring's link): the call itself admits only its provider."""
    principal = await security.require_staff()
    missing = security.WebError(NOT_FOUND, N_("Page not found"), N_("No such link."))
    if not _SECRET.match(room_id):
        raise missing
    try:  # another organisation's call gets the page of a call that does not exist (issue 15)
        await security.ask(addresses.ROOMS, FindRoomPage(principal, room_id, "consult_now"))
    except Refusal:
        raise missing from None
    return await render_template("consult/staff_call.html", room_id=room_id)


async def load_section(principal: Principal) -> Mapping[str, object] | None:
    """The console's "Consult Now" section: the provider's pending links (none: the section
    still offers to send one, if they are a provider anywhere)."""
    links = await _my_links(principal)
    if not links and not await _provider_areas(principal):
        return None
    return {"links": links}


console.register_section("consult", CONSOLE_ORDER, load_section)


# -- the recipient's side --------------------------------------------------------------------------
def _speak(lang: str) -> None:
    """The page in ``lang`` unless the recipient chose a language with the switch."""
    chosen = request.cookies.get(i18n.LANG_COOKIE, "") in i18n.available_locales()
    if not chosen and lang in i18n.LOCALES:
        g.locale = lang


async def _gone_page(state: str) -> tuple[str, int]:
    title, detail = _GONE_TEXT.get(state, _GONE_TEXT["unknown"])
    page = await render_template("consult/gone.html", title=title, detail=detail, state=state)
    return page, NOT_FOUND if state == "unknown" else GONE


@blueprint.get("/c/<secret>")
async def landing(secret: str) -> tuple[str, int]:
    """Uses nothing: a link preview or a second look does not spend the link."""
    if not _SECRET.match(secret):
        return await _gone_page("unknown")
    status = await security.ask(addresses.CONSULT, CheckConsultLink(secret))
    assert isinstance(status, LinkStatus)
    _speak(status.lang)
    if status.state != "pending":
        return await _gone_page(status.state)
    page = await render_template("consult/open.html", error=None)
    return page, 200


@blueprint.post("/c/<secret>")
async def open_link(secret: str) -> tuple[str, int]:
    form = await request.form
    _speak(form.get("lang", ""))
    if not _SECRET.match(secret):
        return await _gone_page("unknown")
    name = form.get("name", "").strip()[:MAX_NAME]
    try:
        ticket = await security.ask(
            addresses.CONSULT, OpenConsultLink(secret, name, request.remote_addr or "")
        )
    except Refusal as refusal:
        return await _gone_page(_REFUSAL_STATE.get(refusal.code, "unknown"))
    assert isinstance(ticket, ConsultPass)
    page = await render_template(
        "consult/call.html", token=ticket.token, area_name=ticket.area_name
    )
    return page, 200
