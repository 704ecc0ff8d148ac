"""On-demand pages (issue 14): an organisation's public page with Meet Now, the patient's intake and
virtual waiting room, the staff On-Demand Requests list, the staff session page and the intake
settings.

Pages stay thin, as everywhere in ``web/``: the organisation's queue actor (``ondemand/<org>``,
found through the host ``ondemand``) holds every rule, and the live parts (intake steps, the list,
claim / assign / decline, Start Session, the bell) run over the websocket in the page scripts
(``ondemand-*.js``, ``notices.js``; docs/protocol.md "On-demand"). What works without JavaScript
is a form post here: the public page, Meet Now's details, the On-Call switch and the settings.
The patient's token is handed out once in the page (``data-token``), never in a URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import addresses, refusals
from actors.inbound import Inbound
from actors.messages import FindRoomPage
from actors.ondemand.messages import (
    DETAIL_EMAIL,
    DETAIL_NAME,
    DETAIL_PHONE,
    DETAIL_REGION,
    DescribePublic,
    DescribeSettings,
    FieldKind,
    FindQueue,
    OnCallStatus,
    OnDemandPublic,
    OnDemandSettings,
    RequestTicket,
    SaveSettings,
    StaffStatus,
    StartRequest,
)
from actors.principal import Principal
from runtime import ActorError, Refusal
from web import console, security
from web.i18n import N_

blueprint = Blueprint("ondemand", __name__)

#: Organisation ids are SQLite rowids: at most 18 ASCII digits (as the gateway's area ids).
_ORG_ID = re.compile(r"^[0-9]{1,18}$", re.ASCII)
_ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$", re.ASCII)
#: Longest values the Meet Now form keeps (the queue checks them again).
MAX_NAME = 80
MAX_EMAIL = 254
MAX_PHONE = 32
MAX_REGION = 80
#: A plausible email address: one @, something on both sides, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: The settings form: at most this many steps and fields per step (the queue has its own limits).
MAX_STEPS = 20
MAX_FIELDS = 30
MAX_LABEL = 200
MAX_CHOICES_TEXT = 2000
#: The alert threshold is entered in minutes; at most a day.
MAX_ALERT_MINUTES = 24 * 60
SECONDS_PER_MINUTE = 60
#: Field keys the settings form derives from a label: lower-case ASCII words joined by ``_``.
_KEY_CHARS = re.compile(r"[^a-z0-9]+")
MAX_KEY = 40
#: Where the On-Demand Requests section sits in the staff console (10 is the waiting areas).
CONSOLE_ORDER = 15
#: How long a page waits for the queue before showing "try again".
QUEUE_TIMEOUT = 5.0
FIELD_KINDS = tuple(k.value for k in FieldKind)
KIND_LABELS = {
    FieldKind.TEXT.value: "Text",
    FieldKind.CHOICE.value: "Choice (one of a list)",
    FieldKind.DATE.value: "Date",
    FieldKind.PHONE.value: "Phone number",
    FieldKind.CONSENT.value: "Consent (a box to tick)",
}
#: Messages after a successful settings save or On-Call change (fixed keys: reload-safe).
DONE = {"saved": "Settings saved.", "on": "You are on call.", "off": "You are off call."}
BAD_REQUEST = 400
FORBIDDEN = 403
CONFLICT = 409


# -- finding the organisation's queue -----------------------------------------------------------


def _no_such_org() -> security.WebError:
    return security.WebError(
        404,
        N_("Link not recognised"),
        N_("There is no clinic at this link. Check the link your clinic gave you."),
    )


async def _queue(org_id: str, timeout: float = QUEUE_TIMEOUT) -> str:
    """The address of organisation ``org_id``'s queue; 404 for anything that is not one."""
    if not _ORG_ID.match(org_id):
        raise _no_such_org()
    try:
        address = await security.ask(addresses.ONDEMAND, FindQueue(int(org_id)), timeout)
    except Refusal:
        raise _no_such_org() from None
    return str(address)


async def _public(org_id: str, timeout: float = QUEUE_TIMEOUT) -> tuple[str, OnDemandPublic]:
    address = await _queue(org_id, timeout)
    try:
        info = await security.ask(address, DescribePublic(), timeout)
    except Refusal:
        raise _no_such_org() from None
    assert isinstance(info, OnDemandPublic)
    return address, info


async def staff_status(principal: Principal | None) -> tuple[str, StaffStatus] | None:
    """The org id and On-Call status of a signed-in staff member, or None (not staff, no
    organisation, or no on-demand queue running): the header shows the switch only then."""
    if principal is None or not principal.is_staff or not principal.org_id:
        return None
    if addresses.ONDEMAND not in security.registry():
        return None
    try:
        address = await security.ask(
            addresses.ONDEMAND, FindQueue(int(principal.org_id)), QUEUE_TIMEOUT
        )
        status = await security.ask(str(address), OnCallStatus(principal), QUEUE_TIMEOUT)
    except (Refusal, security.WebError, ActorError, ValueError):
        return None
    if not isinstance(status, StaffStatus) or not (status.is_admin or status.is_provider):
        return None
    return principal.org_id, status


@blueprint.app_context_processor
async def _header() -> dict[str, Any]:
    """For base.html's header (ondemand/_header.html): the On-Call switch and the bell."""
    found = await staff_status(security.current_principal())
    return {"ondemand_org": found[0] if found else None, "ondemand": found[1] if found else None}


async def _labels(org_id: str) -> dict[str, str]:
    """Case information arrives keyed by field key; the list shows the organisation's labels."""
    _, info = await _public(org_id)
    return {f.key: f.label for step in info.steps for f in step.fields}


async def _console_section(principal: Principal) -> dict[str, object] | None:
    """The console's On-Demand Requests section: administrators and providers of an
    organisation with a queue (hidden while a provider is off call; the switch shows it)."""
    found = await staff_status(principal)
    if found is None:
        return None
    org_id, status = found
    return {"org_id": org_id, "status": status, "labels": await _labels(org_id)}


console.register_section("ondemand", order=CONSOLE_ORDER, loader=_console_section)


# -- the public page and Meet Now -----------------------------------------------------------------


@blueprint.get("/o/<org_id>")
async def public_page(org_id: str) -> tuple[str, int]:
    _, info = await _public(org_id)
    page = await render_template("ondemand/public.html", org=info, org_key=org_id)
    return page, 200


async def _meet_form(
    info: OnDemandPublic, org_id: str, values: dict[str, str], error: str | None, status: int
) -> tuple[str, int]:
    page = await render_template(
        "ondemand/meet.html", org=info, org_key=org_id, values=values, error=error
    )
    return page, status


@blueprint.get("/o/<org_id>/meet")
async def meet_form(org_id: str) -> tuple[str, int]:
    _, info = await _public(org_id)
    return await _meet_form(info, org_id, {}, None, 200)


def _check_details(values: dict[str, str]) -> str | None:
    """The first problem with the patient's details, as a message for the page (or None)."""
    if not values[DETAIL_NAME]:
        return N_("Please enter your name.")
    if values[DETAIL_EMAIL] and not _EMAIL.match(values[DETAIL_EMAIL]):
        return N_("Please enter a valid email address, or leave it empty.")
    phone_digits = sum(ch.isdigit() for ch in values[DETAIL_PHONE])
    if values[DETAIL_PHONE] and not 6 <= phone_digits <= 20:
        return N_("Please enter a phone number of 6 to 20 digits, or leave it empty.")
    return None


@blueprint.post("/o/<org_id>/meet")
async def meet_submit(org_id: str) -> tuple[str, int]:
    address, info = await _public(org_id, security.SUBMIT_TIMEOUT)
    form = await request.form
    limits = {
        DETAIL_NAME: MAX_NAME,
        DETAIL_EMAIL: MAX_EMAIL,
        DETAIL_PHONE: MAX_PHONE,
        DETAIL_REGION: MAX_REGION,
    }
    raw = {key: form.get(key, "").strip() for key in limits}
    if any(len(value) > limits[key] for key, value in raw.items()):
        return await _meet_form(info, org_id, {}, N_("Some of your answers are too long."), 400)
    if not info.enabled:
        return await _meet_form(info, org_id, raw, None, CONFLICT)
    problem = _check_details(raw)
    if problem:
        return await _meet_form(info, org_id, raw, problem, BAD_REQUEST)
    details = {key: value for key, value in raw.items() if value}
    try:
        ticket = await security.ask(
            address, StartRequest(details, request.remote_addr or ""), security.SUBMIT_TIMEOUT
        )
    except Refusal as refusal:
        if refusal.code == refusals.INACTIVE:
            _, info = await _public(org_id)
            return await _meet_form(info, org_id, raw, None, CONFLICT)
        return await _meet_form(info, org_id, raw, refusal.detail, BAD_REQUEST)
    assert isinstance(ticket, RequestTicket)
    return await _patient_page(info, org_id, ticket.token)


async def _patient_page(info: OnDemandPublic, org_id: str, token: str) -> tuple[str, int]:
    page = await render_template(
        "ondemand/patient.html",
        org=info,
        org_key=org_id,
        token=token,
        steps=info.steps,
        kinds=FieldKind,
    )
    return page, 200


@blueprint.get("/o/<org_id>/meet/wait")
async def patient_wait(org_id: str) -> tuple[str, int]:
    """The patient's page after a reload: the browser brings its token from ``localStorage``."""
    _, info = await _public(org_id)
    return await _patient_page(info, org_id, "")


# -- staff: the list, the On-Call switch, the session page ---------------------------------------


async def _staff() -> tuple[Principal, str, StaffStatus]:
    principal = await security.require_staff()
    found = await staff_status(principal)
    if found is None:
        raise security.WebError(
            FORBIDDEN,
            "Not allowed",
            "On-demand requests are for the organisation's administrators and providers.",
        )
    return principal, found[0], found[1]


@blueprint.get("/ondemand")
async def requests_page() -> tuple[str, int]:
    _, org_id, status = await _staff()
    done = DONE.get(request.args.get("done", ""))
    labels = await _labels(org_id)
    page = await render_template(
        "ondemand/requests.html", org_id=org_id, status=status, done=done, labels=labels
    )
    return page, 200


def _safe_back(target: str) -> str:
    """Only same-site paths, as sign-in's ``next``: never an open redirect."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("ondemand.requests_page")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in target):
        return url_for("ondemand.requests_page")
    return target


@blueprint.post("/ondemand/oncall")
async def set_on_call() -> WerkzeugResponse:
    """The On-Call switch without JavaScript: the same ``ondemand.oncall`` the page script sends."""
    principal, org_id, _ = await _staff()
    form = await request.form
    on = form.get("on") == "yes"
    try:
        await security.ask(
            addresses.ondemand(org_id),
            Inbound("ondemand.oncall", {"on": on}, principal, "", request.remote_addr or ""),
            QUEUE_TIMEOUT,
        )
    except Refusal as refusal:
        raise security.WebError(FORBIDDEN, "Not allowed", refusal.detail) from None
    back = _safe_back(form.get("back", ""))
    if back == url_for("ondemand.requests_page") or not on:
        back = url_for("ondemand.requests_page", done="on" if on else "off")
    return redirect(back, code=303)


@blueprint.get("/ondemand/session/<room_id>")
async def session_page(room_id: str) -> str:
    """The staff side of a claimed request; the room decides who may enter (room.enter)."""
    principal = await security.require_staff()
    missing = security.WebError(404, "No such session", "This session does not exist.")
    if not _ROOM_ID.match(room_id):
        raise missing
    try:  # another organisation's session gets the page of one that does not exist (issue 15)
        await security.ask(addresses.ROOMS, FindRoomPage(principal, room_id, "ondemand"))
    except Refusal:
        raise missing from None
    return await render_template("ondemand/session.html", room_id=room_id, role="staff")


# -- settings: the intake steps and the alert threshold ------------------------------------------


@dataclass
class DraftField:
    key: str = ""
    label: str = ""
    kind: str = FieldKind.TEXT.value
    required: bool = False
    choices: str = ""


@dataclass
class DraftStep:
    title: str = ""
    fields: list[DraftField] | None = None


def _draft_from(settings: OnDemandSettings) -> list[DraftStep]:
    return [
        DraftStep(
            s.title,
            [
                DraftField(f.key, f.label, f.kind.value, f.required, "\n".join(f.choices))
                for f in s.fields
            ],
        )
        for s in settings.steps
    ]


def field_key(label: str) -> str:
    """A field key from its label when the administrator gave none (``"Main symptom"`` ->
    ``main_symptom``); stable once saved, because the form then carries it."""
    return _KEY_CHARS.sub("_", label.lower()).strip("_")[:MAX_KEY] or "field"


def _draft_from_form(form: MultiDict[str, str]) -> list[DraftStep]:
    """The steps as the form holds them, empty rows dropped; ``s<i>_...`` and ``s<i>_f<j>_...``."""
    steps: list[DraftStep] = []
    for i in range(MAX_STEPS):
        if f"s{i}_title" not in form:
            break
        fields: list[DraftField] = []
        for j in range(MAX_FIELDS):
            prefix = f"s{i}_f{j}_"
            if prefix + "label" not in form:
                break
            label = form.get(prefix + "label", "").strip()[:MAX_LABEL]
            if not label:
                continue
            kind = form.get(prefix + "kind", FieldKind.TEXT.value)
            fields.append(
                DraftField(
                    key=form.get(prefix + "key", "").strip()[:MAX_KEY] or field_key(label),
                    label=label,
                    kind=kind if kind in FIELD_KINDS else FieldKind.TEXT.value,
                    required=form.get(prefix + "required") == "yes",
                    choices=form.get(prefix + "choices", "")[:MAX_CHOICES_TEXT],
                )
            )
        steps.append(DraftStep(form.get(f"s{i}_title", "").strip()[:MAX_LABEL], fields))
    return steps


def _apply_action(steps: list[DraftStep], action: str) -> None:
    """Add, remove and move rows (buttons named ``action``), so the page needs no script."""
    verb, _, where = action.partition(":")
    parts = [int(p) for p in where.split(":") if p.isdigit()]
    i = parts[0] if parts else -1
    if verb == "add_step" and len(steps) < MAX_STEPS:
        steps.append(DraftStep("", [DraftField()]))
    elif 0 <= i < len(steps):
        fields = steps[i].fields or []
        if verb == "add_field" and len(fields) < MAX_FIELDS:
            fields.append(DraftField())
        elif verb == "remove_step":
            del steps[i]
            return
        elif verb == "up" and i > 0:
            steps[i - 1], steps[i] = steps[i], steps[i - 1]
        elif verb == "down" and i + 1 < len(steps):
            steps[i + 1], steps[i] = steps[i], steps[i + 1]
        elif verb == "remove_field" and len(parts) > 1 and 0 <= parts[1] < len(fields):
            del fields[parts[1]]
        steps[i].fields = fields


def _steps_message(steps: list[DraftStep]) -> list[dict[str, Any]]:
    return [
        {
            "title": s.title,
            "fields": [
                {
                    "key": f.key,
                    "label": f.label,
                    "kind": f.kind,
                    "required": f.required,
                    "choices": [c.strip() for c in f.choices.splitlines() if c.strip()],
                }
                for f in s.fields or []
            ],
        }
        for s in steps
    ]


async def _admin_settings() -> tuple[Principal, str, OnDemandSettings]:
    principal, org_id, status = await _staff()
    if not status.is_admin:
        raise security.WebError(
            FORBIDDEN,
            "Not allowed",
            "Only the organisation's administrators change these settings.",
        )
    try:
        settings = await security.ask(
            addresses.ondemand(org_id), DescribeSettings(principal), QUEUE_TIMEOUT
        )
    except Refusal as refusal:
        raise security.WebError(FORBIDDEN, "Not allowed", refusal.detail) from None
    assert isinstance(settings, OnDemandSettings)
    return principal, org_id, settings


async def _settings_page(
    org_id: str,
    enabled: bool,
    steps: list[DraftStep],
    alert_minutes: str,
    *,
    done: str | None = None,
    error: str | None = None,
    unsaved: bool = False,
    status: int = 200,
) -> tuple[str, int]:
    for step in steps:
        step.fields = step.fields if step.fields else [DraftField()]
    page = await render_template(
        "ondemand/settings.html",
        org_id=org_id,
        enabled=enabled,
        steps=steps,
        alert_minutes=alert_minutes,
        kinds=FIELD_KINDS,
        kind_labels=KIND_LABELS,
        done=done,
        error=error,
        unsaved=unsaved,
        max_steps=MAX_STEPS,
        max_fields=MAX_FIELDS,
        max_label=MAX_LABEL,
        max_alert=MAX_ALERT_MINUTES,
        public_link=url_for("ondemand.public_page", org_id=org_id),
    )
    return page, status


@blueprint.get("/ondemand/settings")
async def settings_page() -> tuple[str, int]:
    _, org_id, settings = await _admin_settings()
    minutes = settings.alert_after // SECONDS_PER_MINUTE
    return await _settings_page(
        org_id,
        settings.enabled,
        _draft_from(settings),
        str(minutes),
        done=DONE.get(request.args.get("done", "")),
    )


@blueprint.post("/ondemand/settings")
async def save_settings() -> tuple[str, int] | WerkzeugResponse:
    principal, org_id, _ = await _admin_settings()
    form = await request.form
    enabled = form.get("enabled") == "yes"
    steps = _draft_from_form(form)
    alert_text = form.get("alert_minutes", "0").strip()[:8]
    action = form.get("action", "save")
    if action != "save":
        _apply_action(steps, action)
        return await _settings_page(org_id, enabled, steps, alert_text, unsaved=True)
    if not alert_text.isdigit() or int(alert_text) > MAX_ALERT_MINUTES:
        return await _settings_page(
            org_id,
            enabled,
            steps,
            alert_text,
            error=f"The alert threshold must be a whole number of minutes, 0 to {MAX_ALERT_MINUTES}.",
            status=BAD_REQUEST,
        )
    try:
        await security.ask(
            addresses.ondemand(org_id),
            SaveSettings(
                principal,
                enabled,
                _steps_message(steps),
                int(alert_text) * SECONDS_PER_MINUTE,
                request.remote_addr or "",
            ),
            QUEUE_TIMEOUT,
        )
    except Refusal as refusal:
        status = FORBIDDEN if refusal.code == refusals.FORBIDDEN else BAD_REQUEST
        return await _settings_page(
            org_id, enabled, steps, alert_text, error=refusal.detail, status=status
        )
    return redirect(url_for("ondemand.settings_page", done="saved"), code=303)
