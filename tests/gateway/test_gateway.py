"""A real trio-websocket client against the real gateway: round trips, limits and hostile frames."""

from __future__ import annotations

import gc
import os
import random

import msgpack
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from gateway import protocol
from gateway.auth import Authenticator
from gateway.connection import CLOSE_GOING_AWAY, ClientSession, Limits
from runtime import Registry
from tests.gateway.conftest import ROOM_SECRET, GatewayServer, start_gateway


async def call(
    ws: WebSocketConnection, msg_type: str, body: dict[str, object], rid: int, to: str | None = None
) -> dict[str, object]:
    await ws.send_message(protocol.encode_client(msg_type, body, rid, to))
    while True:
        frame = protocol.decode_server(await ws.get_message())
        if frame.get("id") == rid and frame["t"] in ("reply", "error"):
            return frame


async def hello(ws: WebSocketConnection, token: str = f"r1.{ROOM_SECRET}") -> dict[str, object]:
    return await call(ws, "hello", {"versions": [1], "token": token}, 1)


async def test_round_trip_through_gateway_actor_and_back(gateway_server: GatewayServer) -> None:
    async with open_websocket_url(gateway_server.url) as ws:
        welcome = await hello(ws)
        assert welcome["t"] == "reply"
        assert welcome["b"]["kind"] == "caller" and welcome["b"]["version"] == 1  # type: ignore[index]
        reply = await call(ws, "echo", {"data": [1, "two", {"3": 4.0}]}, 2)
        assert reply == {"t": "reply", "id": 2, "b": {"data": [1, "two", {"3": 4.0}]}}
        # A room actor pushes an event back to this connection, then replies.
        await ws.send_message(protocol.encode_client("chat.send", {"text": "hello"}, 3))
        first = protocol.decode_server(await ws.get_message())
        second = protocol.decode_server(await ws.get_message())
        assert {first["t"], second["t"]} == {"chat.message", "reply"}


async def test_typed_errors_change_nothing(gateway_server: GatewayServer) -> None:
    async with open_websocket_url(gateway_server.url) as ws:
        before = await call(ws, "echo", {}, 5)
        assert before["b"] == {"code": "hello_required", "detail": "send hello first"}
        bad = await hello(ws, token="r1.wrong")
        assert bad["t"] == "error" and bad["b"]["code"] == "invalid_token"  # type: ignore[index]
        gone = await hello(ws, token="nosuchroom.abc")
        assert gone["b"]["code"] == "invalid_token"  # type: ignore[index]
        assert (await hello(ws))["t"] == "reply"
        cases = [
            ("unknown.type", {}, None, "unknown_type"),
            ("chat.send", {}, None, "missing_field"),
            ("chat.send", {"text": 5}, None, "bad_field"),
            ("chat.send", {"text": "x" * 3000}, None, "bad_field"),
            ("chat.send", {"text": "hi"}, "room/other", "forbidden"),
            ("area.watch", {}, "area/1", "forbidden"),
            ("call.end", {}, None, "forbidden"),
        ]
        for i, (t, body, to, code) in enumerate(cases, start=10):
            error = await call(ws, t, body, i, to)
            assert error["t"] == "error" and error["b"]["code"] == code, (t, error)  # type: ignore[index]
        await ws.send_message(b"\xc1not msgpack")
        assert protocol.decode_server(await ws.get_message())["b"]["code"] == "malformed"
        await ws.send_message("text frame")
        assert protocol.decode_server(await ws.get_message())["b"]["code"] == "binary_required"
        await ws.send_message(msgpack.packb([1, 2, 3]))
        assert protocol.decode_server(await ws.get_message())["b"]["code"] == "malformed"
        await ws.send_message(b"\x81\xa1t" + b"\xc4\x10" + b"x" * 16)
        assert protocol.decode_server(await ws.get_message())["b"]["code"] == "malformed"
        assert (await call(ws, "echo", {"data": "still fine"}, 99))["b"] == {"data": "still fine"}


def hostile_frames(rng: random.Random) -> list[bytes | str]:
    frames: list[bytes | str] = []
    for i in range(1000):
        kind = i % 8
        if kind == 0:
            frames.append(os.urandom(rng.randrange(1, 200)))
        elif kind == 1:
            frames.append(msgpack.packb({"t": rng.choice(["", "x" * 100, 7, None]), "b": []}))
        elif kind == 2:
            frames.append(msgpack.packb({"t": "chat.send", "id": -5, "b": {"text": "x"}}))
        elif kind == 3:
            frames.append(msgpack.packb({"t": "echo", "b": {"data": [[[[[]]]]] * 10}, "id": "x"}))
        elif kind == 4:
            frames.append(msgpack.packb({"t": "hello", "b": {"versions": [99]}, "id": 1}))
        elif kind == 5:
            frames.append("".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(50)))
        elif kind == 6:
            frames.append(msgpack.packb({"t": "media.offer", "to": "room/r1", "b": {"sdp": 1}}))
        else:
            frames.append(b"\xdf\xff\xff\xff\xff")  # a map that claims 4 billion entries
    return frames


async def test_a_thousand_hostile_frames_leave_a_good_client_served() -> None:
    async with trio.open_nursery() as nursery:
        # A generous rate so every hostile frame reaches the parser instead of the rate limit.
        server = await start_gateway(nursery, Limits(rate=10_000, burst=10_000, max_strikes=10**6))
        rng = random.Random(1234)
        async with open_websocket_url(server.url) as good, open_websocket_url(server.url) as bad:
            await hello(good)
            await hello(bad)

            async def attack() -> None:
                for frame in hostile_frames(rng):
                    await bad.send_message(frame)

            async def drain() -> int:
                errors = 0
                while errors < 1000:
                    frame = protocol.decode_server(await bad.get_message())
                    errors += frame["t"] == "error"
                return errors

            async with trio.open_nursery() as inner:
                inner.start_soon(attack)
                for i in range(50):
                    reply = await call(good, "echo", {"data": i}, 1000 + i)
                    assert reply["b"] == {"data": i}
                with trio.fail_after(30):
                    assert await drain() == 1000
            assert (await call(bad, "echo", {"data": "ok"}, 5000))["b"] == {"data": "ok"}
        nursery.cancel_scope.cancel()


async def test_rate_limit_refuses_floods_then_recovers() -> None:
    async with trio.open_nursery() as nursery:
        server = await start_gateway(nursery, Limits(rate=5, burst=10))
        async with open_websocket_url(server.url) as ws:
            await hello(ws)
            codes = []
            for i in range(20):
                frame = await call(ws, "echo", {}, 100 + i)
                codes.append(frame["t"] if frame["t"] == "reply" else frame["b"]["code"])  # type: ignore[index]
            assert "rate_limited" in codes and codes[0] == "reply"
            await trio.sleep(0.5)
            assert (await call(ws, "echo", {}, 500))["t"] == "reply"
        nursery.cancel_scope.cancel()


async def test_frame_over_the_protocol_limit_is_refused_and_the_socket_stays(
    gateway_server: GatewayServer,
) -> None:
    """The transport's limit is above the protocol's, so the documented error is what a client sees."""
    async with open_websocket_url(gateway_server.url, max_message_size=10**6) as ws:
        await hello(ws)
        await ws.send_message(b"\x00" * (protocol.MAX_FRAME_BYTES + 1))
        refused = protocol.decode_server(await ws.get_message())
        assert refused["t"] == "error" and refused["b"]["code"] == "frame_too_large"  # type: ignore[index]
        assert (await call(ws, "echo", {"data": 1}, 7))["b"] == {"data": 1}


# trio-websocket leaves its client socket to the garbage collector after a 1009 close from the server.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_frame_beyond_the_transport_limit_closes_with_1009(
    gateway_server: GatewayServer,
) -> None:
    async with open_websocket_url(gateway_server.url, max_message_size=10**6) as ws:
        await hello(ws)
        await ws.send_message(b"\x00" * (protocol.TRANSPORT_MAX_MESSAGE_BYTES + 1))
        try:
            with trio.fail_after(5):
                while True:
                    await ws.get_message()
        except ConnectionClosed as closed:
            assert closed.reason.code == 1009
    # Collect the abandoned client socket here, where its warning is expected and filtered.
    gc.collect()


async def test_silent_client_is_dropped_after_idle_timeout() -> None:
    async with trio.open_nursery() as nursery:
        server = await start_gateway(nursery, Limits(hello_timeout=0.3, idle_timeout=1))
        async with open_websocket_url(server.url) as ws:
            try:
                with trio.fail_after(10):
                    await ws.get_message()
            except ConnectionClosed as closed:
                assert closed.reason.code == 1001
        assert server.endpoint.open_connections == 0
        nursery.cancel_scope.cancel()


async def test_ping_is_answered_before_hello_but_does_not_postpone_the_hello_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """docs/protocol.md: ping works before hello; a hello must succeed within 10 s of opening."""
    registry = Registry()
    written: list[dict[str, object]] = []

    async def write(frame: bytes) -> None:
        written.append(protocol.decode_server(frame))

    limits = Limits()
    session = ClientSession(registry, Authenticator(registry), write, None, "127.0.0.1", limits)
    send, receive = trio.open_memory_channel[bytes](10)

    async def frames() -> bytes | None:
        try:
            return await receive.receive()
        except trio.EndOfChannel:
            return None

    start = trio.current_time()
    pings = 4
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run, frames)
        for i in range(pings):  # at 0, 3, 6 and 9 s: well inside the idle limit each time
            await send.send(protocol.encode_client("ping", {}, i))
            await trio.sleep(3)
        await send.send(protocol.encode_client("echo", {}, 99))
    assert written[:pings] == [{"t": "reply", "id": i, "b": {"pong": True}} for i in range(pings)]
    assert session.close_code == CLOSE_GOING_AWAY
    assert session.close_reason == "no hello in time"
    assert trio.current_time() - start >= limits.hello_timeout
    assert len(written) == pings  # closed at 10 s: the echo at 12 s was never read
