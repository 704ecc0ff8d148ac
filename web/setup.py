"""The clinic setup pages: create waiting areas and staff, grant and revoke roles, edit an area.

Every rule lives in the set-up rules (:mod:`actors.admin.setup_rules`), applied by the set-up actor; this page only turns forms into messages.
A success redirects back with a fixed message key (so reloading does not submit twice); a refusal
re-renders the page with the reason, status 400. A page about one area or one member of staff
answers 404 when the set-up actor refuses it ``forbidden``: it refuses an id of another
organisation, one the sender does not administer and one that does not exist alike, and the page
must too (issue 15), as every other page that takes an id does.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date

from quart import Blueprint, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import addresses, refusals
from actors.admin.setup import (
    DEFAULT_FIELDS,
    MAX_CONSENT,
    MAX_LABEL,
    MAX_NAME,
    ROLES,
    SCOPES,
    WEEKDAY_NAMES,
    AddAreaClosure,
    AreaSettings,
    CreateArea,
    CreateStaff,
    Fields,
    GetAreaSettings,
    GrantRole,
    ListSetup,
    RemoveAreaClosure,
    ResetStaffPassword,
    RevokeRole,
    RotateAreaLink,
    SetStaffActive,
    SetupView,
    UpdateAreaSettings,
)
from actors.principal import Principal
from runtime import Refusal
from web import security

blueprint = Blueprint("setup", __name__)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Optional arrival-form fields an area can ask for besides the name.
OPTIONAL_FIELDS: Fields = (
    ("dob", "Date of birth", "dob", False),
    ("phone", "Phone number", "phone", False),
    ("reason", "Reason for your visit", "reason", False),
)
DONE = {
    "area": "Waiting area created.",
    "staff": "Staff member created.",
    "grant": "Role granted.",
    "revoke": "Role revoked.",
    "nothing": "There was no such role to revoke.",
    "deactivated": "Staff member deactivated. They were signed out everywhere.",
    "reactivated": "Staff member reactivated. They sign in again with their password.",
    "password": "New password set. They were signed out everywhere.",
}
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404


def _no_such(what: str) -> security.WebError:
    """One answer for another organisation's id and a missing one (see the module docstring);
    the words of ``web.share`` for an area, so no page tells the two apart either."""
    return security.WebError(HTTP_NOT_FOUND, "Page not found", f"There is no such {what}.")


NO_SUCH_AREA = "waiting area"
NO_SUCH_STAFF = "member of staff"


def _remote() -> str:
    return request.remote_addr or ""


def _int(value: str) -> int:
    return int(value) if value.isdigit() else 0


async def _page(principal: Principal, error: str = "", status: int = 200) -> tuple[str, int]:
    try:
        view = await security.ask(addresses.SETUP, ListSetup(principal, _remote()))
    except Refusal as refusal:
        raise security.WebError(
            HTTP_FORBIDDEN, "Not allowed", "Only administrators can set up the clinic."
        ) from refusal
    assert isinstance(view, SetupView)
    done = DONE.get(request.args.get("done", ""), "")
    page = await render_template(
        "admin/setup.html",
        view=view,
        done=done,
        error=error,
        weekdays=WEEKDAYS,
        optional_fields=OPTIONAL_FIELDS,
        roles=ROLES,
        scopes=SCOPES,
    )
    return page, status


@blueprint.get("/admin/setup")
async def setup_page() -> tuple[str, int]:
    return await _page(await security.require_staff())


async def _submit(principal: Principal, message: object, done: str) -> WerkzeugResponse:
    reply = await security.ask(addresses.SETUP, message)
    if reply is False:
        done = "nothing"
    return redirect(url_for("setup.setup_page", done=done), code=303)


async def _post(message_of: type, done: str) -> WerkzeugResponse | tuple[str, int]:
    """Shared POST flow: build the message, ask, and show a refusal on the page itself."""
    principal = await security.require_staff()
    form = await request.form
    try:
        message = _build(message_of, principal, form)
        return await _submit(principal, message, done)
    except Refusal as refusal:
        status = HTTP_FORBIDDEN if refusal.code == "forbidden" else HTTP_BAD_REQUEST
        return await _page(principal, refusal.detail, status)


def _build(kind: type, principal: Principal, form: MultiDict[str, str]) -> object:
    get = form.get
    remote = _remote()
    if kind is CreateArea:
        days = [int(d) for d in form.getlist("day") if d.isdigit()]
        opens, closes = get("opens", "09:00"), get("closes", "17:00")
        wanted = set(form.getlist("field"))
        fields = DEFAULT_FIELDS + tuple(f for f in OPTIONAL_FIELDS if f[0] in wanted)
        return CreateArea(
            principal,
            _int(get("unit_id", "")),
            get("name", ""),
            get("time_zone", "UTC"),
            tuple((d, opens, closes) for d in sorted(set(days))),
            fields,
            get("consent_text", ""),
            remote,
        )
    if kind is CreateStaff:
        return CreateStaff(
            principal,
            get("username", ""),
            get("display_name", ""),
            get("password", ""),
            get("email", "") or None,
            remote,
        )
    scope_type, _, scope_id = get("scope", "").partition(":")
    cls = GrantRole if kind is GrantRole else RevokeRole
    return cls(
        principal,
        _int(get("user_id", "")),
        get("role", ""),
        scope_type,
        _int(scope_id),
        remote,
    )


@blueprint.post("/admin/setup/areas")
async def create_area() -> WerkzeugResponse | tuple[str, int]:
    return await _post(CreateArea, "area")


@blueprint.post("/admin/setup/staff")
async def create_staff() -> WerkzeugResponse | tuple[str, int]:
    return await _post(CreateStaff, "staff")


@blueprint.post("/admin/setup/grants")
async def grant() -> WerkzeugResponse | tuple[str, int]:
    return await _post(GrantRole, "grant")


@blueprint.post("/admin/setup/revoke")
async def revoke() -> WerkzeugResponse | tuple[str, int]:
    return await _post(RevokeRole, "revoke")


@blueprint.post("/admin/setup/staff/<int:user_id>/active")
async def set_staff_active(user_id: int) -> WerkzeugResponse | tuple[str, int]:
    """Deactivate or reactivate a member of staff (issue 15): deactivation signs them out."""
    principal = await security.require_staff()
    active = (await request.form).get("active") == "yes"
    try:
        await security.ask(addresses.SETUP, SetStaffActive(principal, user_id, active, _remote()))
    except Refusal as refusal:
        if refusal.code == refusals.FORBIDDEN:
            raise _no_such(NO_SUCH_STAFF) from None
        return await _page(principal, refusal.detail, HTTP_BAD_REQUEST)
    return redirect(
        url_for("setup.setup_page", done="reactivated" if active else "deactivated"), code=303
    )


@blueprint.post("/admin/setup/staff/<int:user_id>/password")
async def reset_staff_password(user_id: int) -> WerkzeugResponse | tuple[str, int]:
    """Set a new password for a member of staff who forgot theirs; they are signed out."""
    principal = await security.require_staff()
    new_password = (await request.form).get("new_password", "")
    try:
        await security.ask(
            addresses.SETUP, ResetStaffPassword(principal, user_id, new_password, _remote())
        )
    except Refusal as refusal:
        if refusal.code == refusals.FORBIDDEN:
            raise _no_such(NO_SUCH_STAFF) from None
        return await _page(principal, refusal.detail, HTTP_BAD_REQUEST)
    return redirect(url_for("setup.setup_page", done="password"), code=303)


# -- one area's settings ----------------------------------------------------------------------

#: What an arrival-form field can be, besides the name (always asked and required).
FIELD_STATES = ("off", "optional", "required")
#: The standard fields every area can switch on, in the order the form shows them.
STANDARD_KINDS = ("dob", "phone", "reason")
SETTINGS_DONE = {
    "saved": "Settings saved. The waiting area uses them from now on.",
    "rotated": "The waiting area has a new link. The old link no longer works.",
    "closure": "Closure added.",
    "reopened": "Closure removed.",
}
#: "09:00-17:00" (a dash or an en dash, optional spaces); "9:00" is read as "09:00".
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})$")
_FIELD_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class FormError(Exception):
    """Input the page itself cannot turn into a message (the actor checks everything else)."""


@dataclass(frozen=True)
class FieldRow:
    key: str
    kind: str
    label: str
    state: str  # one of FIELD_STATES


@dataclass(frozen=True)
class Draft:
    """The settings form's values: from storage on GET, as typed after a refused POST."""

    name: str
    active: bool
    time_zone: str
    hours: tuple[str, ...]  # per weekday, e.g. "09:00-12:00, 13:00-17:00"; "" is closed
    name_label: str
    rows: tuple[FieldRow, ...]
    consent_text: str
    new_label: str = ""
    new_state: str = "optional"


@functools.cache
def time_zones() -> tuple[str, ...]:
    """Every IANA zone name, for the time-zone field's suggestions."""
    return tuple(sorted(zoneinfo.available_timezones()))


def _draft(settings: AreaSettings) -> Draft:
    area = settings.area
    hours = tuple(
        ", ".join(f"{o}-{c}" for d, o, c in sorted(area.opening_hours) if d == day)
        for day in range(len(WEEKDAY_NAMES))
    )
    name_label = next((label for _k, label, kind, _r in settings.form_fields if kind == "name"), "")
    rows = [
        FieldRow(key, kind, label, "required" if required else "optional")
        for key, label, kind, required in settings.form_fields
        if kind != "name"
    ]
    present = {row.kind for row in rows}
    used = {row.key for row in rows}
    for key, label, kind, _required in OPTIONAL_FIELDS:
        if kind in STANDARD_KINDS and kind not in present and key not in used:
            rows.append(FieldRow(key, kind, label, "off"))
    return Draft(
        area.name,
        area.active,
        area.time_zone,
        hours,
        name_label or "Name",
        tuple(rows),
        settings.consent_text,
    )


def _draft_from_form(form: MultiDict[str, str]) -> Draft:
    rows = []
    for key in form.getlist("field_key"):
        if not _FIELD_KEY.match(key):
            continue  # not one of ours: the form only sends keys it was given
        state = form.get(f"state_{key}", "off")
        rows.append(
            FieldRow(
                key,
                form.get(f"kind_{key}", "custom"),
                form.get(f"label_{key}", ""),
                state if state in FIELD_STATES else "off",
            )
        )
    return Draft(
        form.get("name", ""),
        form.get("active") == "yes",
        form.get("time_zone", ""),
        tuple(form.get(f"hours_{day}", "") for day in range(len(WEEKDAY_NAMES))),
        form.get("name_label", "") or "Name",
        tuple(rows),
        form.get("consent_text", ""),
        form.get("new_label", ""),
        form.get("new_state", "optional"),
    )


def _parse_hours(draft: Draft) -> tuple[tuple[int, str, str], ...]:
    hours = []
    for day, text in enumerate(draft.hours):
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            match = _INTERVAL.match(part)
            if match is None:
                raise FormError(
                    f"{WEEKDAY_NAMES[day]}: write the hours like 09:00-17:00, or "
                    "09:00-12:00, 13:00-17:00 for a break; leave it empty when closed."
                )
            oh, om, ch, cm = match.groups()
            hours.append((day, f"{int(oh):02d}:{om}", f"{int(ch):02d}:{cm}"))
    return tuple(hours)


def _parse_fields(draft: Draft) -> Fields:
    fields: list[tuple[str, str, str, bool]] = [("name", draft.name_label.strip(), "name", True)]
    for row in draft.rows:
        if row.state != "off":
            fields.append((row.key, row.label, row.kind, row.state == "required"))
    new_label = draft.new_label.strip()
    if new_label and draft.new_state != "off":
        keys = {row.key for row in draft.rows}
        number = 1
        while f"custom_{number}" in keys:
            number += 1
        fields.append((f"custom_{number}", new_label, "custom", draft.new_state == "required"))
    return tuple(fields)


async def _area_settings(principal: Principal, area_id: int) -> AreaSettings:
    try:
        settings = await security.ask(addresses.SETUP, GetAreaSettings(principal, area_id))
    except Refusal:
        raise _no_such(NO_SUCH_AREA) from None
    assert isinstance(settings, AreaSettings)
    return settings


async def _settings_page(
    principal: Principal,
    area_id: int,
    *,
    draft: Draft | None = None,
    error: str = "",
    closure: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    settings = await _area_settings(principal, area_id)
    page = await render_template(
        "admin/area_settings.html",
        settings=settings,
        area=settings.area,
        draft=draft or _draft(settings),
        done=SETTINGS_DONE.get(request.args.get("done", ""), ""),
        error=error,
        closure=closure or {},
        weekdays=WEEKDAY_NAMES,
        field_states=FIELD_STATES,
        time_zones=time_zones(),
        max_name=MAX_NAME,
        max_label=MAX_LABEL,
        max_consent=MAX_CONSENT,
    )
    return page, status


def _refused_status(refusal: Refusal) -> int:
    """A refused change to one area: ``forbidden`` is the 404 of a missing area (the settings
    page re-asks the actor and raises it), anything else bad input."""
    if refusal.code == refusals.FORBIDDEN:
        raise _no_such(NO_SUCH_AREA)
    return HTTP_BAD_REQUEST


def _back(area_id: int, done: str) -> WerkzeugResponse:
    return redirect(url_for("setup.area_settings", area_id=area_id, done=done), code=303)


@blueprint.get("/admin/setup/areas/<int:area_id>")
async def area_settings(area_id: int) -> tuple[str, int]:
    return await _settings_page(await security.require_staff(), area_id)


@blueprint.post("/admin/setup/areas/<int:area_id>")
async def save_area_settings(area_id: int) -> WerkzeugResponse | tuple[str, int]:
    principal = await security.require_staff()
    draft = _draft_from_form(await request.form)
    try:
        message = UpdateAreaSettings(
            principal,
            area_id,
            draft.name,
            draft.time_zone,
            _parse_hours(draft),
            _parse_fields(draft),
            draft.consent_text,
            draft.active,
            _remote(),
        )
        await security.ask(addresses.SETUP, message)
    except FormError as problem:
        return await _settings_page(
            principal, area_id, draft=draft, error=str(problem), status=HTTP_BAD_REQUEST
        )
    except Refusal as refusal:
        return await _settings_page(
            principal, area_id, draft=draft, error=refusal.detail, status=_refused_status(refusal)
        )
    return _back(area_id, "saved")


@blueprint.post("/admin/setup/areas/<int:area_id>/rotate-link")
async def rotate_area_link(area_id: int) -> WerkzeugResponse | tuple[str, int]:
    """A new public link for the area at once (issue 15); callers already waiting stay."""
    principal = await security.require_staff()
    try:
        await security.ask(addresses.SETUP, RotateAreaLink(principal, area_id, _remote()))
    except Refusal as refusal:
        return await _settings_page(
            principal, area_id, error=refusal.detail, status=_refused_status(refusal)
        )
    return _back(area_id, "rotated")


@blueprint.post("/admin/setup/areas/<int:area_id>/closures")
async def add_area_closure(area_id: int) -> WerkzeugResponse | tuple[str, int]:
    principal = await security.require_staff()
    form = await request.form
    typed = {k: form.get(k, "") for k in ("starts_on", "ends_on", "reason")}
    try:
        try:
            starts_on = date.fromisoformat(typed["starts_on"])
            ends_on = date.fromisoformat(typed["ends_on"]) if typed["ends_on"] else starts_on
        except ValueError:
            raise FormError("Give the closure's first and last day as dates.") from None
        await security.ask(
            addresses.SETUP,
            AddAreaClosure(principal, area_id, starts_on, ends_on, typed["reason"], _remote()),
        )
    except FormError as problem:
        return await _settings_page(
            principal, area_id, error=str(problem), closure=typed, status=HTTP_BAD_REQUEST
        )
    except Refusal as refusal:
        return await _settings_page(
            principal,
            area_id,
            error=refusal.detail,
            closure=typed,
            status=_refused_status(refusal),
        )
    return _back(area_id, "closure")


@blueprint.post("/admin/setup/areas/<int:area_id>/closures/<int:closure_id>/remove")
async def remove_area_closure(area_id: int, closure_id: int) -> WerkzeugResponse | tuple[str, int]:
    principal = await security.require_staff()
    try:
        await security.ask(
            addresses.SETUP, RemoveAreaClosure(principal, area_id, closure_id, _remote())
        )
    except Refusal as refusal:
        return await _settings_page(
            principal, area_id, error=refusal.detail, status=_refused_status(refusal)
        )
    return _back(area_id, "reopened")
