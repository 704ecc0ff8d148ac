"""The area settings page over a real server: an admin edits an area and the caller page follows;
bad input is shown on the form and changes nothing; a provider neither sees the link nor gets in."""

from __future__ import annotations

import html
import re
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from actors.admin.setup import MAX_CONSENT
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient, Response
from tests.web.test_pages import sign_in

HTTP_OK = 200
HTTP_SEE_OTHER = 303
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409

_SETTINGS_LINK = re.compile(r'href="(/admin/setup/areas/(\d+))"')
NAV_LINK = 'id="nav-setup"'


async def post_pairs(client: HttpClient, path: str, pairs: list[tuple[str, str]]) -> Response:
    """A form post with repeated keys (``field_key`` once per field), as a browser sends it."""
    body = urlencode(pairs).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return await client.request("POST", path, body, headers)


def settings_form(csrf: str, **changes: str) -> list[tuple[str, str]]:
    """The settings form as the page would submit it, with ``changes`` applied."""
    values = {
        "name": "General Practice",
        "active": "yes",
        "time_zone": "Europe/London",
        "name_label": "Name",
        "consent_text": "Not recorded.",
        "new_label": "",
        "new_state": "optional",
        **{f"hours_{day}": "00:00-24:00" for day in range(7)},
        **changes,
    }
    pairs = [("csrf_token", csrf), *((k, v) for k, v in values.items() if v != "<omit>")]
    for key, label, state in (
        ("dob", "Date of birth", changes.get("state_dob", "optional")),
        ("phone", "Phone number", changes.get("state_phone", "optional")),
        ("reason", "Reason for your visit", changes.get("state_reason", "optional")),
    ):
        pairs += [
            ("field_key", key),
            (f"kind_{key}", key),
            (f"label_{key}", label),
            (f"state_{key}", state),
        ]
    return pairs


def patient_path(server: RunningServer) -> str:
    link = server.demo.area_links[0][1]
    return link[link.index("/w/") :]


async def test_admin_edits_an_area_and_the_caller_page_follows(
    waitroom_server: RunningServer,
) -> None:
    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, waitroom_server.demo.admin_username, DEMO_PASSWORD)
    home = await admin.get("/")
    assert NAV_LINK in home.text and 'href="/admin/setup"' in home.text
    assert 'id="nav-console"' in home.text
    setup = await admin.get("/admin/setup")
    for link in ("/admin/audit", "/admin/reports", "/admin/outbox"):
        assert f'href="{link}"' in setup.text, link  # every admin page is a click away
    found = _SETTINGS_LINK.search(setup.text)
    assert found is not None
    path = found.group(1)
    page = await admin.get(path)
    assert page.status == HTTP_OK
    assert "Settings: General Practice" in page.text and 'aria-current="page"' in page.text
    csrf = page.csrf_token()
    caller_page = patient_path(waitroom_server)

    # Bad input: a clear message on the form, what was typed kept, nothing saved.
    bad_input = [
        ({"time_zone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"hours_0": "9am-5pm"}, "Monday: write the hours like 09:00-17:00"),
        ({"hours_2": "17:00-09:00"}, "does not open before it closes"),
        ({"hours_4": "09:00-13:00, 12:00-17:00"}, "Friday: 09:00-13:00 overlaps 12:00-17:00"),
        ({"name": "  "}, "area name must be 1 to 120 characters"),
        ({"consent_text": "x" * (MAX_CONSENT + 1)}, f"at most {MAX_CONSENT} characters"),
    ]
    for changes, message in bad_input:
        refused = await post_pairs(admin, path, settings_form(csrf, **changes, name_label="Nom"))
        assert refused.status == HTTP_BAD_REQUEST, changes
        assert 'role="alert"' in refused.text and message in html.unescape(refused.text), message
        assert 'value="Nom"' in refused.text  # the admin's typing is not thrown away
    unchanged = await admin.get(path)
    assert 'value="Name"' in unchanged.text and "Settings saved" not in unchanged.text

    saved = await post_pairs(
        admin,
        path,
        settings_form(
            csrf,
            name="GP Evening",
            time_zone="Europe/Kyiv",
            hours_0="8:00-12:00, 13:00-24:00",
            state_dob="required",
            state_phone="off",
            new_label="NHS number",
            new_state="required",
            consent_text="The call is not recorded.",
        ),
    )
    assert saved.status == HTTP_SEE_OTHER
    shown = await admin.get(saved.header("location") or "")
    assert "Settings saved" in shown.text and "Settings: GP Evening" in shown.text
    assert 'value="08:00-12:00, 13:00-24:00"' in shown.text and 'value="Europe/Kyiv"' in shown.text
    assert 'value="NHS number"' in shown.text

    caller = HttpClient(waitroom_server.base_url)
    form = await caller.get(caller_page)
    assert "GP Evening" in form.text and "NHS number" in form.text
    assert 'name="phone"' not in form.text and "The call is not recorded." in form.text

    # Inactive: the caller page says so and takes no arrival.
    off = await post_pairs(admin, path, settings_form(csrf, active="<omit>"))
    assert off.status == HTTP_SEE_OTHER
    closed = await caller.get(caller_page)
    assert 'id="inactive-notice"' in closed.text and 'name="name"' not in closed.text
    assert "not taking callers" in closed.text
    refused_arrival = await caller.post(
        caller_page,
        {"csrf_token": form.csrf_token(), "name": "Ada", "dob": "1990-01-01", "consent": "yes"},
    )
    assert (
        refused_arrival.status == HTTP_CONFLICT and 'id="inactive-notice"' in refused_arrival.text
    )
    assert 'data-token="' not in refused_arrival.text
    assert (await post_pairs(admin, path, settings_form(csrf))).status == HTTP_SEE_OTHER

    # A closure today closes the (active again) area until it is removed.
    today = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    backwards = await admin.post(
        f"{path}/closures",
        {"csrf_token": csrf, "starts_on": "2030-01-05", "ends_on": "2030-01-04", "reason": "x"},
    )
    assert backwards.status == HTTP_BAD_REQUEST and "cannot end before it starts" in backwards.text
    added = await admin.post(
        f"{path}/closures", {"csrf_token": csrf, "starts_on": today, "reason": "Staff training"}
    )
    assert added.status == HTTP_SEE_OTHER
    listed = await admin.get(added.header("location") or "")
    assert "Closure added." in listed.text and "Staff training" in listed.text
    assert 'id="closed-notice"' in (await caller.get(caller_page)).text
    remove = re.search(r'action="(/admin/setup/areas/\d+/closures/\d+/remove)"', listed.text)
    assert remove is not None
    reopened = await admin.post(remove.group(1), {"csrf_token": csrf})
    assert reopened.status == HTTP_SEE_OTHER
    assert 'name="name"' in (await caller.get(caller_page)).text


async def test_a_provider_sees_no_setup_link_and_is_refused(waitroom_server: RunningServer) -> None:
    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, waitroom_server.demo.admin_username, DEMO_PASSWORD)
    found = _SETTINGS_LINK.search((await admin.get("/admin/setup")).text)
    assert found is not None
    path = found.group(1)

    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    for page in ("/", "/dashboard"):
        shown = await provider.get(page)
        assert shown.status == HTTP_OK and NAV_LINK not in shown.text, page
        assert 'href="/admin/audit"' not in shown.text and 'id="nav-console"' in shown.text
    assert (await provider.get("/admin/setup")).status == HTTP_FORBIDDEN
    # An area's page answers a non-administrator like a missing area (issue 15).
    assert (await provider.get(path)).status == HTTP_NOT_FOUND
    csrf = (await provider.get("/")).csrf_token()
    takeover = await post_pairs(provider, path, settings_form(csrf, name="Taken over"))
    assert takeover.status == HTTP_NOT_FOUND
    closure = await provider.post(
        f"{path}/closures", {"csrf_token": csrf, "starts_on": "2030-01-01"}
    )
    assert closure.status == HTTP_NOT_FOUND
    # Nothing changed: the admin still sees the old name and no closure.
    after = await admin.get(path)
    assert "Settings: General Practice" in after.text and 'id="no-closures"' in after.text
