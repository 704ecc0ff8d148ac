"""The caller pages rendered once and filled in per request (issue 17) still give each caller their
own CSRF token, room token and TURN credentials, in their language, with no JavaScript needed."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from services.turn import TurnConfig
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient, Response
from waitroom.server import ServerConfig, ServerInfo, run_server

_TOKEN_IN_PAGE = re.compile(r'data-token="([^"]+)"')
_ICE_IN_PAGE = re.compile(r"data-ice='([^']*)'")
_CSRF_COOKIE = re.compile(r"^waitroom_csrf=([^;]+)")


@pytest.fixture
async def turn_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The whole server with a TURN server configured, so each page carries fresh credentials."""
    config = ServerConfig(
        port=0,
        media_udp_port=0,
        db_path=tmp_path / "waitroom.sqlite3",
        demo_password=DEMO_PASSWORD,
        turn=TurnConfig(urls=("turn:turn.example.org:3478",), secret="s3cret"),
    )
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
        assert info.demo is not None
        yield RunningServer(info.url, info.registry, info.demo, config.db_path, info)
        nursery.cancel_scope.cancel()


def _path(server: RunningServer) -> str:
    link = server.demo.area_links[0][1]
    return link[link.index("/w/") :]


def _turn_username(page: Response) -> str:
    found = _ICE_IN_PAGE.search(page.text)
    assert found is not None, "the waiting page has no data-ice"
    ice = json.loads(html.unescape(found.group(1)))
    (turn,) = [s for s in ice["iceServers"] if "username" in s]
    return str(turn["username"])


async def _arrive(client: HttpClient, path: str, name: str) -> tuple[Response, Response]:
    form = await client.get(path)
    assert form.status == 200
    page = await client.post(
        path, {"csrf_token": form.csrf_token(), "name": name, "reason": "knee", "consent": "yes"}
    )
    return form, page


async def test_each_caller_gets_their_own_tokens_from_the_cached_pages(
    turn_server: RunningServer,
) -> None:
    path = _path(turn_server)
    first, second = HttpClient(turn_server.base_url), HttpClient(turn_server.base_url)
    form_a, waiting_a = await _arrive(first, path, "Ada")
    form_b, waiting_b = await _arrive(second, path, "Bea")
    # Each browser's form carries the token its own cookie pairs with (double submit).
    token_a, token_b = form_a.csrf_token(), form_b.csrf_token()
    assert token_a != token_b
    assert first.cookies["waitroom_csrf"] == token_a
    assert second.cookies["waitroom_csrf"] == token_b
    # The forms are the same page otherwise: the second came from the cache.
    assert form_a.text.replace(token_a, "") == form_b.text.replace(token_b, "")
    assert waiting_a.status == waiting_b.status == 200
    room_a, room_b = _TOKEN_IN_PAGE.search(waiting_a.text), _TOKEN_IN_PAGE.search(waiting_b.text)
    assert room_a is not None and room_b is not None
    assert room_a.group(1) != room_b.group(1) and "." in room_a.group(1)
    # Fresh TURN credentials per page (a random user part), never the first page's.
    assert _turn_username(waiting_a) != _turn_username(waiting_b)
    assert "~wr-" not in waiting_a.text + waiting_b.text + form_a.text
    # A forged post (another browser's token) is still refused.
    forged = await second.post(
        path, {"csrf_token": token_a, "name": "Eve", "reason": "x", "consent": "yes"}
    )
    assert forged.status == 400


async def test_a_returning_browser_keeps_its_token_and_the_page_follows_the_language(
    turn_server: RunningServer,
) -> None:
    path = _path(turn_server)
    client = HttpClient(turn_server.base_url)
    english = await client.get(path)
    again = await client.get(path)
    assert english.csrf_token() == again.csrf_token() == client.cookies["waitroom_csrf"]
    assert not any(_CSRF_COOKIE.match(c) for c in again.set_cookies())  # nothing new to set
    client.cookies["waitroom_lang"] = "uk"
    ukrainian = await client.get(path)
    assert ukrainian.status == 200 and 'lang="uk"' in ukrainian.text
    assert 'lang="en"' in english.text and ukrainian.text != again.text
    # The waiting page without a token (a reload) is not given anyone's token.
    reload = await client.get(path + "/wait")
    token = re.search(r'data-token="([^"]*)"', reload.text)
    assert reload.status == 200 and token is not None and token.group(1) == ""


async def test_the_second_arrival_in_an_area_renders_no_template(
    turn_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import web.patient

    rendered: list[str] = []
    render = web.patient.render_template  # type: ignore[attr-defined]

    async def counting(template: str, **context: object) -> str:
        rendered.append(template)
        return await render(template, **context)

    monkeypatch.setattr(web.patient, "render_template", counting)
    path = _path(turn_server)
    await _arrive(HttpClient(turn_server.base_url), path, "Ada")
    assert rendered == ["patient/arrive.html", "patient/waiting.html"]
    _, page = await _arrive(HttpClient(turn_server.base_url), path, "Bea")
    assert page.status == 200 and _TOKEN_IN_PAGE.search(page.text) is not None
    assert rendered == ["patient/arrive.html", "patient/waiting.html"]  # both from the cache
