"""Every way the gateway refuses a websocket is counted in ``/metrics`` (issue 15).

Failed on the old code: refusals were logged (the per-address limit's first one) or only sent to
the client, and ``/metrics`` had no ``waitroom_ws_refusals_total`` or ``waitroom_ws_errors_total``.

Each test makes one real refusal through a served gateway and scrapes ``/metrics`` over HTTP
before and after: the refused kind moves by exactly one and no other refusal or error series
moves at all. Most run against the whole server (``run_server``, behind a trusted proxy at
127.0.0.1 with one websocket per client address); the slow reader needs a tiny outbound queue
and an actor that pushes, so it runs against the gateway and metrics endpoint served alone.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from actors import addresses, refusals
from actors.inbound import Inbound, Push, RedeemToken
from actors.principal import Principal
from gateway import counters, protocol
from gateway.asgi import SESSION_COOKIE, GatewayEndpoint
from gateway.connection import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_AGAIN, Limits
from gateway.connlimit import CLOSE_TOO_MANY
from gateway.protocol import MAX_FRAME_BYTES, TRANSPORT_MAX_MESSAGE_BYTES
from runtime import ChildSpec, Registry, Supervisor
from runtime.errors import MailboxFull
from runtime.kernel import Actor, handles
from tests.conftest import DEMO_PASSWORD
from tests.httpclient import HttpClient
from waitroom.loadtest.http import parse_prometheus
from waitroom.metrics import LoopLag, Metrics, MetricsEndpoint
from waitroom.server import Router, ServerConfig, ServerInfo, run_server

#: The client the test plays, behind the trusted proxy (the test client sends X-Forwarded-For).
PATIENT_WIFI = "203.0.113.5"
REFUSALS = "waitroom_ws_refusals_total"
ERRORS = "waitroom_ws_errors_total"
#: A bound on each wait for the server (a refusal that never comes fails, not hangs).
PROMPTLY = 5.0


def refusal(reason: str) -> str:
    return f'{REFUSALS}{{reason="{reason}"}}'


def error(code: str) -> str:
    return f'{ERRORS}{{code="{code}"}}'


def refusal_series(text: str) -> dict[str, float]:
    """Every refusal and error sample of one scrape (and nothing else)."""
    return {
        key: value
        for key, value in parse_prometheus(text).items()
        if key.startswith((REFUSALS + "{", ERRORS + "{"))
    }


@dataclass
class Served:
    """A served gateway: where its websocket and its ``/metrics`` are."""

    ws_url: str
    base_url: str
    #: The demo's first waiting area (the whole server only).
    area_path: str = ""

    async def scrape(self) -> dict[str, float]:
        response = await HttpClient(self.base_url).get("/metrics")
        assert response.status == 200
        return refusal_series(response.text)

    @asynccontextmanager
    async def counts(self, expected: dict[str, int]) -> AsyncIterator[None]:
        """The block moves exactly the ``expected`` series by exactly that much, and no other."""
        before = await self.scrape()
        # Every label is there from the start (no series appears on the first refusal).
        assert set(before) == {refusal(r) for r in counters.REASONS} | {
            error(c) for c in counters.CODES
        }
        assert set(expected) <= set(before)
        yield
        after = await self.scrape()
        moved = {key: after[key] - before[key] for key in before if after[key] != before[key]}
        assert moved == expected

    def open(
        self, client: str = PATIENT_WIFI, headers: list[tuple[bytes, bytes]] | None = None
    ) -> AbstractAsyncContextManager[WebSocketConnection]:
        return open_websocket_url(
            self.ws_url, extra_headers=[(b"x-forwarded-for", client.encode()), *(headers or [])]
        )


async def answer(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(PROMPTLY):
        message = await ws.get_message()
    assert isinstance(message, bytes)
    return protocol.decode_server(message)


async def call(ws: WebSocketConnection, msg_type: str, body: dict[str, Any]) -> dict[str, Any]:
    await ws.send_message(protocol.encode_client(msg_type, body, 1))
    return await answer(ws)


async def refused_with(ws: WebSocketConnection, frame: bytes | str) -> str:
    """Send ``frame``; the error code it is answered with."""
    await ws.send_message(frame)
    reply = await answer(ws)
    assert reply["t"] == "error", reply
    code: str = reply["b"]["code"]
    return code


async def closed_with(ws: WebSocketConnection) -> int:
    with trio.fail_after(PROMPTLY), pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.get_message()
    assert closed.value.reason is not None
    return closed.value.reason.code


async def hello(ws: WebSocketConnection, token: str) -> None:
    reply = await call(ws, "hello", {"versions": [1], "token": token})
    assert reply["t"] == "reply" and reply["b"]["kind"] == "caller", reply


async def start_server(nursery: trio.Nursery, tmp_path: Path) -> Served:
    """The whole server, as ``waitroom serve --trusted-proxy 127.0.0.1
    --max-websockets-per-address 1`` starts it."""
    config = ServerConfig(
        port=0,
        media_udp_port=0,
        db_path=tmp_path / "refusals.sqlite3",
        demo_password=DEMO_PASSWORD,
        trusted_proxies=("127.0.0.1",),
        websockets_per_address=1,
    )
    info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
    assert info.demo is not None
    area_path = "/w/" + info.demo.area_links[0][1].rsplit("/", 1)[1]
    return Served(info.url.replace("http://", "ws://") + "/ws", info.url, area_path)


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> Served:
    return await start_server(nursery, tmp_path)


async def caller_token(server: Served) -> str:
    """A room token the only way a patient gets one: through the waiting area's arrival form."""
    client = HttpClient(server.base_url)
    form = await client.get(server.area_path)
    page = await client.post(
        server.area_path, {"name": "Ada", "consent": "yes", "csrf_token": form.csrf_token()}
    )
    token = re.search(r'data-token="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


# -- refused before or instead of a hello ----------------------------------------------------------


async def test_one_socket_over_the_per_address_limit(server: Served) -> None:
    async with server.open() as held:
        assert (await call(held, "ping", {}))["b"] == {"pong": True}
        counted = server.counts({refusal(counters.PER_ADDRESS_LIMIT): 1})
        async with counted, server.open() as extra:
            assert await closed_with(extra) == CLOSE_TOO_MANY


async def test_a_session_cookie_on_a_cross_origin_upgrade(server: Served) -> None:
    """Cross-site websocket hijacking: the cookie is ignored (counted), so hello is refused."""
    hijack = [(b"cookie", f"{SESSION_COOKIE}=stolen".encode()), (b"origin", b"https://evil.test")]
    expected = {refusal(counters.CROSS_ORIGIN_COOKIE): 1, error(refusals.UNAUTHENTICATED): 1}
    async with server.counts(expected), server.open(headers=hijack) as ws:
        assert (
            await refused_with(ws, protocol.encode_client("hello", {})) == refusals.UNAUTHENTICATED
        )


HELLO_REFUSALS = [
    pytest.param({"token": "gone.s3cret"}, refusals.INVALID_TOKEN, id="ended_or_unknown_room"),
    pytest.param({"token": "no-room-part"}, refusals.INVALID_TOKEN, id="invalid_token"),
    pytest.param({}, refusals.UNAUTHENTICATED, id="unauthenticated"),
    pytest.param({"versions": [99]}, refusals.UNSUPPORTED_VERSION, id="unsupported_version"),
    pytest.param({"token": 5}, refusals.BAD_FIELD, id="bad_field"),
]


@pytest.mark.parametrize(("body", "code"), HELLO_REFUSALS)
async def test_a_refused_hello(server: Served, body: dict[str, Any], code: str) -> None:
    async with server.counts({error(code): 1}), server.open() as ws:
        assert await refused_with(ws, protocol.encode_client("hello", body, 1)) == code


FRAME_REFUSALS = [
    pytest.param(b"\xc1", refusals.MALFORMED, id="malformed"),
    pytest.param(
        protocol.encode_client("echo", {"x": "y" * 10}, 1)[:-3], refusals.MALFORMED, id="truncated"
    ),
    pytest.param("hello", refusals.BINARY_REQUIRED, id="binary_required"),
    pytest.param(b"\x80" * (MAX_FRAME_BYTES + 1), refusals.FRAME_TOO_LARGE, id="frame_too_large"),
    pytest.param(
        protocol.encode_client("echo", {}, 1), refusals.HELLO_REQUIRED, id="hello_required"
    ),
]


@pytest.mark.parametrize(("frame", "code"), FRAME_REFUSALS)
async def test_a_refused_frame(server: Served, frame: bytes | str, code: str) -> None:
    assert TRANSPORT_MAX_MESSAGE_BYTES > MAX_FRAME_BYTES + 1  # the gateway's refusal, not 1009
    async with server.counts({error(code): 1}), server.open() as ws:
        assert await refused_with(ws, frame) == code


async def test_too_many_refused_frames_in_a_row_close_the_socket(server: Served) -> None:
    strikes = Limits().max_strikes
    expected = {error(refusals.MALFORMED): strikes, refusal(counters.TOO_MANY_REFUSED): 1}
    async with server.counts(expected), server.open() as ws:
        for _ in range(strikes):
            assert await refused_with(ws, b"\xc1") == refusals.MALFORMED
        assert await closed_with(ws) == CLOSE_POLICY


# -- refused after a hello -------------------------------------------------------------------------


async def test_a_caller_refused_a_staff_message_an_unknown_type_and_a_second_hello(
    server: Served,
) -> None:
    """One socket, three refusals: each code moves by one (the test per code is the block)."""
    token = await caller_token(server)
    async with server.open() as ws:
        await hello(ws, token)
        async with server.counts({error(refusals.FORBIDDEN): 1}):
            watch = protocol.encode_client("meetings.watch", {}, 2)
            assert await refused_with(ws, watch) == refusals.FORBIDDEN
        async with server.counts({error(refusals.UNKNOWN_TYPE): 1}):
            nonsense = protocol.encode_client("no.such.type", {}, 3)
            assert await refused_with(ws, nonsense) == refusals.UNKNOWN_TYPE
        async with server.counts({error(refusals.ALREADY_AUTHENTICATED): 1}):
            again = protocol.encode_client("hello", {"token": token}, 4)
            assert await refused_with(ws, again) == refusals.ALREADY_AUTHENTICATED


# -- time: on the virtual clock ----------------------------------------------------------------------


async def test_the_message_rate_limit(mock_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    """The clock stands still, so the bucket never refills: exactly its burst gets through."""
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, tmp_path)
        burst = Limits().burst
        async with server.open() as ws, server.counts({error(refusals.RATE_LIMITED): 1}):
            for _ in range(burst):
                assert (await call(ws, "ping", {}))["b"] == {"pong": True}
            ping = protocol.encode_client("ping", {}, 1)
            assert await refused_with(ws, ping) == refusals.RATE_LIMITED
        nursery.cancel_scope.cancel()


async def test_no_hello_in_time(mock_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, tmp_path)
        async with server.counts({refusal(counters.HELLO_TIMEOUT): 1}), server.open() as ws:
            # A ping before hello is answered but does not put the hello deadline off.
            assert (await call(ws, "ping", {}))["b"] == {"pong": True}
            mock_clock.jump(Limits().hello_timeout + 1)
            assert await closed_with(ws) == CLOSE_GOING_AWAY
        nursery.cancel_scope.cancel()


# -- the slow reader: the gateway and /metrics served alone ------------------------------------------

#: The outbound queue of the slow-reader test, and how many events its actor pushes at once.
SMALL_QUEUE = 4
FLOOD = 3 * SMALL_QUEUE


class Flooder(Actor):
    """A room that answers ``chat.send`` by pushing more events at once than the queue holds."""

    @handles(RedeemToken)
    async def _redeem(self, message: RedeemToken) -> Principal:
        return Principal(kind="caller", display_name="Pat", room_id="r1", participant_id="p1")

    @handles(Inbound)
    async def _inbound(self, message: Inbound) -> dict[str, object]:
        conn = self.ref(message.conn)
        for n in range(FLOOD):  # no checkpoint between them: the connection cannot drain
            try:
                conn.tell(Push("chat.message", {"n": n}))
            except MailboxFull:
                break
        return {"ok": True}


async def not_found(scope: Any, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    """The pages' place in the router: nothing here but the gateway and /metrics."""
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_a_client_too_slow_to_read_its_events(nursery: trio.Nursery) -> None:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await root.start_child(ChildSpec(addresses.room("r1"), Flooder))
    endpoint = GatewayEndpoint(registry, Limits(outbound_queue=SMALL_QUEUE))
    metrics = Metrics(registry, lambda: (endpoint.open_connections, 0), LoopLag())
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.websocket_max_message_size = TRANSPORT_MAX_MESSAGE_BYTES
    config.accesslog = None
    config.errorlog = None
    app = Router(not_found, endpoint, MetricsEndpoint(metrics))
    binds = await nursery.start(serve, app, config)
    server = Served(binds[0].replace("http://", "ws://") + "/ws", binds[0])
    async with server.counts({refusal(counters.SLOW_READER): 1}), server.open() as ws:
        await hello(ws, "r1.any")
        await ws.send_message(protocol.encode_client("chat.send", {"text": "hi"}, 2))
        assert await closed_with(ws) == CLOSE_TRY_AGAIN
