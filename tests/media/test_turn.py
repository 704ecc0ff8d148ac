"""The credentials services.turn hands out are the ones coturn's use-auth-secret accepts.

coturn runs on loopback (tests/media/turnserver.py); aioice's TURN client allocates a relay with
them over UDP and over TCP, and is refused with a wrong secret or an expired username. Starts a
server process: run under the machine-wide lock (CONTRIBUTING, heavy jobs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from aioice import turn as aioice_turn

from services.turn import TurnConfig, credentials, ice_servers
from tests.media.turnserver import Coturn, coturn

pytestmark = pytest.mark.slow


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Coturn]:
    with coturn(tmp_path) as server:
        yield server


def allocate(server: Coturn, username: str, password: str, transport: str) -> tuple[str, int]:
    """A TURN allocation through aioice (asyncio, in its own thread); returns the relayed address."""

    async def run() -> tuple[str, int]:
        endpoint, _ = await asyncio.wait_for(
            aioice_turn.create_turn_endpoint(
                asyncio.DatagramProtocol,
                (server.host, server.port),
                username,
                password,
                transport=transport,
            ),
            timeout=5,
        )
        try:
            address = endpoint.get_extra_info("sockname")
            return str(address[0]), int(address[1])
        finally:
            endpoint.close()

    return asyncio.run(run())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_handed_out_credentials_allocate_a_relay(relay: Coturn, transport: str) -> None:
    config = TurnConfig(urls=(relay.url(transport),), secret=relay.secret, ttl=300)
    [server] = ice_servers(config)
    address = await trio.to_thread.run_sync(
        allocate, relay, str(server["username"]), str(server["credential"]), transport
    )
    assert address[0] == "127.0.0.1" and address[1] in relay.relay_ports


async def test_a_wrong_secret_is_refused(relay: Coturn) -> None:
    config = TurnConfig(urls=(relay.url(),), secret="not-the-secret", ttl=300)
    [server] = ice_servers(config)
    with pytest.raises(Exception, match=r"401|Unauthorized|auth"):
        await trio.to_thread.run_sync(
            allocate, relay, str(server["username"]), str(server["credential"]), "udp"
        )


async def test_an_expired_username_is_refused(relay: Coturn) -> None:
    username, password = credentials(relay.secret, "expired", 1_000_000_000)  # in 2001
    with pytest.raises(Exception, match=r"401|Unauthorized|auth"):
        await trio.to_thread.run_sync(allocate, relay, username, password, "udp")
