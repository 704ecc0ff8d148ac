"""Gateway round trips per second, beside a plain trio-websocket echo server in the same run.

    python bench/gateway.py [--quick] [--clients 1,500] [--seconds S] [--idle N]

Each server runs in its own process (the client load runs in this one), so the two compete for the
same two cores the same way:

* ``gateway``: Waitroom's real websocket stack (Hypercorn's Trio worker, the raw-ASGI
  ``GatewayEndpoint``, a ``conn/<n>`` actor per connection) routing ``echo`` through the
  ``system/echo`` actor and back. Rate limits are raised so the benchmark measures cost, not policy.
* ``plain``: ``trio_websocket.serve_websocket`` sending every message straight back.

Each client keeps one request in flight (send, wait for the reply, repeat); the figure is round
trips per second over all clients, and the ratio gateway/plain. Memory per idle connection is the
server's RSS growth over N connected, authenticated, idle clients, divided by N. The last line of
output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from trio_websocket import (
    WebSocketConnection,
    WebSocketRequest,
    connect_websocket_url,
    serve_websocket,
)

# The repository root goes before bench/ (where bench/media.py would shadow the media package).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.inbound import RedeemToken
from actors.principal import Principal
from actors.system import ECHO_ADDRESS, Echo
from gateway.asgi import GatewayEndpoint
from gateway.connection import Limits
from gateway.protocol import TRANSPORT_MAX_MESSAGE_BYTES, decode_server, encode_client
from runtime import ChildSpec, Refusal, Registry, Supervisor
from runtime.kernel import Actor

#: Rate limits out of the way: the benchmark measures the cost per message, not the policy.
BENCH_LIMITS = Limits(rate=1e9, burst=1_000_000_000, idle_timeout=600.0, hello_timeout=60.0)
#: Connections opened at once while setting up (a burst of 500 handshakes would time out).
CONNECT_PARALLEL = 50
SERVER_START_TIMEOUT = 30.0
CONNECT_TIMEOUT = 30.0
#: Seconds idle connections sit before RSS is read, so lazily allocated buffers are counted.
IDLE_SETTLE = 1.0
BENCH_TOKEN = "bench.secret"


class BenchRoom(Actor):
    """Redeems the benchmark's token: clients authenticate as a caller, as in production."""

    async def handle(self, message: object) -> object:
        if isinstance(message, RedeemToken):
            if message.secret != BENCH_TOKEN.partition(".")[2]:
                raise Refusal("invalid_token", "wrong token")
            return Principal(
                kind="caller", display_name="Bench", room_id="bench", participant_id="b"
            )
        return await super().handle(message)


# -- the servers (child processes) -----------------------------------------------------------------


async def serve_gateway() -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    registry = Registry()
    async with trio.open_nursery() as nursery:
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await root.start_child(ChildSpec(ECHO_ADDRESS, Echo))
        await root.start_child(ChildSpec("room/bench", BenchRoom))
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.websocket_max_message_size = TRANSPORT_MAX_MESSAGE_BYTES
        config.accesslog = None
        config.errorlog = None
        binds = await nursery.start(serve, GatewayEndpoint(registry, BENCH_LIMITS), config)
        print(binds[0].rsplit(":", 1)[1], flush=True)


async def serve_plain() -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except Exception:
            return

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(
                handler,
                "127.0.0.1",
                0,
                ssl_context=None,
                max_message_size=TRANSPORT_MAX_MESSAGE_BYTES,
                task_status=task_status,
            )
        )
        print(server.port, flush=True)


# -- the client side (this process) ----------------------------------------------------------------


@dataclass
class Target:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def rss(self) -> int:
        with open(f"/proc/{self.process.pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def start_target(name: str) -> Target:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", name],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{name} server did not start")
    return Target(name, process, int(line))


async def open_client(nursery: trio.Nursery, target: Target) -> WebSocketConnection:
    ws = await connect_websocket_url(nursery, target.url)
    if target.name == "gateway":
        await ws.send_message(encode_client("hello", {"token": BENCH_TOKEN}, 0))
        data = await ws.get_message()
        assert isinstance(data, bytes)
        reply = decode_server(data)
        if reply.get("t") != "reply":
            raise RuntimeError(f"hello refused: {reply}")
    return ws


async def open_clients(
    nursery: trio.Nursery, target: Target, count: int
) -> list[WebSocketConnection]:
    clients: list[WebSocketConnection] = []
    limiter = trio.CapacityLimiter(CONNECT_PARALLEL)

    async def one() -> None:
        async with limiter:
            clients.append(await open_client(nursery, target))

    with trio.fail_after(CONNECT_TIMEOUT):
        async with trio.open_nursery() as opening:
            for _ in range(count):
                opening.start_soon(one)
    return clients


async def round_trips(target: Target, count: int, seconds: float) -> float:
    """Round trips per second with ``count`` clients, one request in flight each."""
    done = 0
    frame = encode_client("echo", {"data": "x" * 16}, 1)
    async with trio.open_nursery() as nursery:
        clients = await open_clients(nursery, target, count)

        async def loop(ws: WebSocketConnection) -> None:
            nonlocal done
            while True:
                await ws.send_message(frame)
                await ws.get_message()
                done += 1

        started = trio.current_time()
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as running:
                for ws in clients:
                    running.start_soon(loop, ws)
        elapsed = trio.current_time() - started
        rate = done / elapsed
        await _close_all(clients)
        nursery.cancel_scope.cancel()
    return rate


async def _close_all(clients: list[WebSocketConnection]) -> None:
    with trio.move_on_after(5):
        async with trio.open_nursery() as closing:
            for ws in clients:
                closing.start_soon(ws.aclose)


async def idle_memory(target: Target, count: int) -> float:
    """Server RSS growth per idle (connected, authenticated) connection, in bytes."""
    await trio.sleep(IDLE_SETTLE)
    before = target.rss()
    async with trio.open_nursery() as nursery:
        clients = await open_clients(nursery, target, count)
        await trio.sleep(IDLE_SETTLE)
        after = target.rss()
        await _close_all(clients)
        nursery.cancel_scope.cancel()
    return (after - before) / count


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Both servers run at once; measurements alternate between them and the best of ``rounds``
    is kept, so load from others on a shared machine hits both sides alike."""
    results: dict[str, Any] = {"clients": {}, "idle_bytes_per_conn": {}}
    targets = [start_target("gateway"), start_target("plain")]
    try:
        for target in targets:
            # Memory first, on a fresh process: after the round-trip runs the allocator would
            # reuse the buffers of closed connections and hide the cost of new ones.
            per_conn = await idle_memory(target, args.idle)
            results["idle_bytes_per_conn"][target.name] = round(per_conn)
            print(f"  {target.name:8} idle: {per_conn / 1024:.1f} KiB/conn", file=sys.stderr)
        for count in args.clients:
            best = {t.name: 0.0 for t in targets}
            for _ in range(args.rounds):
                for target in targets:
                    rate = await round_trips(target, count, args.seconds)
                    best[target.name] = max(best[target.name], rate)
                    print(
                        f"  {target.name:8} {count:4} clients: {rate:9.1f} round trips/s",
                        file=sys.stderr,
                    )
            figures: dict[str, float] = {k: round(v, 1) for k, v in best.items()}
            figures["ratio"] = round(best["gateway"] / best["plain"], 3)
            results["clients"][str(count)] = figures
    finally:
        for target in targets:
            target.process.kill()
            target.process.wait()
    return results


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "| clients | gateway (round trips/s) | plain echo (round trips/s) | ratio |",
        "|--------:|------------------------:|---------------------------:|------:|",
    ]
    for count, figures in results["clients"].items():
        lines.append(
            f"| {count} | {figures['gateway']:.0f} | {figures['plain']:.0f} | "
            f"{figures['ratio']:.2f} |"
        )
    idle = results["idle_bytes_per_conn"]
    lines.append("")
    lines.append(
        f"Idle connection memory ({args.idle} connections): gateway "
        f"{idle['gateway'] / 1024:.1f} KiB, plain echo {idle['plain'] / 1024:.1f} KiB"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under 30 seconds")
    parser.add_argument("--clients", default="1,500", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections for memory")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (best kept)")
    parser.add_argument("--serve", choices=["gateway", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        runner: Callable[[], Awaitable[None]] = (
            serve_gateway if args.serve == "gateway" else serve_plain
        )
        trio.run(runner)
        return 0
    if args.quick:
        args.seconds, args.idle, args.rounds = 2.0, 500, 1
    args.clients = [int(c) for c in str(args.clients).split(",")]
    started = time.monotonic()
    results = trio.run(measure, args)
    results["seconds_per_measurement"] = args.seconds
    results["rounds"] = args.rounds
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["cpus"] = os.cpu_count()
    print(table(results, args))
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
