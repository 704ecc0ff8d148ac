"""Open websockets per client address are bounded (issue 15), behind a trusted proxy too.

Failed on the old code: nothing counted sockets, so one address opened as many as it liked (the
over-limit connections below were served, and no ``--max-websockets-per-address`` existed).

The gateway runs behind :class:`~waitroom.trusted_proxy.TrustedProxy` trusting 127.0.0.1, and
the test client plays nginx: each socket carries ``X-Forwarded-For`` naming the client it stands
for, so the limit applies to the real client, never to the proxy's loopback address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from actors import addresses
from actors.system import Echo
from gateway import protocol
from gateway.asgi import GatewayEndpoint
from gateway.connlimit import CLOSE_REASON, CLOSE_TOO_MANY, DEFAULT_PER_ADDRESS, PerAddressLimit
from runtime import ChildSpec, Registry, Supervisor
from tests.conftest import DEMO_PASSWORD
from waitroom.cli import WEBSOCKETS_PER_ADDRESS_ENV, build_parser, config_from_args
from waitroom.server import ServerConfig, ServerInfo, run_server
from waitroom.trusted_proxy import TrustedProxy, parse_networks

LIMIT = 3
PATIENT_WIFI = "203.0.113.5"
ELSEWHERE = "198.51.100.20"


def test_counting_and_release() -> None:
    limit = PerAddressLimit(2)
    assert limit.acquire(PATIENT_WIFI) and limit.acquire(PATIENT_WIFI)
    assert not limit.acquire(PATIENT_WIFI)
    assert limit.refused == 1 and limit.open_from(PATIENT_WIFI) == 2
    assert limit.acquire(ELSEWHERE)
    limit.release(PATIENT_WIFI)
    assert limit.acquire(PATIENT_WIFI)
    for _ in range(2):
        limit.release(PATIENT_WIFI)
    limit.release(ELSEWHERE)
    assert limit.open_from(PATIENT_WIFI) == 0 and not limit._open  # no counter left behind
    # Loopback (an untrusted proxy's address, a load test) is never counted.
    assert all(limit.acquire("127.0.0.1") for _ in range(10))
    assert limit.open_from("127.0.0.1") == 0
    with pytest.raises(ValueError):
        PerAddressLimit(0)


def test_the_flag_and_the_variable() -> None:
    def count(argv: list[str], env: dict[str, str]) -> int:
        args = build_parser().parse_args(["serve", *argv])
        return config_from_args(args, env).websockets_per_address

    assert count([], {}) == DEFAULT_PER_ADDRESS == 200
    assert count(["--max-websockets-per-address", "50"], {}) == 50
    assert count([], {WEBSOCKETS_PER_ADDRESS_ENV: "80"}) == 80
    assert count(["--max-websockets-per-address", "50"], {WEBSOCKETS_PER_ADDRESS_ENV: "80"}) == 50
    for bad in ("0", "-1", "100001"):
        with pytest.raises(SystemExit, match="--max-websockets-per-address"):
            count(["--max-websockets-per-address", bad], {})
    with pytest.raises(SystemExit, match=WEBSOCKETS_PER_ADDRESS_ENV):
        count([], {WEBSOCKETS_PER_ADDRESS_ENV: "lots"})


class WatchedLimit(PerAddressLimit):
    """The real limit, telling the test when a connection's count was given back."""

    def __init__(self, maximum: int) -> None:
        super().__init__(maximum)
        self.released = trio.Event()

    def release(self, address: str) -> None:
        super().release(address)
        self.released.set()


@dataclass
class Proxied:
    url: str
    endpoint: GatewayEndpoint
    limit: WatchedLimit


@pytest.fixture
async def proxied(nursery: trio.Nursery) -> AsyncIterator[Proxied]:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await root.start_child(ChildSpec(addresses.ECHO, Echo))
    limit = WatchedLimit(LIMIT)
    endpoint = GatewayEndpoint(registry, per_address=limit)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    app = TrustedProxy(endpoint, parse_networks(["127.0.0.1"]))
    binds = await nursery.start(serve, app, config)
    yield Proxied(binds[0].replace("http://", "ws://") + "/ws", endpoint, limit)


def open_as(url: str, client: str) -> AbstractAsyncContextManager[WebSocketConnection]:
    return open_websocket_url(url, extra_headers=[(b"x-forwarded-for", client.encode())])


async def served(ws: WebSocketConnection) -> bool:
    """True if a session answers (``hello_required`` to an echo before hello)."""
    await ws.send_message(protocol.encode_client("echo", {}, 1))
    message = await ws.get_message()
    assert isinstance(message, bytes)
    frame = protocol.decode_server(message)
    return bool(frame["b"] == {"code": "hello_required", "detail": "send hello first"})


async def refused(ws: WebSocketConnection) -> bool:
    with pytest.raises(ConnectionClosed) as closed:
        await ws.get_message()
    reason = closed.value.reason
    assert reason is not None
    return reason.code == CLOSE_TOO_MANY and reason.reason == CLOSE_REASON


async def test_one_address_over_the_limit_is_closed_before_hello(proxied: Proxied) -> None:
    async with AsyncExitStack() as stack:
        held = [
            await stack.enter_async_context(open_as(proxied.url, PATIENT_WIFI))
            for _ in range(LIMIT)
        ]
        for ws in held:
            assert await served(ws)
        sessions_before = proxied.endpoint.total_connections
        async with open_as(proxied.url, PATIENT_WIFI) as extra:
            assert await refused(extra)
        # Refused before any session work: no session was started for it.
        assert proxied.endpoint.total_connections == sessions_before
        assert proxied.endpoint.per_address.refused == 1
        # Another client behind the same proxy is not affected.
        async with open_as(proxied.url, ELSEWHERE) as other:
            assert await served(other)
        # One tab closes: the next one from that address gets in.
        await held[0].aclose()
        with trio.fail_after(5):
            while proxied.limit.open_from(PATIENT_WIFI) == LIMIT:
                proxied.limit.released = trio.Event()  # no checkpoint since the check
                await proxied.limit.released.wait()
        async with open_as(proxied.url, PATIENT_WIFI) as again:
            assert await served(again)


async def test_waitroom_serve_applies_the_setting_to_the_real_client(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """The whole server, as ``waitroom serve --trusted-proxy 127.0.0.1
    --max-websockets-per-address 2`` starts it: forwarded clients are limited, the proxy not."""
    config = ServerConfig(
        port=0,
        media_udp_port=0,
        db_path=tmp_path / "limit.sqlite3",
        demo_password=DEMO_PASSWORD,
        trusted_proxies=("127.0.0.1",),
        websockets_per_address=2,
    )
    info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
    url = info.url.replace("http://", "ws://") + "/ws"
    async with AsyncExitStack() as stack:
        for _ in range(2):
            ws = await stack.enter_async_context(open_as(url, PATIENT_WIFI))
            assert await served(ws)
        async with open_as(url, PATIENT_WIFI) as extra:
            assert await refused(extra)
        # Straight from loopback (no forwarded address): the proxy itself is never limited.
        for _ in range(3):
            ws = await stack.enter_async_context(open_websocket_url(url))
            assert await served(ws)
    nursery.cancel_scope.cancel()
