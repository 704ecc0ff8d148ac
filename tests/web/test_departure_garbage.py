"""A caller's websocket, once closed, is freed by reference count: it leaves no reference cycle.

The serving process freezes what outlives two collections and walks it only in rare audits
(waitroom/frozen_heap.py): a closed connection caught in a cycle would be kept until the next
one. Hypercorn's connection objects (the protocol holds its server's ``protocol_send``, the idle
timer holds the server) and the gateway's session (its mailbox holds the session's overflow
callback) were such cycles, about 70 objects per caller.
"""

from __future__ import annotations

import gc
import re

import trio

from actors import addresses
from tests.conftest import RunningServer
from tests.httpclient import HttpClient
from waitroom.loadtest.client import connect

#: Modules whose objects are the server's side of a connection (the test's client is not counted).
SERVER_SIDE = ("hypercorn.", "gateway.", "waitroom.", "actors.", "runtime.", "web.", "quart.")
CALLERS = 3


async def _room_token(server: RunningServer, name: str) -> str:
    client = HttpClient(server.base_url)
    slug = server.demo.area_links[0][1].rsplit("/", 1)[1]
    form = await client.get(f"/w/{slug}")
    page = await client.post(
        f"/w/{slug}", {"name": name, "consent": "yes", "csrf_token": form.csrf_token()}
    )
    token = re.search(r'data-token="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


async def _wait_and_leave(server: RunningServer, token: str) -> None:
    ws_url = server.base_url.replace("http://", "ws://") + "/ws"
    async with connect(ws_url, lambda _t, _b: None, token=token) as ws:
        await ws.request("room.enter", {}, addresses.room(token.partition(".")[0]))
    with trio.fail_after(5):  # until the server has let the connection go
        while server.registry.count_by_kind().get("conn", 0):  # noqa: ASYNC110 (in-process)
            await trio.sleep(0.02)


def _server_side(objects: list[object]) -> list[str]:
    names = (f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
    return sorted(name for name in names if name.startswith(SERVER_SIDE))


async def test_a_closed_caller_connection_leaves_no_cycle(waitroom_server: RunningServer) -> None:
    tokens = [await _room_token(waitroom_server, f"Caller {n}") for n in range(CALLERS + 1)]
    await _wait_and_leave(waitroom_server, tokens.pop())  # first use: caches, lazy imports
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept to look at
    try:
        for token in tokens:
            await _wait_and_leave(waitroom_server, token)
        gc.collect()
        left = _server_side(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == [], f"{len(left)} objects in cycles after {CALLERS} callers left: {left[:20]}"
