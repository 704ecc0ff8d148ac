"""Media load: N concurrent two-party calls through the SFU beside a raw UDP relay of the same packets.

    python bench/media_load.py                      # ramp 10, 25, 50, 100 calls
    python bench/media_load.py --calls 10,25 --hold 10 --processes 2
    python bench/media_load.py --quick              # 5 calls, 4 s held, about a minute

For each step N, in one run on one machine:
  * sfu: ``waitroom serve`` (a child process, fresh database) and ``waitroom loadtest --media``
    with N callers and N providers: callers arrive through the real form at ``--rate``, each
    provider joins one, and both sides publish the pre-encoded Opus + VP8 clip over ICE, DTLS and
    SRTP for the call (``call_seconds`` = time for all N to arrive + ``--hold``, so all N calls
    overlap for at least ``--hold`` seconds). Loss (sequence gaps) and jitter (RFC 3550) come
    from the receivers; RTP forwarded/dropped from the server's ``/metrics``; server CPU from
    /proc for the server and its media worker processes together.
  * worker: the same clip, the same pump, the same N pairs of peers in the same number of
    load-generator processes, straight to the SFU's media worker (``media.worker.Worker`` in its
    own process: offer, ICE, DTLS, SRTP, forwarding) with no gateway, actors or storage, held for
    ``--hold`` seconds: the media plane alone.
  * raw: the same peers through a minimal UDP relay (its own process, the worker's receive loop
    shape: ``wait_readable``, drain, ``sendto`` to the partner) with no ICE, DTLS or SRTP.
CPU of each side (server, worker or relay, and the load generators) is process CPU time over wall;
``udp_rcvbuf_errors`` is the host-wide kernel count of datagrams dropped on full receive buffers
during the step (other people's programs on the host add to it). The last line printed is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
# The repository root first, so the checkout's packages are imported, not an installed copy.
sys.path.insert(0, str(ROOT))

from procstat import process_tree, tree_cpu_seconds, udp_rcvbuf_errors  # noqa: E402  (bench/, the script's folder)

from waitroom.loadtest import mediaload  # noqa: E402
from waitroom.loadtest.mediapeer import MediaPeer, MediaPump, MediaTally, load_clip  # noqa: E402

PASSWORD = "media-load-bench"
STARTUP_TIMEOUT = 60.0
#: Arrivals per second offered by the load test (the server sustains about 20/s, bench/README).
ARRIVAL_RATE = 10.0
RELAY_BATCH = 64
RELAY_BUFFER = 4 * 1024 * 1024
PAIR_HELLO = b"PAIR"
STOP = b"STOP"
#: A driver sends this once its peers are connected: the worker's CPU is counted from the last.
MARK = b"MARK"
REGISTER_WAIT = 0.5
#: Extra time a step may take beyond its planned length before it is abandoned.
STEP_GRACE = 120.0
_SERVING = re.compile(r"Serving on (http://\S+)")


def udp_drops_of_tree(pid: int) -> int:
    """Kernel drops (receive buffer full) summed over the UDP sockets a process tree holds."""
    inodes: set[str] = set()
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{member}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    drops += int(fields[-1])
    return drops


def runqueue_wait(pid: int) -> float:
    """Seconds the main threads of a process tree spent runnable but waiting for a CPU."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{member}/schedstat").read_text().split()[1])
    return total / 1e9


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- the SFU side --------------------------------------------------------------------------------


class Server:
    """``waitroom serve`` in a child process on free ports, with a fresh demo database."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Server:
        command = [
            sys.executable,
            "-m",
            "waitroom.cli",
            "serve",
            "--port",
            "0",
            "--media-port",
            "0",
            "--db",
            str(self.workdir / "bench.sqlite3"),
            "--demo-password",
            PASSWORD,
            "--log-level",
            "WARNING",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=sys.stderr, text=True
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = _SERVING.search(line)
            if match:
                self.url = match.group(1)
                return self
        self.__exit__()
        raise RuntimeError("waitroom serve did not start")

    def __exit__(self, *_: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_sfu(server: Server, calls: int, hold: float, processes: int, out: Path) -> dict[str, Any]:
    arrive_seconds = calls / ARRIVAL_RATE
    call_seconds = round(arrive_seconds + hold, 1)
    command = [
        sys.executable,
        "-m",
        "waitroom.loadtest.main",
        server.url,
        "--password",
        PASSWORD,
        "--media",
        "--areas",
        "2",
        "--callers",
        str(calls),
        "--providers",
        str(calls),
        "--rate",
        str(ARRIVAL_RATE),
        "--duration",
        str(arrive_seconds + 1),
        "--call-seconds",
        str(call_seconds),
        "--processes",
        str(processes),
        "--out",
        str(out),
    ]
    assert server.process is not None
    server0, server_drops0 = (
        tree_cpu_seconds(server.process.pid),
        udp_drops_of_tree(server.process.pid),
    )
    server_wait0 = runqueue_wait(server.process.pid)
    cpu0, wall0, drops0 = children_cpu(), time.monotonic(), udp_rcvbuf_errors()
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=call_seconds + arrive_seconds + STEP_GRACE,
        check=False,
    )
    cpu, wall, drops = children_cpu() - cpu0, time.monotonic() - wall0, udp_rcvbuf_errors() - drops0
    server_cpu = tree_cpu_seconds(server.process.pid) - server0
    server_drops = udp_drops_of_tree(server.process.pid) - server_drops0
    server_wait = runqueue_wait(server.process.pid) - server_wait0
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadtest printed no report:\n{done.stdout}\n{done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    media = report.get("media") or {}
    server_stats = report["server"]
    return {
        "calls": calls,
        "call_seconds": call_seconds,
        "calls_started": report["calls_started"],
        "calls_ended": report["calls_ended"],
        "errors": report["errors"],
        "media": media,
        "loss_percent": media.get("loss_percent"),
        "jitter_p50_ms": media.get("jitter_p50_ms"),
        "jitter_p95_ms": media.get("jitter_p95_ms"),
        # The server's own /metrics figure covers its main process only; the media worker
        # processes are counted from /proc (server and workers together).
        "server_main_cpu_percent": server_stats["cpu_percent"],
        "server_cpu_percent": round(100 * server_cpu / wall, 1),
        "server_loop_lag_max_ms": server_stats["loop_lag_max_ms"],
        "tester_cpu_percent": round(100 * cpu / wall, 1),
        "udp_rcvbuf_errors": drops,
        "forwarder_socket_drops": server_drops,
        # Summed over the server's processes: above 100 % means more than one waited at a time.
        "forwarder_runqueue_wait_percent": round(100 * server_wait / wall, 1),
        "receiver_socket_drops": media.get("receiver_socket_drops"),
        "table": "\n".join(
            ln for ln in done.stdout.splitlines() if not ln.startswith("{") and "report:" not in ln
        ),
    }


# -- the raw reference ---------------------------------------------------------------------------


def _relay(port_queue: Any, result_queue: Any) -> None:
    """Child process: forward each registered address's datagrams to its partner, untouched."""

    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RELAY_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RELAY_BUFFER)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        port_queue.put(sock.getsockname()[1])
        partner: dict[tuple[str, int], tuple[str, int]] = {}
        waiting: dict[bytes, tuple[str, int]] = {}
        forwarded = dropped = 0
        cpu0 = wall0 = 0.0
        recvfrom, sendto = sock.recvfrom, sock.sendto
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(RELAY_BATCH):
                try:
                    data, addr = recvfrom(2048)
                except BlockingIOError:
                    break
                target = partner.get(addr)
                if target is not None:
                    try:
                        sendto(data, target)
                        forwarded += 1
                    except BlockingIOError:
                        dropped += 1
                elif data.startswith(PAIR_HELLO):
                    if not partner and not waiting:
                        cpu0, wall0 = time.process_time(), time.monotonic()
                    other = waiting.pop(data, None)
                    if other is None:
                        waiting[data] = addr
                    else:
                        partner[addr], partner[other] = other, addr
                elif data == STOP:
                    result_queue.put(
                        {
                            "forwarded": forwarded,
                            "dropped": dropped,
                            "cpu_seconds": time.process_time() - cpu0,
                            "wall_seconds": time.monotonic() - wall0,
                        }
                    )
                    sock.close()
                    return

    trio.run(main)


def _sfu_worker(port_queue: Any, result_queue: Any, requests: Any, replies: list[Any]) -> None:
    """Child process: the SFU's media worker alone (no gateway, no actors) answering offers."""
    from media.worker import Worker, WorkerConfig

    async def main() -> None:
        worker = Worker(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"))
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            port_queue.put(worker.port)
            cpu0, wall0, base = time.process_time(), time.monotonic(), 0
            while True:
                request = await trio.to_thread.run_sync(requests.get)
                if request == MARK:
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    base = worker.stats()["forwarded"]
                    continue
                if request == STOP:
                    stats = worker.stats()
                    result_queue.put(
                        {
                            "forwarded": stats["forwarded"] - base,
                            "dropped": sum(v for k, v in stats.items() if k.startswith("dropped_")),
                            "cpu_seconds": time.process_time() - cpu0,
                            "wall_seconds": time.monotonic() - wall0,
                        }
                    )
                    nursery.cancel_scope.cancel()
                    return
                driver, call_id, peer_id, offer = request
                replies[driver].put(await worker.open_peer(call_id, peer_id, offer))

    trio.run(main)


def _driver(
    mode: str, port: int, index: int, first: int, pairs: int, hold: float, queues: Any
) -> None:
    """Child process: ``pairs`` caller/provider peer pairs for ``hold`` s, through the relay
    (``raw``: plain RTP) or the bare media worker (``worker``: offer, ICE, DTLS, SRTP)."""
    requests, replies, results = queues

    async def main() -> dict[str, Any]:
        clip = load_clip()
        start = time.time()
        tally = MediaTally(lambda: time.time() - start)
        pump = MediaPump(clip, tally)
        peers: list[MediaPeer] = []
        target = ("127.0.0.1", port)
        for n in range(first, first + pairs):
            for role in ("caller", "provider"):
                peer = MediaPeer(role, secure=mode == "worker")
                peer.bind()
                if mode == "raw":
                    peer.attach_raw(target, PAIR_HELLO + str(n).encode())
                else:
                    requests.put((index, f"call{n}", role, peer.offer()))
                    peer.accept(await trio.to_thread.run_sync(replies[index].get))
                    await peer.establish()
                peers.append(peer)
        await trio.sleep(REGISTER_WAIT)
        if mode == "worker":
            requests.put(MARK)
        cpu0, wall0 = time.process_time(), time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump.run)
            for peer in peers:
                nursery.start_soon(peer.receive, tally)
                pump.add(peer)

            async def sampler() -> None:
                while True:
                    await trio.sleep(mediaload.SAMPLE_INTERVAL)
                    tally.sample()

            nursery.start_soon(sampler)
            await trio.sleep(hold)
            for peer in peers:
                peer.publishing = False
            await trio.sleep(mediaload.MEDIA_DRAIN)
            for peer in peers:
                pump.remove(peer)
            nursery.cancel_scope.cancel()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        for peer in peers:
            peer.close()
        return {"media": tally.to_json(), "cpu_seconds": cpu, "wall_seconds": wall}

    results.put(trio.run(main))


def run_direct(mode: str, calls: int, hold: float, processes: int) -> dict[str, Any]:
    """N pairs of peers through the raw relay or the bare media worker (its own process)."""
    ctx = multiprocessing.get_context("spawn")
    port_queue, forwarder_queue, driver_queue = ctx.Queue(), ctx.Queue(), ctx.Queue()
    requests = ctx.Queue()
    replies = [ctx.Queue() for _ in range(processes)]
    if mode == "raw":
        forwarder = ctx.Process(target=_relay, args=(port_queue, forwarder_queue))
    else:
        forwarder = ctx.Process(
            target=_sfu_worker, args=(port_queue, forwarder_queue, requests, replies)
        )
    forwarder.start()
    drops0 = udp_rcvbuf_errors()
    try:
        port = port_queue.get(timeout=STARTUP_TIMEOUT)
        wait0, wall0 = runqueue_wait(forwarder.pid or 0), time.monotonic()
        shares = [
            calls // processes + (1 if i < calls % processes else 0) for i in range(processes)
        ]
        firsts = [sum(shares[:i]) for i in range(processes)]
        queues = (requests, replies, driver_queue)
        drivers = [
            ctx.Process(target=_driver, args=(mode, port, i, first, share, hold, queues))
            for i, (first, share) in enumerate(zip(firsts, shares, strict=True))
            if share
        ]
        for driver in drivers:
            driver.start()
        results = [driver_queue.get(timeout=hold + STEP_GRACE) for _ in drivers]
        for driver in drivers:
            driver.join()
        forwarder_drops = udp_drops_of_tree(forwarder.pid) if forwarder.pid else 0
        wait = runqueue_wait(forwarder.pid or 0) - wait0
        wall = time.monotonic() - wall0
        if mode == "raw":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
                control.sendto(STOP, ("127.0.0.1", port))
        else:
            requests.put(STOP)
        relayed = forwarder_queue.get(timeout=STARTUP_TIMEOUT)
    finally:
        forwarder.join(timeout=10)
        if forwarder.is_alive():
            forwarder.kill()
    drops = udp_rcvbuf_errors() - drops0
    media = mediaload.summarise([{"media": r["media"]} for r in results], []) or {}
    tester_cpu = sum(r["cpu_seconds"] for r in results)
    tester_wall = max(r["wall_seconds"] for r in results)
    return {
        "calls": calls,
        "media": media,
        "loss_percent": media.get("loss_percent"),
        "jitter_p50_ms": media.get("jitter_p50_ms"),
        "jitter_p95_ms": media.get("jitter_p95_ms"),
        "forwarder_cpu_percent": round(100 * relayed["cpu_seconds"] / relayed["wall_seconds"], 1),
        "forwarder_us_per_packet": round(1e6 * relayed["cpu_seconds"] / relayed["forwarded"], 2)
        if relayed["forwarded"]
        else None,
        "relay_forwarded": relayed["forwarded"],
        "relay_dropped": relayed["dropped"],
        "tester_cpu_percent": round(100 * tester_cpu / tester_wall, 1),
        "udp_rcvbuf_errors": drops,
        "forwarder_socket_drops": forwarder_drops,
        # Time the forwarder was runnable but had no CPU: the host, not the code, held it back.
        "forwarder_runqueue_wait_percent": round(100 * wait / wall, 1),
        "receiver_socket_drops": media.get("receiver_socket_drops"),
    }


# -- driver --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="10,25,50,100", help="steps, comma-separated")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds all calls overlap")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--quick", action="store_true", help="one small step")
    parser.add_argument(
        "--variants", default="sfu,worker,raw", help="which of sfu, worker, raw to run"
    )
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if not variants or set(variants) - {"sfu", "worker", "raw"}:
        parser.error("--variants: a comma-separated subset of sfu,worker,raw")
    steps = [5] if args.quick else [int(c) for c in args.calls.split(",")]
    hold = 4.0 if args.quick else args.hold
    results: dict[str, Any] = {
        "hold_seconds": hold,
        "processes": args.processes,
        "arrival_rate": ARRIVAL_RATE,
        "load_average_start": load_average(),
        "clip": load_clip().stats(),
        "steps": [],
    }
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        server = stack.enter_context(Server(Path(tmp))) if "sfu" in variants else None
        for calls in steps:
            step: dict[str, Any] = {"calls": calls}
            for name in variants:
                if name == "sfu":
                    assert server is not None
                    sfu = run_sfu(server, calls, hold, args.processes, Path(tmp) / f"sfu-{calls}")
                    print(sfu.pop("table"), file=sys.stderr)
                    step[name] = sfu
                else:
                    step[name] = run_direct(name, calls, hold, args.processes)
            step["load_average"] = load_average()
            results["steps"].append(step)
            for name in variants:
                r = step[name]
                cpu = r.get("server_cpu_percent", r.get("forwarder_cpu_percent"))
                print(
                    f"{calls:4d} calls {name:6s} loss {r['loss_percent']}% "
                    f"jitter p50/p95 {r['jitter_p50_ms']}/{r['jitter_p95_ms']} ms "
                    f"forwarder CPU {cpu}% (waiting for a CPU "
                    f"{r['forwarder_runqueue_wait_percent']}%) tester CPU {r['tester_cpu_percent']}% "
                    f"socket drops forwarder {r['forwarder_socket_drops']} "
                    f"receivers {r['receiver_socket_drops']} (host {r['udp_rcvbuf_errors']})",
                    flush=True,
                )
            print(f"load average {step['load_average']}", flush=True)
    results["load_average_end"] = load_average()
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
