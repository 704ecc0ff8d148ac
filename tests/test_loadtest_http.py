"""The load tester's HTTP client keeps its connection as a browser does (issue 17).

A simulated caller gets the arrival form and posts it over one connection, as Chromium does; the
server may close an idle kept connection at any moment, and then the request goes again on a new
one, but only if no byte of an answer came (a request the server may have seen is not repeated).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import h11
import pytest
import trio

from waitroom.loadtest.http import Browser, HttpError


@dataclass
class _Server:
    """A small HTTP/1.1 server that answers ``/n`` with n and then does what ``after`` says."""

    #: "keep" answers and waits for the next request; "close" answers and hangs up (as an idle
    #: timeout would, without saying so); "half" sends half an answer and hangs up.
    after: str = "keep"
    connections: int = 0
    requests: list[tuple[int, str]] = field(default_factory=list)
    hung_up: trio.Event = field(default_factory=trio.Event)

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    self.requests.append((number, event.target.decode()))
                elif isinstance(event, h11.EndOfMessage):
                    body = self.requests[-1][1].encode()
                    head = conn.send(
                        h11.Response(status_code=200, headers=[("Content-Length", str(len(body)))])
                    )
                    if self.after == "half" and len(self.requests) > 1:
                        await stream.send_all((head or b"")[:10])
                        return
                    await stream.send_all((head or b"") + (conn.send(h11.Data(data=body)) or b""))
                    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
                    if self.after == "close" or conn.our_state is not h11.DONE:
                        await stream.aclose()
                        self.hung_up.set()
                        return
                    conn.start_next_cycle()


@asynccontextmanager
async def _serving(server: _Server) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


async def test_a_kept_connection_carries_the_form_and_its_post() -> None:
    server = _Server()
    async with _serving(server) as url, Browser(url, keep_alive=True) as browser:
        assert (await browser.get("/1")).text == "/1"
        assert (await browser.post_form("/2", {"name": "Ann"})).text == "/2"
        assert (await browser.get("/3")).text == "/3"
    assert server.requests == [(1, "/1"), (1, "/2"), (1, "/3")]


async def test_without_keep_alive_each_request_has_its_own_connection() -> None:
    server = _Server()
    async with _serving(server) as url:
        browser = Browser(url)
        await browser.get("/1")
        await browser.get("/2")
    assert server.requests == [(1, "/1"), (2, "/2")]


async def test_a_kept_connection_the_server_closed_unanswered_is_replaced() -> None:
    server = _Server(after="close")
    async with _serving(server) as url, Browser(url, keep_alive=True) as browser:
        await browser.get("/1")
        with trio.fail_after(5):
            await server.hung_up.wait()
        assert (await browser.get("/2")).text == "/2"
    assert server.requests == [(1, "/1"), (2, "/2")]


async def test_a_request_that_was_partly_answered_is_not_sent_again() -> None:
    server = _Server(after="half")
    async with _serving(server) as url, Browser(url, keep_alive=True) as browser:
        await browser.get("/1")
        with pytest.raises(HttpError) as failed:
            await browser.get("/2")
    assert failed.value.kind == "http_io"
    assert server.requests == [(1, "/1"), (1, "/2")]
