"""An administrator gives a waiting area a new link (issue 15): the old link finds nothing at
once, the new one works, a caller already waiting keeps their place, the change is audited, and
nobody else may do it."""

from __future__ import annotations

import re

from storage.db import fetch_all, open_store
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_area_settings_pages import patient_path
from tests.web.test_pages import sign_in

_SETTINGS_LINK = re.compile(r'href="(/admin/setup/areas/(\d+))"')
_CALLER_LINK = re.compile(r"Link for callers: <a href=\"[^\"]*(/w/[^\"]+)\"")


async def test_rotating_the_link_retires_the_old_one_and_keeps_who_waits(
    waitroom_server: RunningServer,
) -> None:
    old_path = patient_path(waitroom_server)
    caller = HttpClient(waitroom_server.base_url)
    form = await caller.get(old_path)
    waiting = await caller.post(
        old_path, {"csrf_token": form.csrf_token(), "name": "Ada", "consent": "yes"}
    )
    assert waiting.status == 200

    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, waitroom_server.demo.admin_username, DEMO_PASSWORD)
    found = _SETTINGS_LINK.search((await admin.get("/admin/setup")).text)
    assert found is not None
    settings_path, area_id = found.group(1), found.group(2)
    page = await admin.get(settings_path)
    assert 'id="rotate-link"' in page.text

    # A provider may not rotate it; a forged form may not either.
    dashboard = await provider.get("/dashboard")
    refused = await provider.post(
        f"{settings_path}/rotate-link", {"csrf_token": dashboard.csrf_token()}
    )
    assert refused.status == 404  # like an area that does not exist (issue 15)
    assert (await caller.get(old_path)).status == 200

    rotated = await admin.post(f"{settings_path}/rotate-link", {"csrf_token": page.csrf_token()})
    assert rotated.status == 303
    after = await admin.get(rotated.header("location") or settings_path)
    assert "The old link no longer works" in after.text
    new = _CALLER_LINK.search(after.text)
    assert new is not None and new.group(1) != old_path
    assert (await HttpClient(waitroom_server.base_url).get(old_path)).status == 404
    assert (await HttpClient(waitroom_server.base_url).get(new.group(1))).status == 200

    # The caller who was waiting keeps their place (still waiting, in the same area).
    async with open_store(waitroom_server.db_path) as store:
        rows = await store.run(
            fetch_all,
            "SELECT area_id FROM audit_log WHERE action = 'area.link_rotated'",
        )
        waiting_rows = await store.run(
            fetch_all, "SELECT status FROM callers WHERE area_id = ?", (int(area_id),)
        )
    assert [r["area_id"] for r in rows] == [int(area_id)]
    assert [r["status"] for r in waiting_rows] == ["waiting"]
