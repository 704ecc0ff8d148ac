"""Media plane benchmark: SRTP forwarding through the SFU beside raw UDP forwarding.

    python bench/media.py            # 8 s per measurement
    python bench/media.py --quick    # 1.5 s per measurement, under 30 s in all
    python bench/media.py --workers 2 [--quick]   # 1 worker process vs 2, same offered load

What is measured, in one run on one machine:
  * sfu fan-out 1 and 5: one publisher (a child process, so its CPU is not counted) sends SRTP
    video packets of 1,100 bytes to a running media worker; 1 or 5 subscribers are connected
    through the real ICE/DTLS path. Reported: packets forwarded per second of worker CPU
    ("per core") and microseconds of worker CPU per forwarded packet.
  * raw fan-out 1 and 5: the same receive loop shape (wait_readable, drain, sendto) forwarding
    the same packets with no SRTP and no rewriting: the floor set by Python and system calls.
  * transcode: what an aiortc relay spends to decode and re-encode one 640x480 VP8 stream at
    30 fps (codec work only, in a child process), as a share of one core.
With `--workers N` it measures only the multi-process media plane instead: a `MediaPool` of 1
worker process, then one of N (alternately, `WORKER_ROUNDS` times; once with --quick), each
carrying `WORKER_CALLS` calls of fan-out `WORKER_FANOUT` (one publisher process per call, sending
packets it SRTP-protected beforehand, offering more than one process can forward). Reported: the
aggregate forwarded packets/s of all workers, their CPU (from /proc), and the median ratio N : 1.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from procstat import cpu_seconds

from media.dtls import srtp_sessions
from media.pool import MediaPool
from media.worker import Worker, WorkerConfig
from tests.media.fakepeer import FakePeer

PAYLOAD_BYTES = 1100  # a typical full video packet
# Outgoing packets/s each call's publisher aims for (divided by the fan-out): more than the
# worker can forward, so the figures are taken near saturation.
OFFERED_RATE = 60_000
# Calls placed on the worker at once, each with its own publisher process: one Python publisher
# protecting SRTP cannot saturate the worker alone.
CALLS = 1
STARTUP_TIMEOUT = 20.0
STUN_RETRY = 1.0
STUN_ATTEMPTS = 10
WARMUP = 0.3
BURST = 64
RAW_BATCH = 64
#: `--workers`: calls spread over the pool (an even number, so 2 workers get one half each) and
#: the fan-out of each (a six-party call's shape: the cheapest packets per publisher packet).
WORKER_CALLS = 4
WORKER_FANOUT = 5
WORKER_ROUNDS = 3
TRANSCODE_FPS = 30
TRANSCODE_SIZE = (640, 480)


def _stun_check(sock: socket.socket, server: tuple[str, int], username: str, password: str) -> None:
    """Bind this socket at the worker with an authenticated STUN check (ICE-lite: ours to send),
    retried because a loaded machine may lose or delay the first one."""
    from aioice import stun

    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(password.encode())
    sock.settimeout(STUN_RETRY)
    for _ in range(STUN_ATTEMPTS):
        sock.sendto(bytes(request), server)
        try:
            sock.recvfrom(2048)
            return
        except TimeoutError:
            continue
    raise RuntimeError("the worker never answered the publisher's STUN check")


def _publisher(
    server: tuple[str, int],
    username: str,
    password: str,
    profile: bytes,
    material: bytes,
    ssrc: int,
    seconds: float,
    rate: int,
) -> None:
    """Child process: authenticate with a STUN check (if given credentials), then blast RTP."""

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    protect = None
    if username:
        _stun_check(sock, server, username, password)
        protect = srtp_sessions(profile, material, is_server=False).tx.protect
    payload = b"\x10" + os.urandom(PAYLOAD_BYTES - 1)
    seq = 0
    start = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - start < seconds:
        if sent > (now - start) * rate:
            time.sleep(0.0005)
            continue
        for _ in range(BURST):
            seq = (seq + 1) & 0xFFFF
            packet = struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, ssrc) + payload
            sock.sendto(protect(packet) if protect else packet, server)
        sent += BURST
    sock.close()


def _transcode(seconds: float, queue: Any) -> None:
    """Child process: decode + re-encode 640x480 VP8 at 30 fps with aiortc's codecs."""
    import fractions

    import numpy
    from aiortc.codecs import get_decoder, get_encoder
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from av import VideoFrame

    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    source, relay_out = get_encoder(codec), get_encoder(codec)
    decoder = get_decoder(codec)
    width, height = TRANSCODE_SIZE
    frames = []
    for i in range(TRANSCODE_FPS):
        image = numpy.zeros((height, width, 3), numpy.uint8)
        image[:, (i * 8) % width : (i * 8) % width + 32, :] = 200
        image[(i * 5) % height : (i * 5) % height + 24, :, 1] = 120
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        frames.append(frame)
    # The relay's input: the source's encoded frames (not counted).
    encoded = []
    for i in range(TRANSCODE_FPS):
        payloads, ts = source.encode(frames[i])
        encoded.append((payloads, ts))
    from aiortc.codecs.vpx import vp8_depayload

    units = [b"".join(vp8_depayload(p) for p in payloads) for payloads, _ in encoded]
    cpu0, wall0 = time.process_time(), time.monotonic()
    n = 0
    while time.monotonic() - wall0 < seconds:
        i = n % TRANSCODE_FPS
        for out in decoder.decode(JitterFrame(data=units[i], timestamp=encoded[i][1])):
            relay_out.encode(out)
        n += 1
        time.sleep(max(0.0, wall0 + n / TRANSCODE_FPS - time.monotonic()))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    queue.put({"transcode_core_share": cpu / wall, "transcode_fps": n / wall})


async def _flowing(count: Callable[[], int]) -> None:
    """Wait until the publisher process (slow to import on a busy machine) is sending."""
    for _ in range(int(STARTUP_TIMEOUT / 0.05)):
        if count() > 0:
            await trio.sleep(WARMUP)
            return
        await trio.sleep(0.05)
    raise RuntimeError("publisher process never started sending")


async def _measure_sfu(fanout: int, seconds: float) -> dict[str, float]:
    worker = Worker(WorkerConfig(bind_address="127.0.0.1"))
    peers: list[FakePeer] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        try:
            children = []
            ctx = multiprocessing.get_context("spawn")
            for call in range(CALLS):
                publisher = FakePeer()
                await publisher.connect(worker, f"bench{call}", "pub", slots=1)
                peers.append(publisher)
                for i in range(fanout):
                    sub = FakePeer()
                    await sub.connect(worker, f"bench{call}", f"sub{i}", slots=1)
                    peers.append(sub)
                answer = publisher.answer
                assert answer is not None
                children.append(
                    ctx.Process(
                        target=_publisher,
                        args=(
                            ("127.0.0.1", worker.port),
                            f"{answer.ufrag}:{publisher.ufrag}",
                            answer.pwd,
                            publisher.srtp_profile,
                            publisher.key_material,
                            publisher.video_ssrc,
                            seconds + 1.0,
                            OFFERED_RATE // fanout,
                        ),
                    )
                )
            for child in children:
                child.start()
            await _flowing(lambda: worker.stats()["rtp_in"])
            before, cpu0, wall0 = worker.stats(), time.process_time(), time.monotonic()
            await trio.sleep(seconds)
            after, cpu, wall = worker.stats(), time.process_time() - cpu0, time.monotonic() - wall0
            for child in children:
                await trio.to_thread.run_sync(child.join)
        finally:
            for p in peers:
                p.close()
            nursery.cancel_scope.cancel()
    forwarded = after["forwarded"] - before["forwarded"]
    received = after["rtp_in"] - before["rtp_in"]
    return {
        "forwarded_per_s": forwarded / wall,
        "forwarded_per_cpu_s": forwarded / cpu if cpu else 0.0,
        "us_per_forwarded": 1e6 * cpu / forwarded if forwarded else 0.0,
        "cpu_share": cpu / wall,
        "received_per_s": received / wall,
        "dropped_send_buffer_full": after["dropped_send_buffer_full"]
        - before["dropped_send_buffer_full"],
    }


async def _measure_raw(fanout: int, seconds: float) -> dict[str, float]:
    """The same loop shape as the worker's, forwarding bytes untouched."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(fanout)]
    for s in sinks:
        s.bind(("127.0.0.1", 0))
    targets = [s.getsockname() for s in sinks]
    counts = {"forwarded": 0}

    async def loop() -> None:
        recvfrom, sendto = sock.recvfrom, sock.sendto
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(RAW_BATCH):
                try:
                    data, _addr = recvfrom(2048)
                except BlockingIOError:
                    break
                for target in targets:
                    try:
                        sendto(data, target)
                    except BlockingIOError:
                        continue
                    counts["forwarded"] += 1

    ctx = multiprocessing.get_context("spawn")
    args = (sock.getsockname(), "", "", b"", b"", 1, seconds + 1.0, OFFERED_RATE // fanout)
    children = [ctx.Process(target=_publisher, args=args) for _ in range(CALLS)]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop)
            for child in children:
                child.start()
            await _flowing(lambda: counts["forwarded"])
            f0, cpu0, wall0 = counts["forwarded"], time.process_time(), time.monotonic()
            await trio.sleep(seconds)
            forwarded = counts["forwarded"] - f0
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            for child in children:
                await trio.to_thread.run_sync(child.join)
            nursery.cancel_scope.cancel()
    finally:
        sock.close()
        for s in sinks:
            s.close()
    return {
        "forwarded_per_s": forwarded / wall,
        "forwarded_per_cpu_s": forwarded / cpu if cpu else 0.0,
        "us_per_forwarded": 1e6 * cpu / forwarded if forwarded else 0.0,
        "cpu_share": cpu / wall,
    }


def _blaster(
    server: tuple[str, int],
    username: str,
    password: str,
    profile: bytes,
    material: bytes,
    ssrc: int,
    seconds: float,
    rate: int,
) -> None:
    """Child process for `--workers`: SRTP-protect every packet of the run first, then only
    send them, so the publishers' own CPU (on a shared 2-core machine) limits the worker less."""

    protect = srtp_sessions(profile, material, is_server=False).tx.protect
    payload = b"\x10" + os.urandom(PAYLOAD_BYTES - 1)
    packets = [
        protect(struct.pack("!BBHII", 0x80, 96, n & 0xFFFF, n * 3000, ssrc) + payload)
        for n in range(1, int(rate * seconds) + 1)
    ]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    _stun_check(sock, server, username, password)
    sendto = sock.sendto
    start = time.monotonic()
    for index in range(0, len(packets), BURST):
        ahead = index / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        for packet in packets[index : index + BURST]:
            try:
                sendto(packet, server)
            except BlockingIOError:
                continue
    sock.close()


async def _measure_pool(workers: int, seconds: float) -> dict[str, Any]:
    """Aggregate forwarding of a pool of `workers` processes under the same offered load."""
    pool = MediaPool(WorkerConfig(bind_address="127.0.0.1"), workers=workers)
    peers: list[FakePeer] = []
    ctx = multiprocessing.get_context("spawn")
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        try:
            children = []
            for call in range(WORKER_CALLS):
                publisher = FakePeer()
                await publisher.connect(pool, f"bench{call}", "pub", slots=1)  # type: ignore[arg-type]
                peers.append(publisher)
                for i in range(WORKER_FANOUT):
                    sub = FakePeer()
                    await sub.connect(pool, f"bench{call}", f"sub{i}", slots=1)  # type: ignore[arg-type]
                    peers.append(sub)
                answer = publisher.answer
                assert answer is not None
                children.append(
                    ctx.Process(
                        target=_blaster,
                        args=(
                            publisher.server,
                            f"{answer.ufrag}:{publisher.ufrag}",
                            answer.pwd,
                            publisher.srtp_profile,
                            publisher.key_material,
                            publisher.video_ssrc,
                            seconds + 2 * WARMUP + 1.0,
                            OFFERED_RATE // WORKER_FANOUT,
                        ),
                    )
                )
            placements = [pool.placement(f"bench{call}") for call in range(WORKER_CALLS)]
            pids = [pid for pid in pool.worker_pids() if pid is not None]
            # Each publisher's STUN check comes once its packets are ready: then it sends.
            checks = sum(s["stun_responses"] for s in (await pool.refresh_stats()).values())
            for child in children:
                child.start()
            for _ in range(int(STARTUP_TIMEOUT / 0.1)):
                stats = await pool.refresh_stats()
                if sum(s["stun_responses"] for s in stats.values()) >= checks + WORKER_CALLS:
                    break
                await trio.sleep(0.1)
            else:
                raise RuntimeError("the publisher processes never started sending")
            await trio.sleep(WARMUP)
            before, cpu0, wall0 = await pool.refresh_stats(), cpu_seconds(*pids), time.monotonic()
            await trio.sleep(seconds)
            after, cpu = await pool.refresh_stats(), cpu_seconds(*pids) - cpu0
            wall = time.monotonic() - wall0
            for child in children:
                await trio.to_thread.run_sync(child.join)
        finally:
            for p in peers:
                p.close()
            nursery.cancel_scope.cancel()

    def rate(key: str, label: str) -> float:
        return (after[label].get(key, 0) - before[label].get(key, 0)) / wall

    per_worker = {label: rate("forwarded", label) for label in after}
    forwarded = sum(per_worker.values()) * wall
    return {
        "workers": workers,
        "calls_per_worker": [placements.count(i) for i in range(workers)],
        "forwarded_per_s": forwarded / wall,
        "forwarded_per_s_by_worker": per_worker,
        "received_per_s": sum(rate("rtp_in", label) for label in after),
        "workers_cpu_share": cpu / wall,
        "us_per_forwarded": 1e6 * cpu / forwarded if forwarded else 0.0,
    }


async def workers_async(workers: int, seconds: float, rounds: int) -> dict[str, Any]:
    """1 process and N processes measured alternately, `rounds` times each (the machine is
    shared: alternating spreads other people's load over both sides)."""
    load_before = os.getloadavg()
    ones, manys = [], []
    for _ in range(rounds):
        ones.append(await _measure_pool(1, seconds))
        manys.append(await _measure_pool(workers, seconds))

    def median(runs: list[dict[str, Any]]) -> float:
        return float(statistics.median(r["forwarded_per_s"] for r in runs))

    one, many = median(ones), median(manys)
    return {
        "seconds_per_measurement": seconds,
        "rounds": rounds,
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "calls": WORKER_CALLS,
        "fanout": WORKER_FANOUT,
        "offered_forwards_per_s": WORKER_CALLS * (OFFERED_RATE // WORKER_FANOUT) * WORKER_FANOUT,
        "pool_1": ones,
        f"pool_{workers}": manys,
        "median_forwarded_per_s_1": one,
        f"median_forwarded_per_s_{workers}": many,
        "ratio": many / one if one else None,
        "round_ratios": [
            m["forwarded_per_s"] / o["forwarded_per_s"] if o["forwarded_per_s"] else None
            for o, m in zip(ones, manys, strict=True)
        ],
    }


def _measure_transcode(seconds: float) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_transcode, args=(seconds, queue))
    child.start()
    result: dict[str, float] = queue.get(timeout=seconds + 60)
    child.join()
    return result


async def main_async(seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"seconds_per_measurement": seconds, "payload_bytes": PAYLOAD_BYTES}
    for fanout in (1, 5):
        results[f"sfu_fanout{fanout}"] = await _measure_sfu(fanout, seconds)
        results[f"raw_fanout{fanout}"] = await _measure_raw(fanout, seconds)
    results["transcode"] = await trio.to_thread.run_sync(_measure_transcode, seconds)
    # One stream forwarded to one subscriber at ~30 fps x ~3 packets/frame (about 1 Mbit/s).
    packets_per_s = 100
    sfu_share = packets_per_s * results["sfu_fanout1"]["us_per_forwarded"] / 1e6
    results["forward_core_share_one_stream"] = sfu_share
    results["transcode_vs_forward"] = (
        results["transcode"]["transcode_core_share"] / sfu_share if sfu_share else None
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, under 30 s in all")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="only compare a pool of 1 media worker process with one of N (N >= 2)",
    )
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 8.0
    if args.workers:
        if args.workers < 2:
            parser.error("--workers compares 1 process with N: give N >= 2")
        rounds = 1 if args.quick else WORKER_ROUNDS
        report = trio.run(workers_async, args.workers, seconds, rounds)
        for round_ in range(rounds):
            for key in ("pool_1", f"pool_{args.workers}"):
                r = report[key][round_]
                print(
                    f"{r['workers']} worker process(es): {r['forwarded_per_s']:8.0f} pkt/s "
                    f"forwarded (by worker "
                    f"{[round(v) for v in r['forwarded_per_s_by_worker'].values()]}), "
                    f"{r['received_per_s']:6.0f} in/s, workers' CPU "
                    f"{100 * r['workers_cpu_share']:5.1f}% of a core, "
                    f"{r['us_per_forwarded']:.2f} us/pkt"
                )
        print(
            f"median ratio {args.workers}:1 = {report['ratio'] or 0:.2f}; "
            f"load {report['loadavg_before']} -> {report['loadavg_after']}"
        )
        print(json.dumps(report, sort_keys=True))
        return
    results = trio.run(main_async, seconds)
    for name in ("sfu_fanout1", "raw_fanout1", "sfu_fanout5", "raw_fanout5"):
        r = results[name]
        print(
            f"{name:12s} {r['forwarded_per_s']:10.0f} pkt/s  "
            f"{r['forwarded_per_cpu_s']:10.0f} pkt/cpu-s  {r['us_per_forwarded']:6.2f} us/pkt  "
            f"cpu {100 * r['cpu_share']:5.1f}%"
        )
    t = results["transcode"]
    print(
        f"transcode    {100 * t['transcode_core_share']:.1f}% of a core at {t['transcode_fps']:.1f} fps"
    )
    print(
        f"forwarding one ~100 pkt/s stream: {100 * results['forward_core_share_one_stream']:.3f}% "
        f"of a core; transcoding costs {results['transcode_vs_forward'] or 0:.0f}x more"
    )
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
