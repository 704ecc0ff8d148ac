"""ICE-TCP against UDP: worker CPU per forwarded packet when the subscribers are on TCP (issue 16).

    python bench/media_tcp.py            # 8 s per measurement
    python bench/media_tcp.py --quick    # 1.5 s per measurement, under 30 s in all

One worker with ICE-TCP on; one publisher (a child process, as in bench/media.py, so its CPU is
not counted) sends SRTP video packets of 1,100 bytes over UDP; 1 or 5 subscribers are connected
through the real ICE/DTLS path, either over UDP (their datagrams are left to the kernel) or over
ICE-TCP (RFC 4571 frames; each subscriber's stream is drained in this process with 1 MiB reads,
so that cost, a small share, is counted with the worker's). Measured alternately, UDP then TCP,
per fan-out. Reported: microseconds of this process's CPU per forwarded packet, forwarded
packets/s, and the TCP connections dropped as slow readers (should be 0). The last line printed
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # procstat, for bench/media.py
sys.path.insert(0, str(ROOT))  # before bench/: "media" is the package, not bench/media.py

from media.worker import Worker, WorkerConfig  # noqa: E402
from tests.media.fakepeer import FakePeer  # noqa: E402
from tests.media.test_tcp import CALL, TcpPeer  # noqa: E402

# bench/media.py cannot be imported as "media" (the package): load it under another name.
_spec = importlib.util.spec_from_file_location("bench_media", ROOT / "bench" / "media.py")
assert _spec is not None and _spec.loader is not None
bench_media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_media)

#: Bytes read from a TCP subscriber's stream per wake-up: many frames per read, as a browser does.
DRAIN_CHUNK = 1 << 20


def _publish(*args: Any) -> None:
    """The child process's target: bench/media.py's publisher (spawn pickles this by name)."""
    bench_media._publisher(*args)


async def _drain(stream: trio.SocketStream) -> None:
    try:
        while await stream.receive_some(DRAIN_CHUNK):
            pass
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        return  # closed at the end of the measurement


async def measure(fanout: int, seconds: float, transport: str) -> dict[str, float]:
    """One publisher to `fanout` subscribers on `transport` ("udp" or "tcp")."""
    worker = Worker(WorkerConfig(bind_address="127.0.0.1", tcp_port=0))
    peers: list[FakePeer] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        try:
            publisher = FakePeer()
            await publisher.connect(worker, CALL, "pub", slots=1)
            peers.append(publisher)
            for i in range(fanout):
                if transport == "tcp":
                    sub = TcpPeer()
                    await sub.open_tcp(worker, f"sub{i}")  # type: ignore[arg-type]
                    assert sub.stream is not None
                    nursery.start_soon(_drain, sub.stream)
                else:
                    sub = FakePeer()
                    await sub.connect(worker, CALL, f"sub{i}", slots=1)
                peers.append(sub)
            answer = publisher.answer
            assert answer is not None
            child = multiprocessing.get_context("spawn").Process(
                target=_publish,
                args=(
                    ("127.0.0.1", worker.port),
                    f"{answer.ufrag}:{publisher.ufrag}",
                    answer.pwd,
                    publisher.srtp_profile,
                    publisher.key_material,
                    publisher.video_ssrc,
                    seconds + 1.0,
                    bench_media.OFFERED_RATE // fanout,
                ),
            )
            child.start()
            await bench_media._flowing(lambda: worker.stats()["rtp_in"])
            before, cpu0, wall0 = worker.stats(), time.process_time(), time.monotonic()
            await trio.sleep(seconds)
            after, cpu, wall = worker.stats(), time.process_time() - cpu0, time.monotonic() - wall0
            await trio.to_thread.run_sync(child.join)
        finally:
            for p in peers:
                p.close()
                stream = getattr(p, "stream", None)
                if stream is not None:
                    await trio.aclose_forcefully(stream)
            nursery.cancel_scope.cancel()
    forwarded = after["forwarded"] - before["forwarded"]
    return {
        "forwarded_per_s": forwarded / wall,
        "us_per_forwarded": 1e6 * cpu / forwarded if forwarded else 0.0,
        "cpu_share": cpu / wall,
        "tcp_closed_slow": after.get("tcp_closed_slow", 0) - before.get("tcp_closed_slow", 0),
        "dropped_send": (after["dropped_send_error"] + after["dropped_send_buffer_full"])
        - (before["dropped_send_error"] + before["dropped_send_buffer_full"]),
    }


async def main_async(seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"seconds_per_measurement": seconds}
    for fanout in (1, 5):
        for transport in ("udp", "tcp"):
            results[f"{transport}_fanout{fanout}"] = await measure(fanout, seconds, transport)
        udp, tcp = results[f"udp_fanout{fanout}"], results[f"tcp_fanout{fanout}"]
        results[f"tcp_vs_udp_fanout{fanout}"] = (
            tcp["us_per_forwarded"] / udp["us_per_forwarded"] if udp["us_per_forwarded"] else None
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, under 30 s in all")
    parser.add_argument("--seconds", type=float, help="seconds per measurement (overrides)")
    args = parser.parse_args()
    report = trio.run(main_async, args.seconds or (1.5 if args.quick else 8.0))
    for fanout in (1, 5):
        for transport in ("udp", "tcp"):
            r = report[f"{transport}_fanout{fanout}"]
            print(
                f"fan-out {fanout} over {transport}: {r['us_per_forwarded']:6.2f} us/pkt, "
                f"{r['forwarded_per_s']:8.0f} pkt/s, {100 * r['cpu_share']:5.1f}% of a core, "
                f"slow readers dropped {r['tcp_closed_slow']}"
            )
    print(json.dumps(report))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
