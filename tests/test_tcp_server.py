"""Hypercorn's connections with `LeanTCPServer`'s idle timer (issue 17), on the virtual clock.

A kept-alive connection closes ``keep_alive_timeout`` after its last answer, never during a
request however long it takes, and at a graceful shutdown once the request in progress is
answered; a request on a kept connection starts no task besides the application's own. A
response goes in one write; an interim one (``100 Continue``, ``101 Switching Protocols``) at
once, on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import h11
import pytest
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.trio import serve

from waitroom import tcp_server
from waitroom.tcp_server import LeanTCPServer, install

KEEP_ALIVE = 5.0


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """``/slow/<s>`` answers after s seconds, anything else at once."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await receive()  # the client's first message (none comes in these tests)
        return
    await receive()
    path = scope["path"]
    if path.startswith("/slow/"):
        await trio.sleep(float(path.rpartition("/")[2]))
    body = path.encode()
    headers = [(b"content-length", str(len(body)).encode())]  # as Quart's pages have
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Client:
    """One kept HTTP/1.1 connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def get(self, path: str) -> bytes:
        request = h11.Request(method="GET", target=path, headers=[("Host", "x")])
        await self.stream.send_all(self.conn.send(request) + self.conn.send(h11.EndOfMessage()))
        body = b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.conn.start_next_cycle()
                return body
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed mid-answer")

    async def closed_at(self) -> float:
        """When the server hangs up (the virtual clock's time)."""
        while await self.stream.receive_some(65536):
            pass
        return trio.current_time()


@asynccontextmanager
async def served() -> AsyncIterator[tuple[trio.Event, Callable[[], Any]]]:
    """Hypercorn on a loopback port with LeanTCPServer; yields (shutdown, connect)."""
    install()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = KEEP_ALIVE
    config.graceful_timeout = 30
    config.accesslog = None
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial_serve(config, shutdown))
        port = int(binds[0].rpartition(":")[2])

        async def connect() -> Client:
            return Client(await trio.open_tcp_stream("127.0.0.1", port))

        yield shutdown, connect
        shutdown.set()


def partial_serve(config: Config, shutdown: trio.Event) -> Callable[..., Any]:
    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

    return run


async def test_install_puts_the_lean_server_in_hypercorns_worker() -> None:
    import hypercorn.trio.run

    install()
    assert hypercorn.trio.run.TCPServer is LeanTCPServer


async def test_install_refuses_another_hypercorn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tcp_server, "version", lambda _: "0.99.0")
    with pytest.raises(RuntimeError, match=r"0\.18\.0, not 0\.99\.0"):
        install()


async def test_an_idle_kept_connection_closes_keep_alive_timeout_after_its_last_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served() as (_, connect):
        client = await connect()
        assert await client.get("/a") == b"/a"
        await trio.sleep(KEEP_ALIVE - 1)
        assert await client.get("/b") == b"/b"  # the second request moved the deadline on
        answered = trio.current_time()
        closed = await client.closed_at()
        assert closed - answered == pytest.approx(KEEP_ALIVE, abs=0.1)


async def test_a_request_longer_than_the_timeout_is_answered_and_the_timer_starts_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served() as (_, connect):
        client = await connect()
        await client.get("/a")
        assert await client.get(f"/slow/{3 * KEEP_ALIVE}") == f"/slow/{3 * KEEP_ALIVE}".encode()
        answered = trio.current_time()
        assert await client.closed_at() - answered == pytest.approx(KEEP_ALIVE, abs=0.1)


async def test_a_connection_that_never_asks_closes_after_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served() as (_, connect):
        started = trio.current_time()
        client = await connect()
        assert await client.closed_at() - started == pytest.approx(KEEP_ALIVE, abs=0.1)


async def test_shutdown_closes_idle_connections_and_answers_the_request_in_progress_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served() as (shutdown, connect):
        idle, busy = await connect(), await connect()
        await idle.get("/a")
        await busy.get("/a")
        answers: list[tuple[bytes, float]] = []

        async def slow() -> None:
            answer = await busy.get("/slow/2")
            answers.append((answer, await busy.closed_at()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow)
            await trio.sleep(1)
            shutdown.set()
            began = trio.current_time()
            assert await idle.closed_at() - began < 0.1
        [(answer, closed)] = answers
        assert answer == b"/slow/2"
        assert closed - began == pytest.approx(1, abs=0.1)  # when its answer went, not before


class Spawns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.names: list[str] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.names.append(task.name)


async def test_a_request_on_a_kept_connection_spawns_only_the_applications_task() -> None:
    async with served() as (_, connect):
        client = await connect()
        await client.get("/warm")
        spawns = Spawns()
        trio.lowlevel.add_instrument(spawns)
        try:
            for n in range(5):
                await client.get(f"/{n}")
        finally:
            trio.lowlevel.remove_instrument(spawns)
        assert len(spawns.names) == 5, spawns.names
        assert all("_handle" in name for name in spawns.names), spawns.names


def _watchers() -> list[trio.lowlevel.Task]:
    found, nurseries = [], list(trio.lowlevel.current_root_task().child_nurseries)
    while nurseries:
        for task in nurseries.pop().child_tasks:
            if task.name.endswith("IdleDeadline._watch"):
                found.append(task)
            nurseries.extend(task.child_nurseries)
    return found


async def test_a_request_in_progress_past_the_timeout_holds_no_timer_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """As a websocket does: its connection is one request for as long as the caller waits."""
    async with served() as (_, connect):
        client = await connect()
        await client.get("/a")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.get, f"/slow/{4 * KEEP_ALIVE}")
            await trio.sleep(1)
            assert len(_watchers()) == 1
            await trio.sleep(KEEP_ALIVE + 1)
            assert _watchers() == []
        await trio.testing.wait_all_tasks_blocked()
        assert len(_watchers()) == 1  # answered: idle again, watched again


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every ``send_all`` of a socket stream in this test (the server's and the client's)."""
    sent: list[bytes] = []
    send_all = trio.SocketStream.send_all

    async def recording(self: trio.SocketStream, data: bytes | bytearray | memoryview) -> None:
        sent.append(bytes(data))
        await send_all(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", recording)
    return sent


async def test_a_response_goes_in_one_write(writes: list[bytes]) -> None:
    async with served() as (_, connect):
        client = await connect()
        writes.clear()
        assert await client.get("/hello") == b"/hello"
        assert await client.get("/again") == b"/again"
    answers = [w for w in writes if w.startswith(b"HTTP/1.1")]
    assert len(answers) == 2, writes
    assert all(w.startswith(b"HTTP/1.1 200") for w in answers)
    assert answers[0].endswith(b"\r\n\r\n/hello") and answers[1].endswith(b"\r\n\r\n/again")
    assert b"" not in writes


async def test_an_interim_answer_is_not_held(autojump_clock: trio.testing.MockClock) -> None:
    async with served() as (_, connect):
        client = await connect()
        head = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        await client.stream.send_all(head)
        with trio.fail_after(1):  # on the virtual clock: held, it would never come
            assert (await client.stream.receive_some(65536)).startswith(b"HTTP/1.1 100")
        await client.stream.send_all(b"ok")
        with trio.fail_after(1):
            assert b"/x" in await client.stream.receive_some(65536)

        upgrade = await connect()
        await upgrade.stream.send_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        with trio.fail_after(1):
            assert (await upgrade.stream.receive_some(65536)).startswith(b"HTTP/1.1 101")


class _Stream:
    """A stream whose first send waits for ``gate``; ``broken`` makes every send fail."""

    def __init__(self, broken: bool = False) -> None:
        self.sent: list[bytes] = []
        self.gate = trio.Event()
        self.broken = broken

    async def send_all(self, data: bytes) -> None:
        if self.broken:
            raise trio.BrokenResourceError
        if not self.sent and not self.gate.is_set():
            with trio.fail_after(5):  # bounded even under the server's shield
                await self.gate.wait()
        self.sent.append(data)


class _Protocol:
    def __init__(self) -> None:
        self.events: list[object] = []

    async def handle(self, event: object) -> None:
        self.events.append(event)


def _server(stream: _Stream) -> LeanTCPServer:
    server = LeanTCPServer(app, Config(), None, None, stream)
    server.protocol = _Protocol()
    return server


async def test_sends_on_one_connection_wait_in_line_when_one_is_in_progress() -> None:
    stream = _Stream()
    server = _server(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.protocol_send, RawData(b"one"))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(server.protocol_send, RawData(b"two"))
        await trio.testing.wait_all_tasks_blocked()
        assert stream.sent == []
        stream.gate.set()
    assert stream.sent == [b"one", b"two"]
    assert not server.send_lock.locked()


async def test_a_send_to_a_broken_connection_tells_the_protocol_it_closed() -> None:
    server = _server(_Stream(broken=True))
    await server.protocol_send(RawData(b"lost"))
    assert server.protocol.events == [Closed()]
    assert not server.send_lock.locked()


async def test_a_connection_the_client_closed_lets_go_at_once(
    mock_clock: trio.testing.MockClock,
) -> None:
    """The virtual clock stands still here: the timer cannot run out meanwhile."""
    async with served() as (_, connect):
        client = await connect()
        await client.get("/a")
        await trio.testing.wait_all_tasks_blocked()  # answered and idle: kept for another
        assert len(_watchers()) == 1
        await client.stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert _watchers() == []
