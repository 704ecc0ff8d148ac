"""A gateway served by hypercorn on a loopback port, with a room actor that accepts one token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors import addresses, refusals
from actors.inbound import Inbound, Push, RedeemToken
from actors.principal import Principal
from actors.system import Echo
from gateway.asgi import GatewayEndpoint
from gateway.connection import Limits
from gateway.protocol import TRANSPORT_MAX_MESSAGE_BYTES
from runtime import ChildSpec, Refusal, Registry, Supervisor
from runtime.kernel import Actor, handles

ROOM_SECRET = "s3cret-token"


class TinyRoom(Actor):
    """A real room-shaped actor: redeems one token and echoes chat to the sender's connection."""

    @handles(RedeemToken)
    async def _redeem(self, message: RedeemToken) -> Principal:
        if message.secret != ROOM_SECRET:
            raise Refusal(refusals.INVALID_TOKEN, "wrong token")
        return Principal(kind="caller", display_name="Pat", room_id="r1", participant_id="p1")

    @handles(Inbound)
    async def _inbound(self, message: Inbound) -> dict[str, object]:
        if message.type != "chat.send":
            raise Refusal(refusals.UNKNOWN_TYPE, f"TinyRoom does not handle {message.type}")
        self.ref(message.conn).tell(Push("chat.message", {"text": message.body["text"]}))
        return {"ok": True}


@dataclass
class GatewayServer:
    url: str
    registry: Registry
    endpoint: GatewayEndpoint


async def start_gateway(nursery: trio.Nursery, limits: Limits | None = None) -> GatewayServer:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await root.start_child(ChildSpec(addresses.ECHO, Echo))
    await root.start_child(ChildSpec(addresses.room("r1"), TinyRoom))
    endpoint = GatewayEndpoint(registry, limits)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.websocket_max_message_size = TRANSPORT_MAX_MESSAGE_BYTES
    config.accesslog = None
    config.errorlog = None
    binds = await nursery.start(serve, endpoint, config)
    url = binds[0].replace("http://", "ws://") + "/ws"
    return GatewayServer(url, registry, endpoint)


@pytest.fixture
async def gateway_server(nursery: trio.Nursery) -> AsyncIterator[GatewayServer]:
    yield await start_gateway(nursery)
