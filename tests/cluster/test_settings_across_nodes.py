"""A settings edit saved through one node reaches the area running on another (issue 18).

The area runs on node a (its home, see ``test_serve_nodes.Cluster``); an admin adds a closure through node b;
node a's running area is closed at once, without a restart: an arrival through node a is no
longer taken. Starts Redis and two servers: run under the heavy lock
(``flock /tmp/waitroom-heavy.lock .venv/bin/pytest tests/cluster/test_settings_across_nodes.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from actors import addresses
from tests.cluster.test_serve_nodes import Cluster, cluster, owner, post_arrival, sign_in
from tests.web.test_area_settings_pages import settings_form
from waitroom.loadtest.http import Browser

__all__ = ["cluster"]  # the fixture, used by name

#: What the arrival page of a closed area shows instead of the form.
CLOSED = 'id="closed-notice"'


async def test_a_closure_saved_through_node_b_closes_the_area_running_on_node_a(
    cluster: Cluster,
) -> None:
    _, areas = await sign_in(cluster.b)
    area_id, slug = areas[0]
    status, token = await post_arrival(cluster.a, slug, "Before")
    assert status == 200, token
    assert CLOSED not in (await Browser(cluster.a.url).get(f"/w/{slug}")).text
    assert await owner(cluster, addresses.area(area_id)) == cluster.a.node_id

    admin, _ = await sign_in(cluster.b, "admin")
    settings = f"/admin/setup/areas/{area_id}"
    csrf = (await admin.get(settings)).csrf_token()
    assert csrf is not None
    today = datetime.now(UTC).date()  # a day either side: closed whatever the area's time zone
    closure = {
        "starts_on": (today - timedelta(days=1)).isoformat(),
        "ends_on": (today + timedelta(days=1)).isoformat(),
        "reason": "cluster test",
        "csrf_token": csrf,
    }
    saved = await admin.post_form(f"{settings}/closures", closure)
    assert saved.status == 303, saved.text[:2000]

    # Node a's running area re-read its closures: it offers no form and says closed.
    status, page = await post_arrival(cluster.a, slug, "After")
    assert CLOSED in page, f"node a still takes arrivals ({status})"
    assert await owner(cluster, addresses.area(area_id)) == cluster.a.node_id


async def test_a_new_link_made_through_node_b_works_through_node_a_and_the_old_one_does_not(
    cluster: Cluster,
) -> None:
    """Each node resolves links from its own look-up: node a learns the new link from the store
    on its first use, and the old one, still in its look-up, is refused (the area knows its own)."""
    _, areas = await sign_in(cluster.b)
    area_id, old = areas[0]
    assert (await Browser(cluster.a.url).get(f"/w/{old}")).status == 200  # known to node a

    admin, _ = await sign_in(cluster.b, "admin")
    settings = f"/admin/setup/areas/{area_id}"
    csrf = (await admin.get(settings)).csrf_token()
    assert csrf is not None
    rotated = await admin.post_form(f"{settings}/rotate-link", {"csrf_token": csrf})
    assert rotated.status == 303, rotated.text[:2000]
    _, after = await sign_in(cluster.b)
    new = dict(after)[area_id]
    assert new != old

    for _ in range(2):  # the first refusal has node a read the area again; the second is its own
        assert (await Browser(cluster.a.url).get(f"/w/{old}")).status == 404
        status, _ = await post_arrival(cluster.a, old, "Old link")
        assert status == 404
    assert (await Browser(cluster.a.url).get(f"/w/{new}")).status == 200
    status, token = await post_arrival(cluster.a, new, "New link")
    assert status == 200, token


async def test_a_rename_saved_through_node_b_shows_on_node_a_s_console(cluster: Cluster) -> None:
    """The console's list of areas is read from the store on each visit, not from what node a's
    host read at its start: a rename saved through node b shows through node a at once."""
    provider, areas = await sign_in(cluster.a)
    area_id, _ = areas[0]
    renamed = "Renamed through node b"
    assert renamed not in (await provider.get("/")).text

    admin, _ = await sign_in(cluster.b, "admin")
    settings = f"/admin/setup/areas/{area_id}"
    csrf = (await admin.get(settings)).csrf_token()
    assert csrf is not None
    body = urlencode(settings_form(csrf, name=renamed)).encode()
    saved = await admin.request(
        "POST", settings, body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert saved.status == 303, saved.text[:2000]
    assert await owner(cluster, addresses.area(area_id)) == cluster.a.node_id

    assert renamed in (await provider.get("/")).text


async def test_a_form_opened_through_the_other_node_before_a_closure_is_answered_closed(
    cluster: Cluster,
) -> None:
    """Node b keeps what node a's area said for its pages (`web.remote_areas`); a patient who
    opened the form through node b before the area closed is told it is closed on submitting,
    not shown the form again."""
    _, areas = await sign_in(cluster.b)
    area_id, slug = areas[0]
    assert await owner(cluster, addresses.area(area_id)) == cluster.a.node_id
    patient = Browser(cluster.b.url)
    form = await patient.get(f"/w/{slug}")
    csrf = form.csrf_token()
    assert csrf is not None and CLOSED not in form.text

    admin, _ = await sign_in(cluster.a, "admin")
    settings = f"/admin/setup/areas/{area_id}"
    admin_csrf = (await admin.get(settings)).csrf_token()
    assert admin_csrf is not None
    today = datetime.now(UTC).date()
    closure = {
        "starts_on": (today - timedelta(days=1)).isoformat(),
        "ends_on": (today + timedelta(days=1)).isoformat(),
        "reason": "cluster test",
        "csrf_token": admin_csrf,
    }
    assert (await admin.post_form(f"{settings}/closures", closure)).status == 303

    fields = {"name": "Late", "reason": "cluster test", "consent": "yes", "csrf_token": csrf}
    page = await patient.post_form(f"/w/{slug}", fields)
    assert page.status == 409 and CLOSED in page.text, page.text[:2000]
