"""The caller's pages over real HTTP: the arrival form, CSRF, no secrets in URLs, dead links, and
when a closed area says it opens next (in the area's own time zone)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from actors.messages import AreaPublic, ReloadArea
from actors.waiting.areas import AREAS_ADDRESS
from storage import areas as area_store
from storage.areas import OpeningInterval
from storage.db import open_store
from tests.conftest import RunningServer
from tests.httpclient import HttpClient
from web.patient import GONE, next_opening_text

_TOKEN_IN_PAGE = re.compile(r'data-token="([^"]+)"')


def slug_path(server: RunningServer) -> str:
    link = server.demo.area_links[0][1]
    return link[link.index("/w/") :]


async def test_arrival_hands_the_token_to_the_page_never_to_a_url(
    waitroom_server: RunningServer,
) -> None:
    client = HttpClient(waitroom_server.base_url)
    path = slug_path(waitroom_server)
    form = await client.get(path)
    assert form.status == 200
    assert 'name="name"' in form.text and 'name="consent"' in form.text
    submitted = await client.post(
        path,
        {"csrf_token": form.csrf_token(), "name": "Ada", "reason": "knee", "consent": "yes"},
    )
    assert submitted.status == 200
    assert submitted.header("location") is None  # no redirect carrying anything
    token = _TOKEN_IN_PAGE.search(submitted.text)
    assert token is not None and "." in token.group(1)
    assert f'data-wait-url="{path}/wait"' in submitted.text


async def test_arrival_needs_csrf_consent_and_a_name(waitroom_server: RunningServer) -> None:
    client = HttpClient(waitroom_server.base_url)
    path = slug_path(waitroom_server)
    form = await client.get(path)
    forged = await HttpClient(waitroom_server.base_url).post(path, {"name": "Ada"})
    assert forged.status == 400
    no_consent = await client.post(path, {"csrf_token": form.csrf_token(), "name": "Ada"})
    assert no_consent.status == 400 and "agree" in no_consent.text
    no_name = await client.post(path, {"csrf_token": form.csrf_token(), "consent": "yes"})
    assert no_name.status == 400 and "Name is required" in no_name.text
    assert _TOKEN_IN_PAGE.search(no_name.text) is None


async def test_dead_links_and_staff_pages(waitroom_server: RunningServer) -> None:
    client = HttpClient(waitroom_server.base_url)
    assert (await client.get("/w/not-a-real-area")).status == 404
    assert (await client.get("/i/nosuchroom.secret")).status == GONE
    assert (await client.get("/i/garbage")).status == GONE
    assert (await client.get("/dashboard")).status == 303
    assert (await client.get("/call/abc")).status == 303


def test_next_opening_is_told_in_the_areas_time_zone() -> None:
    area = AreaPublic(
        id=1,
        name="GP",
        slug="s",
        unit_id=1,
        time_zone="Europe/London",
        open_now=False,
        next_opening="2026-07-06T07:00:00+00:00",
        form_fields=(),
        consent_text="",
    )
    now = datetime(2026, 7, 3, 11, 0, tzinfo=UTC)  # a Friday: the opening is 2 days 20 h away
    assert next_opening_text(area, "en", now) == (
        "It opens next on Monday, July 6, 2026 at 8:00\u202fAM (Europe/London), in 3 days."
    )
    assert next_opening_text(area, "uk", now) == (
        "Наступне відкриття: понеділок, 6 липня 2026\u202fр. о 08:00 (Europe/London), через 3 дні."
    )
    soon = datetime(2026, 7, 6, 6, 20, tzinfo=UTC)
    assert str(next_opening_text(area, "uk", soon)).endswith("через 40 хвилин.")
    assert str(next_opening_text(area, "en", soon)).endswith("in 40 minutes.")
    # The pseudo-locale marks the sentence as translated; an unknown zone falls back to UTC.
    assert str(next_opening_text(area, "xx", now)).startswith("[")
    nowhere = AreaPublic(1, "GP", "s", 1, "Mars/Olympus", False, area.next_opening, (), "")
    assert "at 7:00\u202fAM (UTC)" in str(next_opening_text(nowhere, "en", now))
    assert next_opening_text(AreaPublic(1, "GP", "s", 1, "UTC", False, None, (), "")) is None


async def test_a_closed_area_says_when_it_opens_and_takes_no_arrival(
    waitroom_server: RunningServer,
) -> None:
    # A new area, as the admin pages would make it: open only on Sunday mornings in Kyiv, and
    # closed (holiday) from yesterday to tomorrow, so it is closed now whatever the day.
    today = datetime.now(UTC).date()
    async with open_store(waitroom_server.db_path) as store:
        area = await area_store.create_area(
            store,
            1,
            "Sunday clinic",
            time_zone="Europe/Kyiv",
            opening_hours=(OpeningInterval(6, "09:00", "10:00"),),
        )
        await area_store.add_closure(
            store, area.id, today - timedelta(days=1), today + timedelta(days=1), "holiday"
        )
    await waitroom_server.registry.ref(AREAS_ADDRESS).ask(ReloadArea(area.id))
    client = HttpClient(waitroom_server.base_url)
    page = await client.get(f"/w/{area.slug}")
    assert page.status == 200
    assert "closed right now" in page.text and "It opens next on Sunday, " in page.text
    assert "at 9:00\u202fAM (Europe/Kyiv), in " in page.text and 'name="name"' not in page.text
    # The same sentence in Ukrainian once the caller switches language.
    switched = await client.get(f"/lang/uk?next=/w/{area.slug}")
    assert switched.status in (302, 303)
    in_ukrainian = await client.get(f"/w/{area.slug}")
    assert "Наступне відкриття: неділя, " in in_ukrainian.text
    assert "о 09:00 (Europe/Kyiv), через " in in_ukrainian.text
    await client.get(f"/lang/en?next=/w/{area.slug}")
    # A token from an open form (same browser), so the refusal is the area's, not CSRF's.
    token = (await client.get(slug_path(waitroom_server))).csrf_token()
    refused = await client.post(f"/w/{area.slug}", {"csrf_token": token, "name": "Ada"})
    assert refused.status == 409 and "closed right now" in refused.text
    assert _TOKEN_IN_PAGE.search(refused.text) is None
