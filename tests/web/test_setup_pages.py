"""The clinic setup page over a real server: the demo admin creates a waiting area with the form."""

from __future__ import annotations

from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in

HTTP_OK = 200
HTTP_SEE_OTHER = 303
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403


async def test_admin_creates_an_area_with_the_form_and_sees_it_listed(
    waitroom_server: RunningServer,
) -> None:
    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, waitroom_server.demo.admin_username, DEMO_PASSWORD)
    page = await admin.get("/admin/setup")
    assert page.status == HTTP_OK and "General Practice" in page.text
    unit = page.text.split('name="unit_id"><option value="', 1)[1].split('"', 1)[0]
    form = {
        "csrf_token": page.csrf_token(),
        "unit_id": unit,
        "name": "Dermatology",
        "time_zone": "Europe/Oslo",
        "opens": "08:00",
        "closes": "16:00",
        "consent_text": "Not recorded.",
    }
    bad = await admin.post("/admin/setup/areas", {**form, "time_zone": "Mars/Olympus"})
    assert bad.status == HTTP_BAD_REQUEST and 'role="alert"' in bad.text
    created = await admin.post("/admin/setup/areas", form)
    assert created.status == HTTP_SEE_OTHER
    listed = await admin.get(created.header("location") or "")
    assert listed.status == HTTP_OK
    assert "Waiting area created." in listed.text and "Dermatology" in listed.text
    assert "Europe/Oslo" in listed.text and "/w/" in listed.text

    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    assert (await provider.get("/admin/setup")).status == HTTP_FORBIDDEN
