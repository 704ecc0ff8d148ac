"""Audit and report pages over the real server: administrators only, rows found for real actions,
the CSV and the chart download, and no page that changes anything."""

from __future__ import annotations

import csv
import io

from storage import audit
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from tests.web.test_share import area_id


async def test_audit_and_reports_for_administrators_only(waitroom_server: RunningServer) -> None:
    demo = waitroom_server.demo
    area, link = await area_id(waitroom_server)
    caller = HttpClient(waitroom_server.base_url)
    slug = link.rsplit("/", 1)[1]
    form = await caller.get(f"/w/{slug}")
    arrived = await caller.post(
        f"/w/{slug}", {"csrf_token": form.csrf_token(), "name": "Ada", "consent": "yes"}
    )
    assert arrived.status == 200

    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, demo.provider_username, DEMO_PASSWORD)
    for path in ("/admin/audit", "/admin/reports", f"/admin/reports.csv?area={area}"):
        assert (await provider.get(path)).status == 403, path

    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, demo.admin_username, DEMO_PASSWORD)
    sign_ins = await admin.get("/admin/audit?action=auth.sign_in")
    assert sign_ins.status == 200
    assert sign_ins.text.count('data-action="auth.sign_in"') == 2  # provider and admin
    # The filter offers the one vocabulary of actions, the chosen one selected.
    for action in audit.ACTIONS:
        assert f'<option value="{action}"' in sign_ins.text, action
    assert f'<option value="{audit.SIGN_IN}" selected>' in sign_ins.text
    assert 'data-action="caller.arrived"' not in sign_ins.text
    arrivals = await admin.get(f"/admin/audit?action=caller.arrived&area={area}")
    assert arrivals.text.count('data-action="caller.arrived"') == 1
    assert "Ada" not in arrivals.text  # no clinical or personal detail in the log

    report = await admin.get(f"/admin/reports?area={area}")
    assert report.status == 200
    assert '<td data-measure="arrivals">1</td>' in report.text
    download = await admin.get(f"/admin/reports.csv?area={area}")
    assert (download.header("content-type") or "").startswith("text/csv")
    rows = dict(csv.reader(io.StringIO(download.text)))
    assert rows["arrivals"] == "1" and rows["left before being seen"] == "0"
    chart = await admin.get(f"/admin/reports.png?area={area}")
    assert chart.status == 200 and chart.header("content-type") == "image/png"

    # Nothing under /admin accepts a change.
    for path in ("/admin/audit", "/admin/reports"):
        refused = await admin.post(path, {"csrf_token": sign_ins.csrf_token()})
        assert refused.status == 405, path


async def test_share_page_does_not_tell_a_foreign_area_from_a_missing_one(
    waitroom_server: RunningServer,
) -> None:
    """Issue 15: staff with no role in an area (another organisation's) get exactly the page a
    non-existent id gets, so sequential ids reveal nothing."""
    from services.passwords import Passwords
    from storage import staff
    from storage.db import open_store

    area, _ = await area_id(waitroom_server)
    async with open_store(waitroom_server.db_path) as store:
        password_hash = Passwords.fast_for_tests().hash_sync(DEMO_PASSWORD)
        await staff.create_user(store, "outsider", "Outsider", password_hash)
    outsider = HttpClient(waitroom_server.base_url)
    await sign_in(outsider, "outsider", DEMO_PASSWORD)
    foreign = await outsider.get(f"/areas/{area}/share")
    missing = await outsider.get("/areas/987654/share")
    assert foreign.status == missing.status == 404
    assert foreign.text == missing.text


async def test_administrators_check_the_audit_chain(waitroom_server: RunningServer) -> None:
    """The check says "intact" on a real server's log and names the entry an edit behind the
    triggers broke (issue 15); a provider may not run it."""
    from storage.db import open_store

    demo = waitroom_server.demo
    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, demo.provider_username, DEMO_PASSWORD)
    page = await provider.get("/dashboard")
    refused = await provider.post("/admin/audit/verify", {"csrf_token": page.csrf_token()})
    assert refused.status == 403

    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, demo.admin_username, DEMO_PASSWORD)
    page = await admin.get("/admin/audit")
    assert 'id="verify-chain"' in page.text
    checked = await admin.post("/admin/audit/verify", {"csrf_token": page.csrf_token()})
    assert checked.status == 200
    assert 'data-intact="yes"' in checked.text
    forged = await admin.post("/admin/audit/verify", {"csrf_token": "forged"})
    assert forged.status == 400  # CSRF as for every form

    def tamper(db: object) -> None:
        conn = db.conn  # type: ignore[attr-defined]
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET remote_addr = '10.0.0.1' WHERE id = 1")

    async with open_store(waitroom_server.db_path, migrate=False) as store:
        await store.run(tamper)
    checked = await admin.post("/admin/audit/verify", {"csrf_token": page.csrf_token()})
    assert 'data-intact="no"' in checked.text
    assert "entry #1 " in checked.text
