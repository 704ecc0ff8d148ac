"""Sharing a waiting area's link: the provider's "Share link" page (copy, email, text message,
leaflet) and the administrators' outbox page.

Messages go to the ``outbox`` actor, which queues them in storage before trying, so the page can say
"sent" or "not sent yet, will retry" and nothing is lost. The message a caller receives is written
in the language the provider picks for them (the caller's, not the provider's).
"""

from __future__ import annotations

import re

from quart import Blueprint, render_template, request

from actors import addresses
from actors.admin.outbox import Channel, ListOutbox, OutboxMessage, OutboxStatus, SendLink
from actors.messages import AreaLeaflet, DescribeForLeaflet
from runtime import Refusal
from runtime.errors import ActorNotFound
from web import i18n, security

blueprint = Blueprint("share", __name__)

#: Sending waits for the first delivery attempt (SMTP has its own 15 s limit) before answering.
SEND_TIMEOUT = 25.0
#: Plausible inputs only; the real check is whether the message arrives.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{6,24}$")
MAX_MESSAGE = 800
_STATUSES: dict[str, OutboxStatus] = {"queued": "queued", "sent": "sent", "failed": "failed"}


def _no_such_area() -> security.WebError:
    """One answer for an area that does not exist and one the staff member has no role in (another
    organisation's): a different status or text would let sequential ids be probed."""
    return security.WebError(404, "Page not found", "There is no such waiting area.")


async def _area(area_id: int) -> AreaLeaflet:
    principal = await security.require_staff()
    try:
        reply = await security.ask(addresses.area(area_id), DescribeForLeaflet(principal))
    except Refusal:
        raise _no_such_area() from None
    except security.WebError as error:
        if isinstance(error.__cause__, ActorNotFound):
            raise _no_such_area() from None
        raise
    assert isinstance(reply, AreaLeaflet)
    return reply


def _link(area: AreaLeaflet) -> str:
    from web.app import public_url

    return public_url(f"/w/{area.slug}")


def default_message(area: AreaLeaflet, link: str, locale: str) -> tuple[str, str]:
    """(subject, body) in the caller's language."""
    _ = i18n.translations_for(locale).gettext
    subject = _("Your video consultation: %(area)s") % {"area": area.name}
    body = _(
        "Hello. At the time of your appointment, open this link to join the video "
        "consultation with %(area)s: %(link)s"
    ) % {"area": area.name, "link": link}
    return subject, body


async def _page(
    area: AreaLeaflet,
    *,
    channel: str = "email",
    recipient: str = "",
    locale: str = i18n.DEFAULT_LOCALE,
    body: str | None = None,
    result: OutboxMessage | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    link = _link(area)
    subject, default_body = default_message(area, link, locale)
    page = await render_template(
        "share/area.html",
        area=area,
        link=link,
        channel=channel,
        recipient=recipient,
        locale=locale,
        body=default_body if body is None else body,
        subject=subject,
        result=result,
        error=error,
        locales=i18n.LOCALES,
    )
    return page, status


@blueprint.get("/areas/<int:area_id>/share")
async def share(area_id: int) -> tuple[str, int]:
    area = await _area(area_id)
    locale = request.args.get("lang", i18n.DEFAULT_LOCALE)
    return await _page(area, locale=locale if locale in i18n.LOCALES else i18n.DEFAULT_LOCALE)


@blueprint.post("/areas/<int:area_id>/share")
async def send(area_id: int) -> tuple[str, int]:
    area = await _area(area_id)
    principal = await security.require_staff()
    form = await request.form
    channel_raw = form.get("channel", "email")
    recipient = form.get("recipient", "").strip()
    locale = form.get("lang", i18n.DEFAULT_LOCALE)
    locale = locale if locale in i18n.LOCALES else i18n.DEFAULT_LOCALE
    body = form.get("body", "").strip()[:MAX_MESSAGE]
    link = _link(area)
    if link not in body:  # the one thing the message must carry
        body = f"{body}\n{link}".strip()
    keep = {"channel": channel_raw, "recipient": recipient, "locale": locale, "body": body}
    channel: Channel
    if channel_raw == "email" and _EMAIL.match(recipient):
        channel = "email"
    elif channel_raw == "sms" and _PHONE.match(recipient):
        channel = "sms"
    else:
        return await _page(
            area, **keep, error="Enter a valid email address or phone number.", status=400
        )
    subject, _default = default_message(area, link, locale)
    try:
        result = await security.ask(
            addresses.OUTBOX,
            SendLink(
                principal,
                area.id,
                channel,
                recipient,
                subject,
                body,
                remote_addr=request.remote_addr or "",
            ),
            timeout=SEND_TIMEOUT,
        )
    except Refusal as refusal:
        return await _page(area, **keep, error=refusal.detail, status=400)
    assert isinstance(result, OutboxMessage)
    return await _page(area, channel=channel, locale=locale, result=result)


@blueprint.get("/admin/outbox")
async def outbox() -> str:
    principal = await security.require_staff()
    wanted = request.args.get("status", "")
    status: OutboxStatus | None = _STATUSES.get(wanted)
    try:
        messages = await security.ask(addresses.OUTBOX, ListOutbox(principal, status))
    except Refusal as refusal:
        raise security.WebError(
            403, "Not allowed", "Only administrators can see the outbox."
        ) from refusal
    return await render_template("admin/outbox.html", messages=messages, status=status)
