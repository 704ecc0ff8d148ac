"""The account pages of issue 15 over a real server: staff change their own password; an
administrator deactivates a member of staff and sets a new password for them from set-up."""

from __future__ import annotations

import re

from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in

NEW_PASSWORD = "correct horse battery"


async def test_staff_change_their_own_password(waitroom_server: RunningServer) -> None:
    demo = waitroom_server.demo
    me = HttpClient(waitroom_server.base_url)
    await sign_in(me, demo.provider_username, DEMO_PASSWORD)
    other_tab = HttpClient(waitroom_server.base_url, cookies=dict(me.cookies))
    page = await me.get("/account/password")
    assert page.status == 200 and 'id="password-form"' in page.text
    csrf = page.csrf_token()

    def form(current: str, new: str, repeat: str) -> dict[str, str]:
        return {
            "csrf_token": csrf,
            "current_password": current,
            "new_password": new,
            "repeat_password": repeat,
        }

    wrong = await me.post("/account/password", form("wrong", NEW_PASSWORD, NEW_PASSWORD))
    assert wrong.status == 400 and "current password is not right" in wrong.text
    mismatch = await me.post("/account/password", form(DEMO_PASSWORD, NEW_PASSWORD, "other one"))
    assert mismatch.status == 400 and "not the same" in mismatch.text
    changed = await me.post("/account/password", form(DEMO_PASSWORD, NEW_PASSWORD, NEW_PASSWORD))
    assert changed.status == 303
    assert "/sign-in?changed=password" in (changed.header("location") or "")
    # Signed out everywhere: this browser and the other tab.
    for client in (me, other_tab):
        assert (await client.get("/dashboard")).status in (302, 303)
    assert (await sign_in(me, demo.provider_username, DEMO_PASSWORD)).status == 401
    assert (await sign_in(me, demo.provider_username, NEW_PASSWORD)).status == 303


async def test_an_administrator_deactivates_and_resets_from_setup(
    waitroom_server: RunningServer,
) -> None:
    demo = waitroom_server.demo
    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, demo.provider_username, DEMO_PASSWORD)
    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, demo.admin_username, DEMO_PASSWORD)
    setup = await admin.get("/admin/setup")
    found = re.search(r'action="(/admin/setup/staff/(\d+)/active)"', setup.text)
    assert found is not None
    rows = re.findall(r'<tr data-user="(\d+)"', setup.text)
    assert len(rows) == 2  # the demo organisation's two members, nobody else's
    provider_id = re.search(r'data-user="(\d+)">\s*<td>Dr Demo Provider', setup.text)
    assert provider_id is not None
    user_id = provider_id.group(1)
    # A provider may not use these forms.
    dash = await provider.get("/dashboard")
    refused = await provider.post(
        f"/admin/setup/staff/{user_id}/active", {"csrf_token": dash.csrf_token(), "active": "no"}
    )
    assert refused.status == 404  # like a member of staff who does not exist (issue 15)

    reset = await admin.post(
        f"/admin/setup/staff/{user_id}/password",
        {"csrf_token": setup.csrf_token(), "new_password": NEW_PASSWORD},
    )
    assert reset.status == 303
    assert (await provider.get("/dashboard")).status in (302, 303)  # signed out
    assert (await sign_in(provider, demo.provider_username, NEW_PASSWORD)).status == 303

    off = await admin.post(
        f"/admin/setup/staff/{user_id}/active", {"csrf_token": setup.csrf_token(), "active": "no"}
    )
    assert off.status == 303
    assert (await provider.get("/dashboard")).status in (302, 303)
    assert (await sign_in(provider, demo.provider_username, NEW_PASSWORD)).status != 303
    after = await admin.get("/admin/setup")
    assert "Dr Demo Provider (disabled)" in after.text
    assert 'data-account-action="reactivate"' in after.text
