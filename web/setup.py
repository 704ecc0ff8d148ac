"""The clinic setup page: create waiting areas and staff, grant and revoke roles.

Every rule lives in the setup actor (:mod:`actors.setup`); this page only turns forms into messages.
A success redirects back with a fixed message key (so reloading does not submit twice); a refusal
re-renders the page with the reason, status 400 (invalid) or 403 (forbidden).
"""

from __future__ import annotations

from quart import Blueprint, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import Refusal
from actors.principal import Principal
from actors.setup import (
    DEFAULT_FIELDS,
    ROLES,
    SCOPES,
    SETUP_ADDRESS,
    CreateArea,
    CreateStaff,
    Fields,
    GrantRole,
    ListSetup,
    RevokeRole,
    SetupView,
)
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
}
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403


def _remote() -> str:
    return request.remote_addr or ""


def _int(value: str) -> int:
    return int(value) if value.isdigit() else 0


async def _page(principal: Principal, error: str = "", status: int = 200) -> tuple[str, int]:
    try:
        view = await security.ask(SETUP_ADDRESS, ListSetup(principal, _remote()))
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
    reply = await security.ask(SETUP_ADDRESS, message)
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
