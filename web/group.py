"""Group consultation pages (issue 12): staff create and share sessions, callers arrive and wait.

Thin like every page: each view asks the ``group`` desk (``actors.group``, which decides every
rule) and renders the reply; the waiting area and the call itself are one page per role driven by
``group.js`` over the websocket (``docs/protocol.md``, "Group consultations").

Staff (signed in):

* ``/group/new``: the form (unit, title, start, moderators, capacity, privacy, registrations).
* ``/group/<id>``: a session's page: its link with "Share link" (copy, email, text message), the
  leaflet, registrations, a new link, cancel, and the button into the moderator's call page.
* ``/group/<id>/call``: the moderator page (lobby, gallery, people, chat, breakout rooms).
* ``/group/<id>/leaflet.pdf``: the printed leaflet (``web.group_leaflet``).
* The console section ``group_sessions`` lists the sessions a person moderates or administers.

Callers:

* ``/g/<link>``: ``GET`` changes nothing (link previews fetch it) and shows the name form, or a
  page saying the link is unknown, locked or ended; ``POST`` arrives and answers the participant
  page with the token in the markup once; the page keeps it in ``sessionStorage`` and rewrites
  the address to ``/g/<link>/wait`` (a reload there comes back with the stored token).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import trio
from quart import Blueprint, Response, current_app, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import addresses, refusals
from actors.admin.outbox import OutboxMessage
from actors.group.messages import (
    MAX_CAPACITY,
    MAX_CONTACT,
    MAX_NAME,
    MAX_REGISTRATIONS,
    MAX_TITLE,
    ArriveGroup,
    CancelGroupSession,
    CheckGroupLink,
    CreateGroupSession,
    GroupLinkStatus,
    GroupPass,
    GroupSessionDetail,
    GroupSessionsFor,
    GroupSetupFor,
    GroupSetupView,
    Privacy,
    RegisterForSession,
    Registrant,
    RemoveRegistration,
    RotateGroupLink,
    SendGroupLink,
    SessionDetail,
    SessionSummary,
)
from actors.principal import Principal
from runtime import Refusal
from web import console, i18n, security
from web.i18n import N_

blueprint = Blueprint("group", __name__)

#: The console lists group sessions after the waiting areas (web/console.py lists the orders).
CONSOLE_ORDER = 20
#: Sending waits for the outbox's first attempt (SMTP has its own 15 s limit).
SEND_TIMEOUT = 35.0
#: How long a participant's arrival may wait for the group desk. A class joins at its start
#: time all at once, and the desk stores and audits each arrival in turn: on a slow 2-core
#: machine 55 arrivals in one burst took longer than the 5 s of other page asks, and a third of
#: them got "Service busy" (503). Queueing a few seconds more is what the person wants.
ARRIVE_TIMEOUT = 30.0
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_GONE = 410
HTTP_LOCKED = 423
#: Session links and room ids are url-safe tokens; anything else never reaches an actor.
_LINK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{6,24}$")
#: ``datetime-local`` as browsers send it (seconds optional).
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")
MAX_MESSAGE = 800
MAX_REGISTRATION_TEXT = 40_000

DONE = {
    "created": "Group session created. Share its link with the people who registered.",
    "registered": "Registrations added.",
    "unregistered": "Registration removed.",
    "rotated": "New link made. The old link no longer opens the session.",
    "cancelled": "Session cancelled. Its link now says it has ended.",
}

#: What a caller is told for each state a session's link can no longer be used in.
_GONE_TEXT = {
    "unknown": (
        N_("Link not recognised"),
        N_(
            "There is no group session at this link. Check the link you were sent, or ask the "
            "clinic for the current one."
        ),
    ),
    "locked": (
        N_("This session is locked"),
        N_(
            "The moderator has locked this group session: nobody new can join now. If you "
            "think you should be in it, contact the clinic."
        ),
    ),
    "ended": (
        N_("This session has ended"),
        N_("This group session is over. Thank you. You can close this window now."),
    ),
    "full": (
        N_("The waiting area is full"),
        N_(
            "The waiting area of this group session holds as many people as it can. Try again in a few minutes."
        ),
    ),
}
_GONE_STATUS = {"unknown": HTTP_NOT_FOUND, "locked": HTTP_LOCKED, "ended": HTTP_GONE}
_REFUSAL_STATE = {
    refusals.GROUP_LOCKED: "locked",
    refusals.CLOSED: "ended",
    refusals.ENDED: "ended",
    refusals.CALL_FULL: "full",
    refusals.FULL: "full",
    refusals.GROUP_FULL: "full",
}


def _remote() -> str:
    return request.remote_addr or ""


def _int(value: str) -> int:
    return int(value) if value.isdigit() and len(value) <= 18 else 0


def _no_such_session() -> security.WebError:
    """One answer for a missing session and another organisation's: ids are sequential."""
    return security.WebError(HTTP_NOT_FOUND, "Page not found", "There is no such group session.")


def session_link(link: str) -> str:
    from web.app import public_url  # web.app imports this module

    return public_url(f"/g/{link}")


def parse_start(local: str, zone: str) -> datetime | None:
    """The form's ``datetime-local`` in time zone ``zone`` as an aware UTC datetime, or None."""
    if not _LOCAL_TIME.match(local):
        return None
    try:
        naive = datetime.fromisoformat(local)
        tz = ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        return None
    return naive.replace(tzinfo=tz).astimezone(UTC)


def parse_registrants(text: str) -> tuple[tuple[Registrant, ...], str]:
    """One person per line, ``Name`` or ``Name, contact`` (or a tab): the registrants, or an
    error saying which line is wrong."""
    people: list[Registrant] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, _, contact = line.replace("\t", ",").partition(",")
        name, contact = name.strip(), contact.strip()
        if not name or len(name) > MAX_NAME:
            return (), f"Line {number}: give a name of at most {MAX_NAME} characters."
        if len(contact) > MAX_CONTACT:
            return (), f"Line {number}: the contact is longer than {MAX_CONTACT} characters."
        people.append(Registrant(name, contact))
    if len(people) > MAX_REGISTRATIONS:
        return (), f"At most {MAX_REGISTRATIONS} registrations per session."
    return tuple(people), ""


# -- staff: creating a session ---------------------------------------------------------------------


async def _setup(principal: Principal) -> GroupSetupView:
    view = await security.ask(addresses.GROUP, GroupSetupFor(principal))
    assert isinstance(view, GroupSetupView)
    if not view.units:
        raise security.WebError(
            HTTP_FORBIDDEN,
            "Not allowed",
            "Group sessions are created by providers of a unit and by its administrators.",
        )
    return view


async def _new_page(
    principal: Principal,
    values: Mapping[str, object] | None = None,
    error: str = "",
    status: int = 200,
) -> tuple[str, int]:
    from web.setup import time_zones

    view = await _setup(principal)
    defaults: dict[str, object] = {
        "capacity": str(MAX_CAPACITY),
        "time_zone": "UTC",
        "moderators": [str(principal.user_id)],
    }
    page = await render_template(
        "group/new.html",
        view=view,
        values={**defaults, **(values or {})},
        error=error,
        time_zones=time_zones(),
        max_capacity=MAX_CAPACITY,
        max_title=MAX_TITLE,
    )
    return page, status


@blueprint.get("/group/new")
async def new_session() -> tuple[str, int]:
    return await _new_page(await security.require_staff())


def _form_values(form: MultiDict[str, str]) -> dict[str, object]:
    return {
        "unit_id": form.get("unit_id", ""),
        "title": form.get("title", "").strip(),
        "starts_at": form.get("starts_at", ""),
        "time_zone": form.get("time_zone", "UTC"),
        "capacity": form.get("capacity", ""),
        "moderators": form.getlist("moderators"),
        "registrations": form.get("registrations", "")[:MAX_REGISTRATION_TEXT],
        "first_names_only": form.get("first_names_only") == "on",
        "hide_participant_list": form.get("hide_participant_list") == "on",
        "no_private_chat": form.get("no_private_chat") == "on",
    }


@blueprint.post("/group/new")
async def create_session() -> WerkzeugResponse | tuple[str, int]:
    principal = await security.require_staff()
    form = await request.form
    values = _form_values(form)
    title = str(values["title"])
    starts_at = parse_start(str(values["starts_at"]), str(values["time_zone"]))
    capacity = _int(str(values["capacity"]))
    registrants, problem = parse_registrants(str(values["registrations"]))
    moderator_ids = tuple(n for n in (_int(v) for v in form.getlist("moderators")) if n)
    if not title:
        problem = "Give the session a title."
    elif starts_at is None:
        problem = "Give a start date and time, and a time zone."
    elif not 1 <= capacity <= MAX_CAPACITY:
        problem = f"Capacity is 1 to {MAX_CAPACITY} participants."
    if problem:
        return await _new_page(principal, values, problem, HTTP_BAD_REQUEST)
    assert starts_at is not None
    try:
        detail = await security.ask(
            addresses.GROUP,
            CreateGroupSession(
                principal,
                _int(str(values["unit_id"])),
                title[:MAX_TITLE],
                starts_at,
                capacity=capacity,
                moderator_ids=moderator_ids,
                privacy=Privacy(
                    first_names_only=bool(values["first_names_only"]),
                    hide_participant_list=bool(values["hide_participant_list"]),
                    no_private_chat=bool(values["no_private_chat"]),
                ),
                registrants=registrants,
                remote_addr=_remote(),
            ),
        )
    except Refusal as refusal:
        if refusal.code == refusals.NOT_FOUND:  # another organisation's unit, like a missing one
            raise _no_such_session() from None
        status = HTTP_FORBIDDEN if refusal.code == refusals.FORBIDDEN else HTTP_BAD_REQUEST
        return await _new_page(principal, values, _sentence(refusal.detail), status)
    assert isinstance(detail, SessionDetail)
    return redirect(
        url_for("group.session_page", session_id=detail.summary.id, done="created"), 303
    )


def _sentence(text: str) -> str:
    text = text.strip() or "That did not work"
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


# -- staff: one session ------------------------------------------------------------------------------


async def _detail(principal: Principal, session_id: str) -> SessionDetail:
    number = _int(session_id)
    if not number:
        raise _no_such_session()
    try:
        detail = await security.ask(addresses.GROUP, GroupSessionDetail(principal, number))
    except Refusal as refusal:
        if refusal.code == refusals.FORBIDDEN:
            raise security.WebError(
                HTTP_FORBIDDEN, "Not allowed", "Only the session's moderators run it."
            ) from None
        raise _no_such_session() from None
    assert isinstance(detail, SessionDetail)
    return detail


def default_message(detail: SessionDetail, link: str, locale: str) -> tuple[str, str]:
    """(subject, body) of "Share link" in the recipient's language."""
    _ = i18n.translations_for(locale).gettext
    title = detail.summary.title
    subject = _("Your group session: %(title)s") % {"title": title}
    body = _(
        "Hello. At the time of the group session \u201c%(title)s\u201d, open this link, give "
        "your name and wait to be let in: %(link)s"
    ) % {"title": title, "link": link}
    return subject, body


async def _session_page(
    principal: Principal,
    session_id: str,
    *,
    error: str = "",
    result: OutboxMessage | None = None,
    share: Mapping[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    detail = await _detail(principal, session_id)
    link = session_link(detail.link)
    share = dict(share or {})
    locale = share.get("lang", "")
    locale = locale if locale in i18n.LOCALES else i18n.DEFAULT_LOCALE
    subject, body = default_message(detail, link, locale)
    page = await render_template(
        "group/session.html",
        detail=detail,
        link=link,
        done=DONE.get(request.args.get("done", ""), ""),
        error=error,
        result=result,
        channel=share.get("channel", "email"),
        recipient=share.get("recipient", ""),
        locale=locale,
        body=share.get("body") or body,
        subject=subject,
        locales=i18n.LOCALES,
        locale_names={lang.code: lang.native_name for lang in i18n.languages()},
    )
    return page, status


@blueprint.get("/group/<session_id>")
async def session_page(session_id: str) -> tuple[str, int]:
    return await _session_page(await security.require_staff(), session_id)


@blueprint.post("/group/<session_id>/share")
async def share(session_id: str) -> tuple[str, int]:
    principal = await security.require_staff()
    detail = await _detail(principal, session_id)
    form = await request.form
    channel = form.get("channel", "email")
    recipient = form.get("recipient", "").strip()
    locale = form.get("lang", i18n.DEFAULT_LOCALE)
    locale = locale if locale in i18n.LOCALES else i18n.DEFAULT_LOCALE
    link = session_link(detail.link)
    body = form.get("body", "").strip()[:MAX_MESSAGE]
    if link not in body:  # the one thing the message must carry
        body = f"{body}\n{link}".strip()
    keep = {"channel": channel, "recipient": recipient, "lang": locale, "body": body}
    valid = (channel == "email" and _EMAIL.match(recipient)) or (
        channel == "sms" and _PHONE.match(recipient)
    )
    if not valid:
        return await _session_page(
            principal,
            session_id,
            error="Enter a valid email address or mobile number.",
            share=keep,
            status=HTTP_BAD_REQUEST,
        )
    subject, _default = default_message(detail, link, locale)
    try:
        result = await security.ask(
            addresses.GROUP,
            SendGroupLink(
                principal, detail.summary.id, channel, recipient, subject, body, _remote()
            ),
            timeout=SEND_TIMEOUT,
        )
    except Refusal as refusal:
        return await _session_page(
            principal, session_id, error=_sentence(refusal.detail), share=keep, status=400
        )
    assert isinstance(result, OutboxMessage)
    return await _session_page(
        principal, session_id, result=result, share={"channel": channel, "lang": locale}
    )


async def _change(session_id: str, build: object, done: str) -> WerkzeugResponse | tuple[str, int]:
    principal = await security.require_staff()
    number = _int(session_id)
    if not number:
        raise _no_such_session()
    form = await request.form
    try:
        message = build(principal, number, form)  # type: ignore[operator]
        await security.ask(addresses.GROUP, message)
    except Refusal as refusal:
        if refusal.code == refusals.NOT_FOUND and done != "unregistered":
            raise _no_such_session() from None
        status = HTTP_FORBIDDEN if refusal.code == refusals.FORBIDDEN else HTTP_BAD_REQUEST
        return await _session_page(
            principal, session_id, error=_sentence(refusal.detail), status=status
        )
    return redirect(url_for("group.session_page", session_id=number, done=done), 303)


def _register(principal: Principal, number: int, form: MultiDict[str, str]) -> object:
    people, problem = parse_registrants(form.get("registrations", "")[:MAX_REGISTRATION_TEXT])
    if problem or not people:
        raise Refusal(refusals.INVALID, problem or "Give at least one name.")
    return RegisterForSession(principal, number, people, _remote())


@blueprint.post("/group/<session_id>/register")
async def register(session_id: str) -> WerkzeugResponse | tuple[str, int]:
    return await _change(session_id, _register, "registered")


@blueprint.post("/group/<session_id>/registrations/<registration_id>/remove")
async def unregister(session_id: str, registration_id: str) -> WerkzeugResponse | tuple[str, int]:
    def build(principal: Principal, number: int, form: MultiDict[str, str]) -> object:
        return RemoveRegistration(principal, number, _int(registration_id), _remote())

    return await _change(session_id, build, "unregistered")


@blueprint.post("/group/<session_id>/rotate")
async def rotate(session_id: str) -> WerkzeugResponse | tuple[str, int]:
    def build(principal: Principal, number: int, form: MultiDict[str, str]) -> object:
        return RotateGroupLink(principal, number, _remote())

    return await _change(session_id, build, "rotated")


@blueprint.post("/group/<session_id>/cancel")
async def cancel(session_id: str) -> WerkzeugResponse | tuple[str, int]:
    def build(principal: Principal, number: int, form: MultiDict[str, str]) -> object:
        return CancelGroupSession(principal, number, _remote())

    return await _change(session_id, build, "cancelled")


@blueprint.get("/group/<session_id>/call")
async def moderator_call(session_id: str) -> tuple[str, int]:
    """The moderator page; the call itself admits only the session's moderators and admins."""
    principal = await security.require_staff()
    detail = await _detail(principal, session_id)
    if detail.summary.state == "ended":
        raise security.WebError(HTTP_GONE, "This session has ended", "Its call is over.")
    page = await render_template(
        "group/moderator.html", detail=detail, link=session_link(detail.link)
    )
    return page, 200


@blueprint.get("/group/<session_id>/leaflet.pdf")
async def leaflet(session_id: str) -> Response:
    """The caller information leaflet: ``?lang=uk`` picks the language, ``?tz=`` the clock."""
    from web.group_leaflet import GroupLeaflet, render_group_leaflet

    principal = await security.require_staff()
    detail = await _detail(principal, session_id)
    lang = request.args.get("lang", "")
    locale = lang if lang in i18n.available_locales() else i18n.current_locale()
    zone = request.args.get("tz", "UTC")
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        zone = "UTC"
    content = GroupLeaflet(
        service_name=str(current_app.config.get("WAITROOM_SERVICE_NAME", "Waitroom")),
        title=detail.summary.title,
        unit_name=detail.summary.unit_name,
        link=session_link(detail.link),
        starts_at=detail.summary.starts_at,
        time_zone=zone,
        locale=locale,
    )
    body = await trio.to_thread.run_sync(render_group_leaflet, content)
    return Response(
        body,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": (
                f'inline; filename="group-leaflet-{detail.summary.id}-{locale}.pdf"'
            )
        },
    )


# -- the console -----------------------------------------------------------------------------------


async def load_section(principal: Principal) -> Mapping[str, object] | None:
    """The console's "Group sessions": the person's sessions, and "New group session" if they
    may create one; ``None`` (no section) when neither."""
    sessions = await security.ask(addresses.GROUP, GroupSessionsFor(principal))
    mine = (
        [s for s in sessions if isinstance(s, SessionSummary)]
        if isinstance(sessions, tuple)
        else []
    )
    setup = await security.ask(addresses.GROUP, GroupSetupFor(principal))
    can_create = isinstance(setup, GroupSetupView) and bool(setup.units)
    if not mine and not can_create:
        return None
    return {"sessions": mine, "can_create": can_create}


console.register_section("group_sessions", CONSOLE_ORDER, load_section)


# -- callers: the session's link ---------------------------------------------------------------------


async def _gone_page(state: str) -> tuple[str, int]:
    title, detail = _GONE_TEXT.get(state, _GONE_TEXT["unknown"])
    page = await render_template("group/gone.html", title=title, detail=detail, state=state)
    return page, _GONE_STATUS.get(state, HTTP_CONFLICT)


async def _status(link: str) -> GroupLinkStatus:
    if not _LINK.match(link):
        return GroupLinkStatus("unknown")
    # The same burst: a whole class opens and posts the link at once, behind one another's arrivals.
    status = await security.ask(addresses.GROUP, CheckGroupLink(link), timeout=ARRIVE_TIMEOUT)
    assert isinstance(status, GroupLinkStatus)
    return status


async def _join_page(
    link: str, status: GroupLinkStatus, error: str = "", name: str = "", code: int = 200
) -> tuple[str, int]:
    page = await render_template(
        "group/join.html", link=link, status=status, error=error, name=name
    )
    return page, code


@blueprint.get("/g/<link>")
async def join(link: str) -> tuple[str, int]:
    """Changes nothing: a link preview or a second look creates nobody."""
    status = await _status(link)
    if status.state in ("unknown", "locked", "ended"):
        return await _gone_page(status.state)
    return await _join_page(link, status)


@blueprint.post("/g/<link>")
async def arrive(link: str) -> tuple[str, int]:
    status = await _status(link)
    if status.state in ("unknown", "ended"):
        return await _gone_page(status.state)
    form = await request.form
    name = form.get("name", "").strip()[:MAX_NAME]
    contact = form.get("contact", "").strip()[:MAX_CONTACT]
    if not name:
        return await _join_page(link, status, N_("Please enter your name."), code=HTTP_BAD_REQUEST)
    try:
        ticket = await security.ask(
            addresses.GROUP, ArriveGroup(link, name, contact, _remote()), timeout=ARRIVE_TIMEOUT
        )
    except Refusal as refusal:
        if refusal.code == refusals.INVALID:
            return await _join_page(
                link, status, N_("Please enter your name."), name, HTTP_BAD_REQUEST
            )
        return await _gone_page(_REFUSAL_STATE.get(refusal.code, "unknown"))
    assert isinstance(ticket, GroupPass)
    return await _participant_page(link, ticket.token, ticket.title)


async def _participant_page(link: str, token: str, title: str) -> tuple[str, int]:
    page = await render_template("group/participant.html", link=link, token=token, title=title)
    return page, 200


@blueprint.get("/g/<link>/wait")
async def participant_again(link: str) -> tuple[str, int]:
    """The participant page after a reload: the token lives in the tab's ``sessionStorage``."""
    status = await _status(link)
    if status.state in ("unknown", "ended"):
        return await _gone_page(status.state)
    return await _participant_page(link, "", status.title)
