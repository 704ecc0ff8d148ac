"""A gateway client for simulated users: hello, requests matched to replies, events to a callback."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

from gateway.protocol import decode_server_messages, encode_client

#: Bounds the websocket handshake and every request's reply.
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0
#: Seconds between pings, as the browser's wire.js sends them: the server closes a connection
#: silent for its idle timeout (60 s), so a simulated caller waiting longer must ping too.
HEARTBEAT_SECONDS = 20.0

EventHandler = Callable[[str, dict[str, Any]], None]


class GatewayRefused(Exception):
    """The server answered a request with an error frame; ``code`` is its error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class GatewayClient:
    def __init__(self, ws: WebSocketConnection, on_event: EventHandler) -> None:
        self.ws = ws
        self.on_event = on_event
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}
        self.closed = trio.Event()

    async def request(
        self, msg_type: str, body: dict[str, Any] | None = None, to: str | None = None
    ) -> dict[str, Any]:
        """Send one message and return the reply body; an error frame raises GatewayRefused."""
        request_id = next(self._ids)
        done = trio.Event()
        slot: list[dict[str, Any]] = []
        self._waiting[request_id] = (done, slot)
        try:
            await self.ws.send_message(encode_client(msg_type, body or {}, request_id, to))
            with trio.move_on_after(REQUEST_TIMEOUT):
                await done.wait()
        finally:
            self._waiting.pop(request_id, None)
        if not slot:
            raise GatewayRefused("timeout" if not self.closed.is_set() else "closed", msg_type)
        frame = slot[0]
        if frame.get("t") == "error":
            error = frame.get("b") or {}
            raise GatewayRefused(str(error.get("code")), str(error.get("detail")))
        body_out: dict[str, Any] = frame.get("b") or {}
        return body_out

    async def heartbeat(self) -> None:
        """Ping every `HEARTBEAT_SECONDS` until the connection closes (cancelled with it)."""
        while not self.closed.is_set():
            await trio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.request("ping", {})
            except (GatewayRefused, ConnectionClosed):
                return

    async def read_loop(self) -> None:
        try:
            while True:
                data = await self.ws.get_message()
                if not isinstance(data, bytes):
                    continue
                for frame in decode_server_messages(data):
                    request_id = frame.get("id")
                    if frame.get("t") in ("reply", "error") and request_id in self._waiting:
                        done, slot = self._waiting[request_id]
                        slot.append(frame)
                        done.set()
                    else:
                        self.on_event(str(frame.get("t")), frame.get("b") or {})
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for done, _ in self._waiting.values():
                done.set()


@asynccontextmanager
async def connect(
    ws_url: str,
    on_event: EventHandler,
    *,
    token: str | None = None,
    cookie: str | None = None,
) -> AsyncIterator[GatewayClient]:
    """Open ``/ws``, say hello (with a room token or a staff session cookie), yield the client."""
    headers = [(b"Cookie", cookie.encode())] if cookie else None
    try:
        async with _connected(ws_url, on_event, token, headers) as client:
            yield client
    except BaseExceptionGroup as group:
        # A nursery wraps even a single failure; callers classify plain exceptions.
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise


@asynccontextmanager
async def _connected(
    ws_url: str,
    on_event: EventHandler,
    token: str | None,
    headers: list[tuple[bytes, bytes]] | None,
) -> AsyncIterator[GatewayClient]:
    async with trio.open_nursery() as nursery:
        with trio.fail_after(CONNECT_TIMEOUT):
            ws = await connect_websocket_url(nursery, ws_url, extra_headers=headers)
        try:
            client = GatewayClient(ws, on_event)
            nursery.start_soon(client.read_loop)
            # Version 2 as the pages speak it: several events may share a frame.
            hello: dict[str, Any] = {"versions": [1, 2]}
            if token:
                hello["token"] = token
            await client.request("hello", hello)
            nursery.start_soon(client.heartbeat)
            yield client
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await ws.aclose()
            nursery.cancel_scope.cancel()
