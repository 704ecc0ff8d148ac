"""The staff console (issue 13): staff land on it after sign-in, and it is made of sections.

The section registry (``web.console``) over real loaders and on Trio's virtual clock; the page
itself over a real server: sign-in lands on it, it shows the provider's live lists with their
share links, one failing section does not take it down, and the signed-out are sent to sign in.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping

import pytest
import trio
import trio.testing

from actors.principal import Principal
from runtime import Refusal
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from web import console

SEE_OTHER = 303
OK = 200
STAFF = Principal(kind="staff", display_name="Dr Test", user_id="1", org_id="1")


@pytest.fixture
def sections() -> Iterator[None]:
    """Whatever a test registers is gone afterwards (the registry is module state)."""
    saved = dict(console._sections)
    try:
        yield
    finally:
        console._sections.clear()
        console._sections.update(saved)


def fixed(data: Mapping[str, object] | None) -> console.Loader:
    async def load(principal: Principal) -> Mapping[str, object] | None:
        return data

    return load


@pytest.mark.usefixtures("sections")
async def test_sections_render_in_order_and_an_empty_one_is_left_out() -> None:
    console._sections.clear()
    console.register_section("later", 50, fixed({"n": 2}))
    console.register_section("first", 5, fixed({"n": 1}))
    console.register_section("nothing_here", 20, fixed(None))
    loaded = await console.load_sections(STAFF)
    assert [(s.name, s.data) for s in loaded] == [("first", {"n": 1}), ("later", {"n": 2})]
    assert loaded[0].template == "staff/console/first.html"
    assert console.registered() == ["first", "nothing_here", "later"]


@pytest.mark.usefixtures("sections")
async def test_registering_a_name_again_replaces_it() -> None:
    console._sections.clear()
    console.register_section("rooms", 30, fixed({"v": "old"}))
    console.register_section("rooms", 30, fixed({"v": "new"}))
    assert [s.data for s in await console.load_sections(STAFF)] == [{"v": "new"}]


@pytest.mark.parametrize("bad", ["", "Rooms", "../etc", "rooms.html", "a-b", "x" * 41, "1st"])
def test_a_name_that_is_not_a_plain_word_is_refused(bad: str) -> None:
    before = console.registered()
    with pytest.raises(ValueError):
        console.register_section(bad, 1, fixed({}))
    assert console.registered() == before


@pytest.mark.usefixtures("sections")
async def test_a_refused_late_or_buggy_section_fails_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    console._sections.clear()

    async def refused(principal: Principal) -> Mapping[str, object] | None:
        raise Refusal("forbidden", "not yours")

    async def late(principal: Principal) -> Mapping[str, object] | None:
        await trio.sleep(console.SECTION_TIMEOUT * 2)
        return {"never": True}

    async def buggy(principal: Principal) -> Mapping[str, object] | None:
        return {"x": {}["missing"]}

    console.register_section("refused", 1, refused)
    console.register_section("late", 2, late)
    console.register_section("buggy", 3, buggy)
    console.register_section("fine", 4, fixed({"ok": True}))
    started = trio.current_time()
    loaded = await console.load_sections(STAFF)
    assert [(s.name, s.failed, s.data) for s in loaded] == [
        ("refused", True, {}),
        ("late", True, {}),
        ("buggy", True, {}),
        ("fine", False, {"ok": True}),
    ]
    # Side by side and bounded: the late one costs the timeout once, not more.
    assert trio.current_time() - started == pytest.approx(console.SECTION_TIMEOUT)


async def test_sign_in_lands_on_the_console_with_the_live_lists(
    waitroom_server: RunningServer,
) -> None:
    """Tried as a new user would: sign in, follow the redirect, and the page shows who waits."""
    provider = HttpClient(waitroom_server.base_url)
    signed_in = await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    assert signed_in.status == SEE_OTHER and signed_in.header("location") == "/"
    page = await provider.get("/")
    assert page.status == OK
    text = html.unescape(page.text)
    assert "<h1>Your console</h1>" in text and 'id="console-waiting_areas"' in text
    for name, link in waitroom_server.demo.area_links:
        assert name in text and f'data-copy-link="{link}"' in text
    # The live lists are here (dashboard.js fills them over area.watch), not a click away.
    assert text.count('class="queue"') == len(waitroom_server.demo.area_links)
    assert 'id="dashboard"' in text and "js/dashboard.js" in text and "js/wire.js" in text
    # The old address of the live list shows the same console.
    old = await provider.get("/dashboard")
    assert old.status == OK and 'id="console-waiting_areas"' in old.text


async def test_a_failing_section_shows_a_notice_and_the_rest_still_works(
    waitroom_server: RunningServer, sections: None
) -> None:
    async def broken(principal: Principal) -> Mapping[str, object] | None:
        raise Refusal("unavailable", "down for the test")

    console.register_section("broken_for_test", 99, broken)
    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    page = await provider.get("/")
    assert page.status == OK
    assert 'id="console-broken_for_test"' in page.text and "could not be loaded" in page.text
    assert 'id="console-waiting_areas"' in page.text


async def test_a_section_whose_template_breaks_fails_alone(
    waitroom_server: RunningServer, sections: None
) -> None:
    """A partial that cannot render (here: none was written) costs only its own section."""
    console.register_section("no_template_for_test", 98, fixed({"x": 1}))
    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    page = await provider.get("/")
    assert page.status == OK
    assert 'id="console-no_template_for_test"' in page.text and "could not be loaded" in page.text
    assert 'id="console-waiting_areas"' in page.text and 'class="queue"' in page.text


async def test_signed_out_visitors_are_sent_to_sign_in(waitroom_server: RunningServer) -> None:
    for path in ("/", "/dashboard"):
        response = await HttpClient(waitroom_server.base_url).request(
            "GET", path, headers={"Accept": "text/html"}
        )
        assert response.status == SEE_OTHER, path
        assert response.header("location").startswith("/sign-in"), path
