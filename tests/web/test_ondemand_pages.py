"""On-demand pages over the real server (issue 14): the public page and Meet Now, the intake
settings, the On-Call switch without JavaScript, the staff list and session pages; wrong roles,
another organisation and bad input get a clear refusal and change nothing."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from services.passwords import Passwords
from storage import orgs, staff
from storage.db import open_store
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient, Response
from tests.web.test_pages import sign_in

HTTP_OK = 200
HTTP_SEE_OTHER = 303
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409

#: The demo database holds one organisation: the first row.
DEMO_ORG = "1"


def requests_in(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM ondemand_requests").fetchone()[0])
        except sqlite3.OperationalError:  # the table is made at the first request
            return 0


async def signed_in(server: RunningServer, username: str) -> HttpClient:
    client = HttpClient(server.base_url)
    await sign_in(client, username, DEMO_PASSWORD)
    return client


#: Two intake steps as the settings form posts them: symptoms (text, choice), then consent.
INTAKE_FORM = {
    "enabled": "yes",
    "alert_minutes": "10",
    "s0_title": "Your symptoms",
    "s0_f0_label": "Main symptom",
    "s0_f0_kind": "text",
    "s0_f0_required": "yes",
    "s0_f0_choices": "",
    "s0_f1_label": "How long",
    "s0_f1_kind": "choice",
    "s0_f1_choices": "Today\nThis week\nLonger",
    "s1_title": "Consent",
    "s1_f0_label": "I agree to a video consultation",
    "s1_f0_kind": "consent",
    "s1_f0_required": "yes",
    "s1_f0_choices": "",
}


async def configure_intake(admin: HttpClient, form: dict[str, str] | None = None) -> Response:
    page = await admin.get("/ondemand/settings")
    assert page.status == HTTP_OK, page.text[:500]
    return await admin.post(
        "/ondemand/settings",
        {"csrf_token": page.csrf_token(), "action": "save", **(form or INTAKE_FORM)},
    )


async def test_public_page_lists_services_and_meet_now_in_both_languages(
    waitroom_server: RunningServer,
) -> None:
    visitor = HttpClient(waitroom_server.base_url)
    page = await visitor.get(f"/o/{DEMO_ORG}")
    assert page.status == HTTP_OK
    assert 'id="meet-now"' in page.text and f"/o/{DEMO_ORG}/meet" in page.text
    assert "General Practice" in page.text and "/w/" in page.text  # the services
    ukrainian = HttpClient(waitroom_server.base_url, cookies={"waitroom_lang": "uk"})
    page = await ukrainian.get(f"/o/{DEMO_ORG}")
    assert page.status == HTTP_OK and 'lang="uk"' in page.text
    assert "Meet Now" not in page.text.split("<main", 1)[1]  # translated
    for bad in ("999999", "abc", "1%3B%20drop", "0" * 19):
        missing = await visitor.get(f"/o/{bad}")
        assert missing.status == HTTP_NOT_FOUND, bad
        assert (await visitor.get(f"/o/{bad}/meet")).status == HTTP_NOT_FOUND, bad


async def test_meet_now_refuses_bad_details_and_creates_nothing(
    waitroom_server: RunningServer,
) -> None:
    patient = HttpClient(waitroom_server.base_url)
    form = await patient.get(f"/o/{DEMO_ORG}/meet")
    assert form.status == HTTP_OK and 'name="name"' in form.text
    token = form.csrf_token()
    for bad in (
        {"name": ""},
        {"name": "Ada", "email": "not-an-address"},
        {"name": "Ada", "phone": "12"},
        {"name": "A" * 81},
        {"name": "Ada", "region": "R" * 81},
    ):
        refused = await patient.post(f"/o/{DEMO_ORG}/meet", {"csrf_token": token, **bad})
        assert refused.status == HTTP_BAD_REQUEST, bad
        assert 'role="alert"' in refused.text and "data-token" not in refused.text
    forged = await patient.post(f"/o/{DEMO_ORG}/meet", {"csrf_token": "forged", "name": "Ada"})
    assert forged.status == HTTP_BAD_REQUEST
    assert requests_in(waitroom_server.db_path) == 0

    started = await patient.post(
        f"/o/{DEMO_ORG}/meet",
        {
            "csrf_token": token,
            "name": "Ada Lovelace",
            "phone": "+44 20 7946 0000",
            "region": "Kent",
        },
    )
    assert started.status == HTTP_OK
    found = re.search(r'data-token="([^"]+)"', started.text)
    assert found and "." in found.group(1)  # <room>.<secret>, in the page, never in a URL
    assert 'data-ondemand="1"' in started.text
    assert requests_in(waitroom_server.db_path) == 1


async def test_admin_configures_the_intake_and_patients_get_its_steps(
    waitroom_server: RunningServer,
) -> None:
    demo = waitroom_server.demo
    provider = await signed_in(waitroom_server, demo.provider_username)
    assert (await provider.get("/ondemand/settings")).status == HTTP_FORBIDDEN
    page = await provider.get("/ondemand")
    refused = await provider.post(
        "/ondemand/settings", {"csrf_token": page.csrf_token(), "action": "save", **INTAKE_FORM}
    )
    assert refused.status == HTTP_FORBIDDEN

    admin = await signed_in(waitroom_server, demo.admin_username)
    # Adding a step re-renders the form with a new empty step, nothing saved yet.
    page = await admin.get("/ondemand/settings")
    added = await admin.post(
        "/ondemand/settings", {"csrf_token": page.csrf_token(), "action": "add_step"}
    )
    assert added.status == HTTP_OK and 'id="settings-unsaved"' in added.text
    assert 'name="s0_title"' in added.text
    # Bad input: the page says what is wrong, and the saved settings stay as they were.
    bad_alert = await configure_intake(admin, {**INTAKE_FORM, "alert_minutes": "-5"})
    assert bad_alert.status == HTTP_BAD_REQUEST and 'id="settings-error"' in bad_alert.text
    no_choices = await configure_intake(admin, {**INTAKE_FORM, "s0_f1_choices": ""})
    assert no_choices.status == HTTP_BAD_REQUEST and 'id="settings-error"' in no_choices.text
    assert "Main symptom" not in (await admin.get("/ondemand/settings")).text

    saved = await configure_intake(admin)
    assert saved.status == HTTP_SEE_OTHER
    again = await admin.get(saved.header("location") or "")
    assert "Settings saved." in again.text and 'value="Main symptom"' in again.text
    assert 'value="10"' in again.text  # the alert threshold, in minutes

    patient = HttpClient(waitroom_server.base_url)
    form = await patient.get(f"/o/{DEMO_ORG}/meet")
    started = await patient.post(
        f"/o/{DEMO_ORG}/meet", {"csrf_token": form.csrf_token(), "name": "Ada"}
    )
    assert started.status == HTTP_OK
    assert started.text.count('class="form od-step"') == 2
    assert "Main symptom" in started.text and 'type="radio"' in started.text
    assert 'type="checkbox" name="i_agree_to_a_video_consultation"' in started.text


async def test_meet_now_turned_off_takes_no_request(waitroom_server: RunningServer) -> None:
    patient = HttpClient(waitroom_server.base_url)
    form = await patient.get(f"/o/{DEMO_ORG}/meet")  # opened before Meet Now goes off
    admin = await signed_in(waitroom_server, waitroom_server.demo.admin_username)
    off = {k: v for k, v in INTAKE_FORM.items() if k != "enabled"}
    assert (await configure_intake(admin, off)).status == HTTP_SEE_OTHER
    public = await patient.get(f"/o/{DEMO_ORG}")
    assert 'id="meet-off"' in public.text and 'id="meet-now"' not in public.text
    refused = await patient.post(
        f"/o/{DEMO_ORG}/meet", {"csrf_token": form.csrf_token(), "name": "Ada"}
    )
    assert refused.status == HTTP_CONFLICT and "data-token" not in refused.text
    assert requests_in(waitroom_server.db_path) == 0


async def test_on_call_switch_without_javascript_and_the_list_page(
    waitroom_server: RunningServer,
) -> None:
    stranger = HttpClient(waitroom_server.base_url)
    assert (await stranger.get("/ondemand")).status == HTTP_SEE_OTHER  # to sign-in
    provider = await signed_in(waitroom_server, waitroom_server.demo.provider_username)
    page = await provider.get("/ondemand")
    assert page.status == HTTP_OK
    assert 'id="oncall-switch"' in page.text and 'aria-checked="false"' in page.text
    assert re.search(r'id="od-list"[^>]*hidden', page.text)  # off call: no list
    switched = await provider.post(
        "/ondemand/oncall", {"csrf_token": page.csrf_token(), "on": "yes", "back": "/ondemand"}
    )
    assert switched.status == HTTP_SEE_OTHER
    page = await provider.get(switched.header("location") or "")
    assert "You are on call." in page.text and 'aria-checked="true"' in page.text
    assert not re.search(r'id="od-list"[^>]*hidden', page.text)
    assert re.search(r'id="nav-ondemand"(?![^>]*hidden)', page.text)
    # A redirect elsewhere than this site is never followed.
    away = await provider.post(
        "/ondemand/oncall",
        {"csrf_token": page.csrf_token(), "on": "yes", "back": "//evil.example/"},
    )
    assert away.status == HTTP_SEE_OTHER
    assert (away.header("location") or "").startswith("/ondemand")
    # The staff session page of a room that does not exist is 404, as another organisation's
    # session is (issue 15: no page shell; tests/web/test_other_org_ids.py).
    assert (await provider.get("/ondemand/session/no-such-room")).status == HTTP_NOT_FOUND
    assert (await provider.get("/ondemand/session/bad%20id")).status == HTTP_NOT_FOUND


async def test_another_organisation_sees_only_its_own(waitroom_server: RunningServer) -> None:
    demo_admin = await signed_in(waitroom_server, waitroom_server.demo.admin_username)
    assert (await configure_intake(demo_admin)).status == HTTP_SEE_OTHER
    async with open_store(waitroom_server.db_path) as store:
        other = await orgs.create_organisation(store, "Hillside Health")
        password_hash = Passwords.fast_for_tests().hash_sync(DEMO_PASSWORD)
        admin = await staff.create_user(store, "hillside-admin", "Hill Admin", password_hash)
        await staff.grant_role(store, admin.id, "org_admin", "org", other.id)
        nobody = await staff.create_user(store, "no-role", "No Role", password_hash)
        assert nobody.id
    outsider = await signed_in(waitroom_server, "hillside-admin")
    settings = await outsider.get("/ondemand/settings")
    assert settings.status == HTTP_OK
    assert "Main symptom" not in settings.text  # the demo organisation's intake stays there
    assert f"/o/{other.id}" in settings.text
    public = await outsider.get(f"/o/{other.id}")
    assert "Hillside Health" in public.text and "General Practice" not in public.text
    # Staff with no role in any organisation's on-demand queue: no switch, no list, no settings.
    no_role = await signed_in(waitroom_server, "no-role")
    assert (await no_role.get("/ondemand")).status == HTTP_FORBIDDEN
    assert (await no_role.get("/ondemand/settings")).status == HTTP_FORBIDDEN
    home = await no_role.get("/")
    assert 'id="oncall-switch"' not in home.text and 'id="bell"' in home.text


async def test_on_call_shows_the_console_section(waitroom_server: RunningServer) -> None:
    provider = await signed_in(waitroom_server, waitroom_server.demo.provider_username)
    console = await provider.get("/")
    assert re.search(r'id="console-ondemand"[^>]*hidden', console.text)  # off call
    await provider.post("/ondemand/oncall", {"csrf_token": console.csrf_token(), "on": "yes"})
    console = await provider.get("/")
    assert 'id="console-ondemand"' in console.text
    assert not re.search(r'id="console-ondemand"[^>]*hidden', console.text)
    admin = await signed_in(waitroom_server, waitroom_server.demo.admin_username)
    page = await admin.get("/")
    assert not re.search(r'id="console-ondemand"[^>]*hidden', page.text)  # administrators see it


async def test_caller_pages_have_no_string_outside_the_catalogue(
    waitroom_server: RunningServer,
) -> None:
    """The pseudo-locale walk of tests/web/test_pseudo_locale.py over the on-demand caller pages."""
    from actors import addresses
    from actors.ondemand.messages import DescribePublic, FindQueue, OnDemandPublic
    from tests.web.test_pseudo_locale import unmarked
    from web import i18n
    from web.app import WebConfig, create_app

    admin = await signed_in(waitroom_server, waitroom_server.demo.admin_username)
    assert (await configure_intake(admin)).status == HTTP_SEE_OTHER
    registry = waitroom_server.registry
    address = await registry.ref(addresses.ONDEMAND).ask(FindQueue(int(DEMO_ORG)), timeout=5)
    info = await registry.ref(str(address)).ask(DescribePublic(), timeout=5)
    assert isinstance(info, OnDemandPublic)
    data = (
        "Demo Clinic",
        info.org_name,
        "Ada Lovelace",
        *(s.name for s in info.services),
        *(step.title for step in info.steps),
        *(f.label for step in info.steps for f in step.fields),
        *(c for step in info.steps for f in step.fields for c in f.choices),
        *(lang.native_name for lang in i18n.languages()),
    )
    app = create_app(registry, WebConfig(service_name="Demo Clinic"))
    app.config["WAITROOM_PSEUDO_LOCALE"] = True
    client = app.test_client()
    await client.get("/lang/xx")
    pages: dict[str, str] = {}
    for path in (f"/o/{DEMO_ORG}", f"/o/{DEMO_ORG}/meet", f"/o/{DEMO_ORG}/meet/wait", "/o/999"):
        pages[path] = await (await client.get(path)).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', pages[f"/o/{DEMO_ORG}/meet"])
    assert csrf is not None
    for name, form in (
        ("started", {"name": "Ada Lovelace"}),
        ("refused", {"name": ""}),
    ):
        posted = await client.post(
            f"/o/{DEMO_ORG}/meet", form={"csrf_token": csrf.group(1), **form}
        )
        pages[f"POST {name}"] = await posted.get_data(as_text=True)
    problems = {path: unmarked(html, data) for path, html in pages.items()}
    assert {path: found for path, found in problems.items() if found} == {}
    assert "[" in pages[f"/o/{DEMO_ORG}"]
