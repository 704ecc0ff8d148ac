"""The "Share link" page and the outbox page over a real server and HTTP client (the default outbox
records without delivering; SMTP itself is proven in tests/actors/admin/test_outbox.py)."""

from __future__ import annotations

import html

from actors.messages import FindArea
from actors.waiting.areas import AREAS_ADDRESS
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in


async def area_id(server: RunningServer) -> tuple[int, str]:
    _, link = server.demo.area_links[0]
    address = await server.registry.ref(AREAS_ADDRESS).ask(FindArea(link.rsplit("/", 1)[1]))
    return int(str(address).split("/")[1]), link


async def test_provider_shares_the_link_and_the_admin_sees_it_in_the_outbox(
    waitroom_server: RunningServer,
) -> None:
    demo = waitroom_server.demo
    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, demo.provider_username, DEMO_PASSWORD)
    area, link = await area_id(waitroom_server)

    page = await provider.get(f"/areas/{area}/share?lang=uk")
    assert page.status == 200
    assert f'value="{link}"' in page.text and 'id="copy-link"' in page.text
    assert "відкрийте це посилання" in html.unescape(page.text)  # the caller's language
    assert f"/areas/{area}/leaflet.pdf?lang=uk" in page.text

    bad = await provider.post(
        f"/areas/{area}/share",
        {"csrf_token": page.csrf_token(), "channel": "email", "recipient": "nope", "body": "x"},
    )
    assert bad.status == 400 and 'role="alert"' in bad.text

    sent = await provider.post(
        f"/areas/{area}/share",
        {
            "csrf_token": page.csrf_token(),
            "channel": "sms",
            "recipient": "+380 50 123 45 67",
            "lang": "uk",
            "body": "Ваш прийом о 10:00.",
        },
    )
    assert sent.status == 200
    assert "Sent to +380 50 123 45 67" in sent.text

    no_csrf = await provider.post(
        f"/areas/{area}/share", {"channel": "email", "recipient": "a@example.org"}
    )
    assert no_csrf.status in (400, 403)
    assert (await provider.get("/admin/outbox")).status == 403

    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, demo.admin_username, DEMO_PASSWORD)
    outbox = await admin.get("/admin/outbox")
    assert outbox.status == 200
    text = html.unescape(outbox.text)
    assert "+380 50 123 45 67" in text
    assert "Ваш прийом о 10:00." in text and link in text  # the link is always added
    assert text.count('data-status="sent"') == 1
    assert "a@example.org" not in text


async def test_share_page_is_for_staff_of_the_area(waitroom_server: RunningServer) -> None:
    area, _ = await area_id(waitroom_server)
    stranger = HttpClient(waitroom_server.base_url)
    assert (await stranger.get(f"/areas/{area}/share")).status == 303
    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    assert (await provider.get("/areas/987654/share")).status == 404
