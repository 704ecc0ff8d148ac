"""Consult Now pages over the real server (issue 13): a provider sends a link (an outbox row),
the recipient's GET uses nothing and the POST opens it once; expired, used and cancelled links
get a clear page in English and Ukrainian and create nothing; many browsers opening one link at
the same moment: exactly one gets in; wrong roles and another organisation are refused."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import trio
import trio.testing

from actors import addresses
from actors.messages import ReloadArea
from services.passwords import Passwords
from storage import areas, orgs, staff
from storage.db import open_store
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient, Response
from tests.web.test_pages import sign_in

HTTP_OK = 200
HTTP_SEE_OTHER = 303
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_GONE = 410
#: Browsers that open one link at the same moment in the race.
OPENERS = 12

_LINK = re.compile(r"/c/([A-Za-z0-9_-]+)")
_TOKEN_IN_PAGE = re.compile(r'data-token="([^"]+)"')


def query(db_path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as db:
        return list(db.execute(sql, params).fetchall())


async def signed_in(server: RunningServer, username: str) -> HttpClient:
    client = HttpClient(server.base_url)
    response = await sign_in(client, username, DEMO_PASSWORD)
    assert response.status == HTTP_SEE_OTHER, response.text[:300]
    return client


async def send(
    provider: HttpClient, recipient: str = "+44 7700 900123", **fields: str
) -> tuple[Response, str]:
    """Send a link from the page; the secret as the recipient's message carries it."""
    page = await provider.get("/consult/new")
    assert page.status == HTTP_OK, page.text[:300]
    before = query_outbox(provider)
    sent = await provider.post(
        "/consult/new",
        {
            "csrf_token": page.csrf_token(),
            "channel": "sms",
            "recipient": recipient,
            "label": "",
            "lang": "en",
            "area_id": first_area(provider),
            **fields,
        },
    )
    after = query_outbox(provider)
    if sent.status != HTTP_SEE_OTHER:
        return sent, ""
    (body,) = [b for b in after if b not in before]
    match = _LINK.search(body)
    assert match is not None, body
    return sent, match.group(1)


_DB: dict[str, Path] = {}


def first_area(client: HttpClient) -> str:
    return str(query(_DB[client.base_url], "SELECT MIN(id) FROM waiting_areas")[0][0])


def query_outbox(client: HttpClient) -> list[str]:
    return [str(row[0]) for row in query(_DB[client.base_url], "SELECT body FROM outbox")]


async def provider_of(server: RunningServer) -> HttpClient:
    _DB[server.base_url] = server.db_path
    return await signed_in(server, server.demo.provider_username)


def consult_rooms(server: RunningServer) -> int:
    rows = query(server.db_path, "SELECT COUNT(*) FROM rooms WHERE kind = 'consult_now'")
    return int(str(rows[0][0]))


async def test_a_sent_link_opens_the_call_once_and_its_secret_stays_out_of_urls(
    waitroom_server: RunningServer,
) -> None:
    provider = await provider_of(waitroom_server)
    sent, secret = await send(provider, label="Sam")
    assert sent.header("location") == "/consult/new"
    ((recipient, channel, body),) = query(
        waitroom_server.db_path, "SELECT recipient, channel, body FROM outbox"
    )
    assert (recipient, channel) == ("+447700900123", "sms")
    assert f"{waitroom_server.base_url}/c/{secret}" in str(body) and "5 minutes" in str(body)
    listed = await provider.get("/consult/new")
    assert "Sam" in listed.text and "•••123" in listed.text and "Valid for" in listed.text
    console = await provider.get("/")
    assert 'id="console-consult"' in console.text and "Sam" in console.text

    recipient_browser = HttpClient(waitroom_server.base_url)
    for _ in range(2):  # a link preview, then the person: looking uses nothing
        landing = await recipient_browser.get(f"/c/{secret}")
        assert landing.status == HTTP_OK and 'id="consult-start"' in landing.text
    assert consult_rooms(waitroom_server) == 0

    opened = await recipient_browser.post(
        f"/c/{secret}", {"csrf_token": landing.csrf_token(), "name": "Sam Jones", "lang": "en"}
    )
    assert opened.status == HTTP_OK and opened.header("location") is None
    token = _TOKEN_IN_PAGE.search(opened.text)
    assert token is not None and 'data-role="guest"' in opened.text
    assert 'data-home-url="/g"' in opened.text  # the page rewrites the address to /g
    room_id = token.group(1).split(".", 1)[0]
    assert query(
        waitroom_server.db_path, "SELECT kind, state FROM rooms WHERE id = ?", room_id
    ) == [("consult_now", "open")]

    # The provider's call page (the ring links to it); only staff get it, and only the
    # provider gets into the call (the call's own rule, tested with the actors).
    assert (await recipient_browser.get(f"/consult/call/{room_id}")).status == HTTP_SEE_OTHER
    call_page = await provider.get(f"/consult/call/{room_id}")
    assert call_page.status == HTTP_OK and 'class="consult-call"' in call_page.text
    assert f'data-room="{room_id}"' in call_page.text

    again = await recipient_browser.post(f"/c/{secret}", {"csrf_token": landing.csrf_token()})
    assert again.status == HTTP_GONE and "This link has been used" in again.text
    assert (await recipient_browser.get(f"/c/{secret}")).status == HTTP_GONE
    assert consult_rooms(waitroom_server) == 1
    actions = {
        str(row[0])
        for row in query(waitroom_server.db_path, "SELECT action FROM audit_log")
        if str(row[0]).startswith("consult.")
    }
    assert {"consult.started", "consult.opened"} <= actions
    # The provider's list no longer holds it: it is opened.
    assert "Sam" not in (await provider.get("/consult/new")).text.split("Waiting to be opened")[1]


async def test_expired_used_and_cancelled_links_say_so_in_both_languages(
    waitroom_server: RunningServer,
) -> None:
    provider = await provider_of(waitroom_server)
    _, expired = await send(provider, lang="uk")
    # Its time is up in storage (the desk's timer would mark it at five minutes).
    query(
        waitroom_server.db_path,
        "UPDATE consult_links SET expires_at = '2000-01-01T00:00:00.000000Z'",
    )
    _, cancelled = await send(provider)
    link_id = str(
        query(waitroom_server.db_path, "SELECT id FROM consult_links ORDER BY created_at")[-1][0]
    )
    page = await provider.get("/consult/new")
    cancel = await provider.post(f"/consult/{link_id}/cancel", {"csrf_token": page.csrf_token()})
    assert cancel.status == HTTP_SEE_OTHER

    english = HttpClient(waitroom_server.base_url, cookies={"waitroom_lang": "en"})
    ukrainian = HttpClient(waitroom_server.base_url, cookies={"waitroom_lang": "uk"})
    nobody_chose = HttpClient(waitroom_server.base_url)  # the link's own language: Ukrainian
    gone = await english.get(f"/c/{expired}")
    assert gone.status == HTTP_GONE and "This link has expired" in gone.text
    assert 'lang="uk"' in (await nobody_chose.get(f"/c/{expired}")).text
    uk_expired = await ukrainian.get(f"/c/{expired}")
    assert uk_expired.status == HTTP_GONE and "Термін дії цього посилання минув" in uk_expired.text
    no = await english.get(f"/c/{cancelled}")
    assert no.status == HTTP_GONE and "This link has been cancelled" in no.text
    assert "Це посилання скасовано" in (await ukrainian.get(f"/c/{cancelled}")).text
    unknown = await english.get("/c/not-a-link-at-all")
    assert unknown.status == HTTP_NOT_FOUND and "Link not recognised" in unknown.text
    assert (await english.get("/c/" + "x" * 300)).status == HTTP_NOT_FOUND

    # Pressing the button of an expired or cancelled link creates nothing either.
    form_page = await english.get("/sign-in")
    for secret in (expired, cancelled):
        pressed = await english.post(f"/c/{secret}", {"csrf_token": form_page.csrf_token()})
        assert pressed.status == HTTP_GONE
    uk_form = await ukrainian.get("/sign-in")
    uk_used = await ukrainian.post(f"/c/{expired}", {"csrf_token": uk_form.csrf_token()})
    assert "Термін дії цього посилання минув" in uk_used.text
    assert consult_rooms(waitroom_server) == 0


async def test_many_browsers_opening_one_link_at_once_start_one_call(
    waitroom_server: RunningServer,
) -> None:
    provider = await provider_of(waitroom_server)
    _, secret = await send(provider)
    browsers = [HttpClient(waitroom_server.base_url) for _ in range(OPENERS)]
    tokens = [(await b.get(f"/c/{secret}")).csrf_token() for b in browsers]
    outcomes: list[Response] = []
    start = trio.Event()

    async def press(browser: HttpClient, csrf: str) -> None:
        await start.wait()
        outcomes.append(await browser.post(f"/c/{secret}", {"csrf_token": csrf, "name": "x"}))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for browser, csrf in zip(browsers, tokens, strict=True):
                nursery.start_soon(press, browser, csrf)
            await trio.testing.wait_all_tasks_blocked()
            start.set()
    statuses = sorted(r.status for r in outcomes)
    assert statuses == [HTTP_OK] + [HTTP_GONE] * (OPENERS - 1)
    assert sum(1 for r in outcomes if _TOKEN_IN_PAGE.search(r.text)) == 1
    assert all("This link has been used" in r.text for r in outcomes if r.status == HTTP_GONE)
    assert consult_rooms(waitroom_server) == 1


async def test_wrong_role_and_another_organisation_are_refused(
    waitroom_server: RunningServer,
) -> None:
    provider = await provider_of(waitroom_server)
    _, secret = await send(provider)
    del secret
    demo_link = str(query(waitroom_server.db_path, "SELECT id FROM consult_links")[0][0])
    demo_area = str(query(waitroom_server.db_path, "SELECT id FROM waiting_areas LIMIT 1")[0][0])
    async with open_store(waitroom_server.db_path) as store:
        password_hash = Passwords.fast_for_tests().hash_sync(DEMO_PASSWORD)
        await staff.create_user(store, "no-role", "No Role", password_hash)
        other = await orgs.create_organisation(store, "Hillside Health")
        unit = await orgs.create_unit(store, other.id, "Hillside")
        area = await areas.create_area(store, unit.id, "Hillside GP")
        outsider = await staff.create_user(store, "hill-doc", "Dr Hill", password_hash)
        await staff.grant_role(store, outsider.id, "provider", "unit", unit.id)
    await waitroom_server.registry.ref(addresses.AREAS).ask(ReloadArea(area.id))

    nobody = await signed_in(waitroom_server, "no-role")
    refused = await nobody.get("/consult/new")
    assert refused.status == HTTP_FORBIDDEN and "providers" in refused.text
    posted = await nobody.post(
        "/consult/new",
        {
            "csrf_token": refused.csrf_token(),  # the header's sign-out form carries one
            "recipient": "+447700900123",
            "channel": "sms",
            "area_id": demo_area,
        },
    )
    assert posted.status == HTTP_FORBIDDEN

    hill = await signed_in(waitroom_server, "hill-doc")
    own = await hill.get("/consult/new")
    assert (
        own.status == HTTP_OK and "Hillside GP" in own.text and "General Practice" not in own.text
    )
    elsewhere = await hill.post(
        "/consult/new",
        {
            "csrf_token": own.csrf_token(),
            "recipient": "+447700900123",
            "channel": "sms",
            "area_id": demo_area,
        },
    )
    assert (
        elsewhere.status == HTTP_BAD_REQUEST
        and "Choose one of your waiting areas" in elsewhere.text
    )
    for action in ("extend", "cancel"):
        meddled = await hill.post(
            f"/consult/{demo_link}/{action}", {"csrf_token": own.csrf_token()}
        )
        assert meddled.status == HTTP_NOT_FOUND
    assert query(waitroom_server.db_path, "SELECT state, extensions FROM consult_links") == [
        ("pending", 0)
    ]
    bad = await provider.post(
        "/consult/new",
        {
            "csrf_token": (await provider.get("/consult/new")).csrf_token(),
            "recipient": "call me",
            "channel": "sms",
            "area_id": demo_area,
        },
    )
    assert bad.status == HTTP_BAD_REQUEST and "valid mobile number" in bad.text
    forged = await HttpClient(waitroom_server.base_url).post(
        "/consult/new", {"recipient": "+447700900123"}
    )
    assert forged.status in (HTTP_SEE_OTHER, HTTP_BAD_REQUEST, HTTP_FORBIDDEN)
    assert len(query(waitroom_server.db_path, "SELECT id FROM consult_links")) == 1


async def test_extend_from_the_page_adds_five_minutes_up_to_the_limit(
    waitroom_server: RunningServer,
) -> None:
    provider = await provider_of(waitroom_server)
    await send(provider)
    (link_id,) = [str(r[0]) for r in query(waitroom_server.db_path, "SELECT id FROM consult_links")]
    for left in (2, 1, 0):
        page = await provider.get("/consult/new")
        extended = await provider.post(
            f"/consult/{link_id}/extend", {"csrf_token": page.csrf_token()}
        )
        assert extended.status == HTTP_SEE_OTHER
        assert f"({left} left)" in (await provider.get("/consult/new")).text
    page = await provider.get("/consult/new")
    over = await provider.post(f"/consult/{link_id}/extend", {"csrf_token": page.csrf_token()})
    assert over.status == HTTP_BAD_REQUEST and "extended 3 times" in over.text
    assert query(waitroom_server.db_path, "SELECT extensions FROM consult_links") == [(3,)]
