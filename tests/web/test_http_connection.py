"""The lean HTTP connection answers every kind of request the pages get (issue 17).

A request that arrives whole is answered in the connection's own task, the page in one body
message; a body that streams in and a response that is not one block of bytes (a static file)
go Quart-Trio's usual way. All of it over one kept connection, as a browser sends it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode, urlsplit

import h11
import pytest
import trio

from tests.conftest import RunningServer
from tests.web.test_patient_pages import slug_path
from waitroom.loadtest.http import Browser
from web.http_connection import WHOLE_WITHIN, LeanHTTPConnection

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests whose bodies went Quart-Trio's streaming way."""
    paths: list[str] = []
    usual = LeanHTTPConnection.handle_messages

    async def counted(self: LeanHTTPConnection, *args: object) -> None:
        paths.append(self.scope["path"])
        await usual(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(LeanHTTPConnection, "handle_messages", counted)
    return paths


async def _read(stream: trio.SocketStream, conn: h11.Connection) -> tuple[int, bytes]:
    status, body = 0, b""
    with trio.fail_after(10):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                conn.start_next_cycle()
                return status, body


async def test_an_arrival_form_and_its_post_over_one_connection(
    waitroom_server: RunningServer, streamed: list[str]
) -> None:
    path = slug_path(waitroom_server)
    async with Browser(waitroom_server.base_url, keep_alive=True) as browser:
        form = await browser.get(path)
        assert form.status == 200 and form.header("content-type") is not None
        csrf = form.csrf_token()
        assert csrf is not None
        page = await browser.post_form(
            path, {"csrf_token": csrf, "name": "Ann Whole", "consent": "yes"}
        )
        assert page.status == 200
        assert "data-token" in page.text
        assert page.header("content-security-policy") is not None  # the same headers as ever
        assert int(page.header("content-length") or 0) == len(page.text.encode())
    assert streamed == []  # both came whole


async def test_a_body_that_streams_in_and_a_static_file_on_the_same_connection(
    waitroom_server: RunningServer, streamed: list[str]
) -> None:
    path = slug_path(waitroom_server)
    browser = Browser(waitroom_server.base_url)
    csrf = (await browser.get(path)).csrf_token()
    assert csrf is not None
    body = urlencode({"csrf_token": csrf, "name": "Bo Streamed", "consent": "yes"}).encode()
    address = urlsplit(waitroom_server.base_url)
    stream = await trio.open_tcp_stream(address.hostname or "", address.port or 80)
    conn = h11.Connection(h11.CLIENT)
    async with stream:
        headers = [
            ("Host", address.netloc),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", str(len(body))),
            ("Cookie", browser.cookie_header()),
        ]
        await stream.send_all(conn.send(h11.Request(method="POST", target=path, headers=headers)))
        await stream.send_all(conn.send(h11.Data(data=body[:10])) or b"")
        # The rest after a longer pause than the server gathers a body for (a slow network;
        # a real pause, as the server's own clock is real): the arrival's lean path waits that
        # long, hands the request to Quart, whose connection waits that long again.
        await trio.sleep(2 * WHOLE_WITHIN + 0.2)
        await stream.send_all(conn.send(h11.Data(data=body[10:])) or b"")
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        status, page = await _read(stream, conn)
        assert status == 200 and b"data-token" in page
        assert streamed == [path]

        css = "/static/css/base.css"
        await stream.send_all(
            conn.send(h11.Request(method="GET", target=css, headers=[("Host", address.netloc)]))
            or b""
        )
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        status, sheet = await _read(stream, conn)
        assert status == 200
        assert sheet == (STATIC / "css" / "base.css").read_bytes()


async def test_a_client_that_leaves_mid_body_costs_nothing_and_the_next_is_served(
    waitroom_server: RunningServer,
) -> None:
    path = slug_path(waitroom_server)
    address = urlsplit(waitroom_server.base_url)
    stream = await trio.open_tcp_stream(address.hostname or "", address.port or 80)
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", address.netloc), ("Content-Length", "1000")]
    await stream.send_all(conn.send(h11.Request(method="POST", target=path, headers=headers)))
    await stream.send_all(conn.send(h11.Data(data=b"name=half")) or b"")
    await stream.aclose()
    form = await Browser(waitroom_server.base_url).get(path)
    assert form.status == 200 and form.csrf_token() is not None
