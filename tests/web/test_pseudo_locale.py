"""No caller page shows a string that bypassed the catalogue: walk them in the pseudo-locale ``xx``,
where every catalogue string comes out bracketed and accented ("[Ŵàîţîñĝ]"), and flag any visible
text (or accessible attribute) with letters outside brackets that is not data (names, the link)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from quart.typing import TestClientProtocol as QuartClient

from actors.messages import AreaPublic, DescribeArea, FindArea
from actors.waiting.areas import AREAS_ADDRESS
from tests.conftest import RunningServer
from web import i18n
from web.app import WebConfig, create_app

#: Attributes a person reads or a screen reader speaks.
SPOKEN_ATTRIBUTES = ("title", "alt", "placeholder", "aria-label")
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_LETTER = re.compile(r"[^\W\d_]")


class VisibleText(HTMLParser):
    """Collects text nodes and spoken attributes, skipping scripts, styles and hidden templates."""

    SKIP = frozenset({"script", "style", "noscript"})

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        values = dict(attrs)
        for name in SPOKEN_ATTRIBUTES:
            if values.get(name):
                self.texts.append(str(values[name]))
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.texts.append(str(values["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping and data.strip():
            self.texts.append(data.strip())


def unmarked(html: str, data: tuple[str, ...]) -> list[str]:
    """Visible strings with letters that neither came through the catalogue nor are data."""
    parser = VisibleText()
    parser.feed(html)
    found = []
    for text in parser.texts:
        rest = text
        for value in data:
            rest = rest.replace(value, " ")
        while _BRACKETED.search(rest):
            rest = _BRACKETED.sub(" ", rest)
        if _LETTER.search(rest):
            found.append(text)
    return found


def test_the_checker_flags_plain_text_and_passes_marked_text() -> None:
    page = (
        '<p>[Ŵàîţ] Demo area</p><script>var x = "Wait";</script>'
        '<button aria-label="Close">[Çļöšé]</button><p>Oops</p>'
    )
    assert unmarked(page, ("Demo area",)) == ["Close", "Oops"]


async def test_caller_pages_have_no_string_outside_the_catalogue(
    waitroom_server: RunningServer,
) -> None:
    app = create_app(waitroom_server.registry, WebConfig(service_name="Demo Clinic"))
    app.config["WAITROOM_PSEUDO_LOCALE"] = True
    client: QuartClient = app.test_client()
    await client.get("/lang/xx")
    area_name, link = waitroom_server.demo.area_links[0]
    slug = link.rsplit("/", 1)[1]
    # The consent text is what the area's admin typed: data, not a catalogue string.
    address = await waitroom_server.registry.ref(AREAS_ADDRESS).ask(FindArea(slug), timeout=5)
    info = await waitroom_server.registry.ref(str(address)).ask(DescribeArea(), timeout=5)
    assert isinstance(info, AreaPublic)
    data = (
        "Demo Clinic",
        area_name,
        "Ada Lovelace",
        info.consent_text,
        *(lang.native_name for lang in i18n.languages()),
    )

    pages: dict[str, str] = {}
    for path in (f"/w/{slug}", f"/w/{slug}/wait", "/w/no-such-area", "/i/not-a-token", "/g"):
        response = await client.get(path)
        pages[path] = await response.get_data(as_text=True)
    form_page = pages[f"/w/{slug}"]
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', form_page)
    assert csrf is not None
    arrived = await client.post(
        f"/w/{slug}", form={"csrf_token": csrf.group(1), "name": "Ada Lovelace", "consent": "yes"}
    )
    pages[f"POST /w/{slug}"] = await arrived.get_data(as_text=True)

    problems = {path: unmarked(html, data) for path, html in pages.items()}
    assert {path: found for path, found in problems.items() if found} == {}
    assert "[" in pages[f"/w/{slug}"]  # the pseudo-locale really was in use
