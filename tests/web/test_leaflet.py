"""The caller leaflet over the real server's actors: a PDF with the link, a QR code that decodes to
it, and Ukrainian text when asked. PNG renderings are kept under test-artifacts/ for a person to see."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import trio
from PIL import Image
from pyzbar.pyzbar import decode
from quart.typing import TestClientProtocol as QuartClient
from quart_trio import QuartTrio

from actors.messages import FindArea
from actors.waiting.areas import AREAS_ADDRESS
from tests.conftest import DEMO_PASSWORD, RunningServer
from web import i18n, leaflet
from web.app import WebConfig, create_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PUBLIC_URL = "https://clinic.example"
#: Enough resolution for zbar to read the QR code reliably, small enough to be quick.
RENDER_DPI = 110
UKRAINIAN_LETTERS = re.compile(r"[ґєіїҐЄІЇ]")
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def make_app(server: RunningServer) -> QuartTrio:
    app = create_app(server.registry, WebConfig(public_url=PUBLIC_URL, service_name="Demo Clinic"))
    i18n.init_app(app)
    if "leaflet" not in app.blueprints:
        app.register_blueprint(leaflet.blueprint)
    return app


async def signed_in_client(app: QuartTrio, username: str) -> QuartClient:
    client = app.test_client()
    page = await (await client.get("/sign-in")).get_data(as_text=True)
    match = _CSRF.search(page)
    assert match is not None
    response = await client.post(
        "/sign-in",
        form={"username": username, "password": DEMO_PASSWORD, "csrf_token": match.group(1)},
    )
    assert response.status_code == 303
    return client


async def demo_area(server: RunningServer) -> tuple[int, str]:
    _, link = server.demo.area_links[0]
    slug = link.rsplit("/", 1)[1]
    address = await server.registry.ref(AREAS_ADDRESS).ask(FindArea(slug), timeout=5)
    assert isinstance(address, str)
    return int(address.rsplit("/", 1)[1]), slug


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout


def inspect_pdf(pdf: Path) -> tuple[str, str, list[str]]:
    """(pdftotext output, pdffonts output, decoded QR payloads) of page one, PNG kept beside it."""
    text = run("pdftotext", "-layout", str(pdf), "-")
    fonts = run("pdffonts", str(pdf))
    png_base = pdf.with_suffix("")
    run("pdftoppm", "-r", str(RENDER_DPI), "-png", "-singlefile", str(pdf), str(png_base))
    with Image.open(png_base.with_suffix(".png")) as image:
        payloads = [symbol.data.decode() for symbol in decode(image)]
    return text, fonts, payloads


@pytest.mark.parametrize("lang", ["en", "uk"])
async def test_leaflet_has_the_link_a_matching_qr_code_and_the_language(
    waitroom_server: RunningServer, lang: str
) -> None:
    app = make_app(waitroom_server)
    client = await signed_in_client(app, waitroom_server.demo.provider_username)
    area_id, slug = await demo_area(waitroom_server)
    response = await client.get(f"/areas/{area_id}/leaflet.pdf", query_string={"lang": lang})
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    body = await response.get_data(as_text=False)
    assert body.startswith(b"%PDF-")
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / f"leaflet-{lang}.pdf"
    pdf.write_bytes(body)

    text, fonts, payloads = await trio.to_thread.run_sync(inspect_pdf, pdf)
    link = f"{PUBLIC_URL}/w/{slug}"
    assert payloads == [link]
    assert link in text
    assert "DejaVuSans" in fonts and "yes" in fonts  # embedded, so every reader has the glyphs
    if lang == "uk":
        assert "Відеоконсультація" in text
        assert "Як приєднатися" in text
        assert "Понеділок" in text
        assert UKRAINIAN_LETTERS.search(text)
        assert "How to join" not in text
    else:
        assert "Video consultation" in text
        assert "Monday" in text
        assert not UKRAINIAN_LETTERS.search(text)


async def test_leaflet_is_for_signed_in_staff_and_real_areas(
    waitroom_server: RunningServer,
) -> None:
    app = make_app(waitroom_server)
    area_id, _ = await demo_area(waitroom_server)
    stranger = app.test_client()
    response = await stranger.get(f"/areas/{area_id}/leaflet.pdf", headers={"Accept": "text/html"})
    assert response.status_code == 303
    client = await signed_in_client(app, waitroom_server.demo.provider_username)
    missing = await client.get("/areas/999999/leaflet.pdf")
    assert missing.status_code == 404


def test_hours_are_listed_monday_to_sunday_with_local_names() -> None:
    content = leaflet.LeafletContent(
        "Clinic",
        "Area",
        "https://x/w/y",
        "Europe/Kyiv",
        ((0, "13:00", "17:00"), (0, "08:00", "12:00"), (4, "09:00", "24:00")),
        "uk",
    )
    lines = leaflet.hours_lines(content, "Зачинено")
    assert lines[0] == ("Понеділок", "08:00–12:00, 13:00–17:00")
    assert lines[1] == ("Вівторок", "Зачинено")
    assert lines[4][1] == "09:00–00:00"
    always = leaflet.LeafletContent(
        "C", "A", "https://x/w/y", "UTC", ((2, "00:00", "24:00"),), "en"
    )
    assert leaflet.hours_lines(always, "Closed")[2] == ("Wednesday", "Open all day")


async def test_another_organisations_area_looks_like_a_missing_one(
    waitroom_server: RunningServer,
) -> None:
    """Area ids are sequential: a provider who is not a provider of an area must not learn that
    it exists (issue 15). Its leaflet answers exactly like an id that does not exist."""
    from storage import areas, orgs
    from storage.db import open_store

    async with open_store(waitroom_server.db_path) as store:
        other_org = await orgs.create_organisation(store, "Another clinic")
        unit = await orgs.create_unit(store, other_org.id, "Their unit")
        theirs = await areas.create_area(store, unit.id, "Their area")
    app = make_app(waitroom_server)
    client = await signed_in_client(app, waitroom_server.demo.provider_username)
    existing = await client.get(f"/areas/{theirs.id}/leaflet.pdf")
    missing = await client.get("/areas/999999/leaflet.pdf")
    assert existing.status_code == missing.status_code == 404
    # The same page, but for the address itself (the language switch returns to it).
    page = (await existing.get_data(as_text=True)).replace(f"/areas/{theirs.id}/", "/areas/N/")
    assert page == (await missing.get_data(as_text=True)).replace("/areas/999999/", "/areas/N/")
