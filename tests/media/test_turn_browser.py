"""Chromium with iceTransportPolicy "relay" calls through coturn (issue 16).

coturn runs on loopback with use-auth-secret (tests/media/turnserver.py); the pages get the
credentials services.turn hands out, over UDP, over TCP and over TLS to the relay. Both decode each other's
video and hear each other, and the worker never sees a direct path: every address it bound is
one of coturn's relayed ports. Run under the machine-wide lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from media.worker import Worker, WorkerConfig
from services.turn import TurnConfig, ice_servers
from tests.media.test_tcp_browser import bound_addresses, two_pages
from tests.media.turnserver import Coturn, coturn

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Coturn]:
    with coturn(tmp_path) as server:
        yield server


@pytest.fixture
def tls_relay(tmp_path: Path) -> Iterator[Coturn]:
    with coturn(tmp_path, tls=True) as server:
        yield server


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        yield w
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_chromium_calls_through_coturn_and_never_directly(
    worker: Worker, relay: Coturn, tmp_path: Path, transport: str
) -> None:
    turn = TurnConfig(urls=(relay.url(transport),), secret=relay.secret, ttl=600)
    ice = {"iceServers": ice_servers(turn), "iceTransportPolicy": "relay"}
    profile = tmp_path / "profile"
    states = await trio.to_thread.run_sync(two_pages, worker, profile, ice)
    assert all("connected" in s for s in states.values()), states
    bound = bound_addresses(worker)
    assert set(bound) == {"alice", "bob"}
    for peer, addrs in bound.items():
        assert addrs, peer
        for host, port in addrs:
            assert host == "127.0.0.1" and port in relay.relay_ports, (peer, addrs)
    stats = worker.stats()
    assert stats["forwarded"] > 0 and stats["internal_errors"] == 0, stats


async def test_chromium_calls_through_coturn_over_tls(
    worker: Worker, tls_relay: Coturn, tmp_path: Path
) -> None:
    """``turns:`` (TURN over TLS, for networks that let only TLS out). Chromium checks the TURN
    server's certificate like any other: this test's is self-signed, so the browser is told to
    accept it; a deployment needs a certificate browsers trust (docs/operations.md)."""
    turn = TurnConfig(urls=(tls_relay.url("tls"),), secret=tls_relay.secret, ttl=600)
    ice = {"iceServers": ice_servers(turn), "iceTransportPolicy": "relay"}
    states = await trio.to_thread.run_sync(
        lambda: two_pages(
            worker, tmp_path / "profile", ice, extra_args=("--ignore-certificate-errors",)
        )
    )
    assert all("connected" in s for s in states.values()), states
    for peer, addrs in bound_addresses(worker).items():
        assert addrs, peer
        for host, port in addrs:
            assert host == "127.0.0.1" and port in tls_relay.relay_ports, (peer, addrs)
    assert worker.stats()["forwarded"] > 0
