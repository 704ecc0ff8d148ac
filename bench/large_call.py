"""One large call on one media worker: 6, 20, 40 and 60 simulated participants (issue 11).

    python bench/large_call.py                          # sizes 6,20,40,60, 20 s each
    python bench/large_call.py --sizes 20,60 --seconds 30 --reference <commit>
    python bench/large_call.py --quick                  # 4 peers, 4 s: a smoke run

For each size N and each build (this tree and, with ``--reference``, that commit exported with
``git archive`` as bench/capacity.py does), a fresh ``media.worker.Worker`` runs in a process of
its own (the build's ``media`` package, nothing else: no gateway, actors or storage) and
``--processes`` load-generator processes (this tree's ``waitroom.loadtest.largecall``) put N
peers in one call through it. Every peer publishes simulcast (three VP8 layers, 180p/360p/720p,
SSRCs unsignalled, MID/RID) and Opus with RFC 6464 levels: ``--speakers`` of them (the last to
join, so off the first gallery page) talk in turns of ``--turn`` seconds, the rest are room
noise. Each page shows a gallery page of ``--tiles`` tiles at ``--tile-height`` px
(``media.view``), sends receiver reports and REMB, and answers PLI/FIR with a key frame of the
asked layer. Three quarters into the hold the first peer's REMB drops (the layer switch).

Figures per step: worker CPU (process CPU over wall, from when every peer is connected),
forwarded packets per second and CPU per forwarded packet (the worker's counters), loss and
jitter per subscriber (sequence gaps and RFC 3550 jitter of each received stream; p50 and worst
subscriber), bytes per subscriber per second, the speaker switch (a turn's start, i.e. the level
rising, to the first key frame of that speaker's video at each subscriber that was not already
receiving it; p50, p95, and its stages: the detector's decision, the slot map, the key-frame
request reaching the speaker, the key frame reaching the subscriber) and the layer switch (the REMB drop to the first key frame of a lower
layer on the probe's streams, and the longest packet gap on them meanwhile). The load average
is printed with the table; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The worker process of a reference build imports that build's ``media`` first.
_BUILD_ENV = "WAITROOM_LARGE_CALL_BUILD"
sys.path.insert(0, os.environ.get(_BUILD_ENV) or str(ROOT))

from procstat import udp_rcvbuf_errors  # noqa: E402  (bench/, the script's folder)

CALL = "large-call"
STARTUP_TIMEOUT = 60.0
#: Setup allowance per peer (offer, ICE, DTLS) before a step is abandoned.
SETUP_PER_PEER = 2.0
STEP_GRACE = 120.0
#: Between every peer connected and the first turn: views settle, the noise floor is learnt.
LEAD_IN = 2.0
#: The layer-switch probe starts at this fraction of the hold.
PROBE_AT = 0.75
CONTROL_LINE_LIMIT = 1 << 20
_MS = 1000.0


# -- the worker process (the build's media package) ---------------------------------------------


def serve_worker(last_n: int) -> None:
    """Child process: one Worker, controlled by JSON lines over TCP (port printed on stdout)."""
    import socket

    import trio

    from media.worker import Worker, WorkerConfig

    try:
        from media.events import SlotsChanged
    except ImportError:  # a reference build before fixed slots: no speaker-switch figure
        SlotsChanged = None  # type: ignore[assignment,misc]
    try:
        from media.events import DominantSpeakerChanged
    except ImportError:  # a reference build without a detector: no decision stage
        DominantSpeakerChanged = None  # type: ignore[assignment,misc]

    events: list[tuple[float, str, dict[int, str]]] = []
    speakers: list[tuple[float, str]] = []

    def on_event(event: object) -> None:
        if SlotsChanged is not None and isinstance(event, SlotsChanged):
            events.append((time.monotonic(), event.peer_id, dict(event.slots)))
        elif DominantSpeakerChanged is not None and isinstance(event, DominantSpeakerChanged):
            speakers.append((time.monotonic(), event.peer_id))

    try:
        config = WorkerConfig(
            announced_address="127.0.0.1", bind_address="127.0.0.1", last_n=last_n
        )
    except TypeError:  # a reference build before last-N: everyone is forwarded
        config = WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1")
    worker = Worker(config, on_event=on_event)
    mark = {"cpu": time.process_time(), "wall": time.monotonic(), "forwarded": 0}

    async def handle(stream: trio.SocketStream, stop: trio.CancelScope) -> None:
        buffer = b""
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                reply = await answer(request)
                await stream.send_all(json.dumps(reply).encode() + b"\n")
                if request["op"] == "stop":
                    stop.cancel()
                    return

    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "open":
            return {"answer": await worker.open_peer(CALL, request["peer"], request["offer"])}
        if op == "view":
            set_view = getattr(worker, "set_view", None)
            if set_view is not None:
                set_view(CALL, request["peer"], request["shown"], [])
            return {}
        if op == "mark":
            mark.update(
                cpu=time.process_time(),
                wall=time.monotonic(),
                forwarded=worker.stats()["forwarded"],
            )
            return {}
        stats = worker.stats()
        return {
            "cpu_seconds": time.process_time() - mark["cpu"],
            "wall_seconds": time.monotonic() - mark["wall"],
            "forwarded": stats["forwarded"] - mark["forwarded"],
            "dropped": {k: v for k, v in stats.items() if k.startswith("dropped_") and v},
            "stats": stats,
            "events": events if op == "stop" else [],
            "speakers": speakers if op == "stop" else [],
        }

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            print(json.dumps({"control": port, "media": worker.port}), flush=True)

            async def serve(stream: trio.SocketStream) -> None:
                stream.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await handle(stream, nursery.cancel_scope)

            await trio.serve_listeners(serve, listeners)

    trio.run(main)


# -- the load-generator processes (this tree's load tester) -------------------------------------


class Control:
    """A JSON-lines client of the worker process's control port."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def connect(cls, port: int) -> Control:
        import trio

        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.stream.send_all(json.dumps(request).encode() + b"\n")
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                raise ConnectionError("worker control closed")
            self.buffer += data
            if len(self.buffer) > CONTROL_LINE_LIMIT * 64:
                raise ConnectionError("worker control reply too long")
        line, self.buffer = self.buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply


def drive(port: int, plan: dict[str, Any], ready: Any, go: Any, results: Any) -> None:
    """Child process: this share of the call's peers; connect, wait for go, run, report."""
    import trio

    from waitroom.loadtest.clip import load_simulcast_clip
    from waitroom.loadtest.largecall import LargeCall, TurnSchedule

    async def main() -> dict[str, Any]:
        clip = await trio.to_thread.run_sync(load_simulcast_clip)
        control = await Control.connect(port)
        lock = trio.Lock()

        async def open_peer(name: str, offer: str) -> str:
            async with lock:
                return str(
                    (await control.call({"op": "open", "peer": name, "offer": offer}))["answer"]
                )

        async def set_view(name: str, shown: dict[str, int]) -> None:
            async with lock:
                await control.call({"op": "view", "peer": name, "shown": shown})

        # The schedule's start is only known once everyone is connected: a placeholder first.
        placeholder = TurnSchedule(tuple(plan["speakers"]), float("inf"), plan["turn"])
        call = LargeCall(
            clip,
            plan["names"],
            plan["mine"],
            placeholder,
            simulcast=plan["simulcast"],
            slots=plan["slots"],
            audio_slots=plan["audio_slots"],
            tiles=plan["tiles"],
            tile_height=plan["tile_height"],
        )
        try:
            await call.connect(open_peer)
            ready.put(len(call.peers))
            start, probe_at = await trio.to_thread.run_sync(go.get)
            call.schedule = TurnSchedule(tuple(plan["speakers"]), start, plan["turn"])
            cpu0, wall0 = time.process_time(), time.monotonic()
            await call.run(plan["seconds"], set_view, probe_at=probe_at if plan["probe"] else None)
            out = call.results()
            out["cpu_seconds"] = time.process_time() - cpu0
            out["wall_seconds"] = time.monotonic() - wall0
            return out
        finally:
            call.close()
            await control.stream.aclose()

    results.put(trio.run(main))


# -- one step ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    name: str
    root: Path


def export_commit(commit: str, into: Path) -> Build:
    """The tree of ``commit`` in a directory of its own (the repository is not touched)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    tar_path = into / "tree.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    tar_path.unlink()
    return Build(f"reference {commit[:10]}", into)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_step(build: Build, size: int, args: argparse.Namespace) -> dict[str, Any]:
    """One call of ``size`` peers through a fresh worker process of ``build``."""
    import trio

    from waitroom.loadtest.largecall import (
        TurnSchedule,
        layer_switches,
        percentile,
        speaker_stages,
        speaker_switches,
        subscriber_figures,
    )

    env = {**os.environ, _BUILD_ENV: str(build.root), "PYTHONPATH": str(build.root)}
    worker = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-worker",
            "--last-n",
            str(args.last_n),
        ],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert worker.stdout is not None
        ports = json.loads(worker.stdout.readline())
        names = [f"p{n:02d}" for n in range(size)]
        speakers = names[-min(args.speakers, size) :] if size > 1 else []
        processes = max(1, min(args.processes, size))
        shares = [names[i::processes] for i in range(processes)]
        ctx = multiprocessing.get_context("spawn")
        ready, results = ctx.Queue(), ctx.Queue()
        gos = [ctx.Queue() for _ in shares]
        drivers = []
        for i, mine in enumerate(shares):
            plan = {
                "names": names,
                "mine": mine,
                "speakers": speakers,
                "turn": args.turn,
                "simulcast": not args.no_simulcast,
                "slots": args.slots,
                "audio_slots": args.audio_slots,
                "tiles": args.tiles,
                "tile_height": args.tile_height,
                "seconds": args.seconds,
                "probe": i == 0,
            }
            drivers.append(
                ctx.Process(target=drive, args=(ports["control"], plan, ready, gos[i], results))
            )
        for driver in drivers:
            driver.start()
        connected = sum(ready.get(timeout=STARTUP_TIMEOUT + SETUP_PER_PEER * size) for _ in drivers)

        async def control(op: str) -> dict[str, Any]:
            link = await Control.connect(ports["control"])
            try:
                return await link.call({"op": op})
            finally:
                await link.stream.aclose()

        trio.run(control, "mark")
        rcvbuf0 = udp_rcvbuf_errors()
        t0 = time.monotonic()
        start = t0 + LEAD_IN
        probe_at = t0 + PROBE_AT * args.seconds
        for go in gos:
            go.put((start, probe_at))
        runs = [results.get(timeout=args.seconds + STEP_GRACE) for _ in drivers]
        for driver in drivers:
            driver.join(timeout=30)
        served = trio.run(control, "stop")
        rcvbuf_drops = udp_rcvbuf_errors() - rcvbuf0
    finally:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    subscribers = {k: v for run in runs for k, v in run["subscribers"].items()}
    wall = served["wall_seconds"]
    per_sub = [subscriber_figures(s, args.seconds) for s in subscribers.values()]
    losses = [f["loss_percent"] for f in per_sub if f["loss_percent"] is not None]
    jitters = [f["jitter_ms"] for f in per_sub if f["jitter_ms"] is not None]
    rates = [f["bytes_per_second"] for f in per_sub if f["bytes_per_second"] is not None]
    schedule = TurnSchedule(tuple(speakers), start, args.turn)
    events = [(t, who, {int(k): v for k, v in video.items()}) for t, who, video in served["events"]]
    turns = schedule.turns(t0 + args.seconds)
    speaker = speaker_switches(turns, events, subscribers)
    speaker_events = [(t, who) for t, who in served.get("speakers", [])]
    stages = speaker_stages(turns, speaker_events, events, subscribers)
    probe = next((tuple(r["probe"]) for r in runs if r.get("probe")), None)
    layer = layer_switches(probe, subscribers)  # type: ignore[arg-type]
    tester_cpu = sum(r["cpu_seconds"] for r in runs)
    tester_wall = max(r["wall_seconds"] for r in runs)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * _MS, 1)

    return {
        "build": build.name,
        "participants": size,
        "connected": connected,
        "worker_cpu_percent": round(100 * served["cpu_seconds"] / wall, 1) if wall else None,
        "forwarded_per_second": round(served["forwarded"] / wall) if wall else None,
        "worker_us_per_forwarded": round(1e6 * served["cpu_seconds"] / served["forwarded"], 2)
        if served["forwarded"]
        else None,
        "worker_dropped": served["dropped"],
        "loss_p50_percent": _round(percentile(losses, 0.5), 3),
        "loss_max_percent": _round(max(losses, default=None), 3),
        "jitter_p50_ms": _round(percentile(jitters, 0.5), 2),
        "jitter_max_ms": _round(max(jitters, default=None), 2),
        "bytes_per_subscriber_per_s": round(sum(rates) / len(rates)) if rates else None,
        "speaker_switch_p50_ms": ms(percentile(speaker["delays"], 0.5)),
        "speaker_switch_p95_ms": ms(percentile(speaker["delays"], 0.95)),
        "speaker_switches": len(speaker["delays"]),
        "speaker_switch_missed": speaker["missed"],
        "speaker_already_forwarded": speaker["already_forwarded"],
        # Where a switch's time goes (p50 ms): from the level rising to the detector's decision,
        # decision -> slot map, map -> key-frame request at the speaker, request -> key frame
        # at the subscriber (`largecall.speaker_stages`).
        "speaker_stage_p50_ms": {k: ms(v) for k, v in stages["p50"].items()},
        "speaker_keyframe_asked_elsewhere": stages["asked_elsewhere"],
        "layer_switch_p50_ms": ms(percentile(layer["delays"], 0.5)),
        "layer_switch_streams": layer["streams"],
        "layer_switch_max_gap_ms": ms(layer["max_gap"]),
        "keyframes_requested": sum(s["keyframe_requests"] for s in subscribers.values()),
        "keyframes_sent": sum(s["keyframes_sent"] for s in subscribers.values()),
        "tester_sent": sum(r["sent"] for r in runs),
        "tester_send_dropped": sum(r["send_dropped"] for r in runs),
        # Host-wide datagrams the kernel dropped on a full receive buffer during the hold: the
        # worker's socket or a tester's. Beside the worker's own counters it says where loss was.
        "udp_rcvbuf_drops": rcvbuf_drops,
        "tester_cpu_percent": round(100 * tester_cpu / tester_wall, 1) if tester_wall else None,
        "load_average": load_average(),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


COLUMNS = (
    ("participants", "N"),
    ("worker_cpu_percent", "worker %CPU"),
    ("forwarded_per_second", "fwd pkt/s"),
    ("worker_us_per_forwarded", "us/fwd"),
    ("loss_p50_percent", "loss p50 %"),
    ("loss_max_percent", "loss max %"),
    ("jitter_p50_ms", "jitter p50 ms"),
    ("bytes_per_subscriber_per_s", "B/s per sub"),
    ("speaker_switch_p50_ms", "speaker p50 ms"),
    ("speaker_stages", "decide/map/ask/deliver ms"),
    ("layer_switch_p50_ms", "layer p50 ms"),
    ("layer_switch_max_gap_ms", "layer gap ms"),
    ("tester_cpu_percent", "tester %CPU"),
    ("udp_rcvbuf_drops", "rcvbuf drops"),
)


def _cell(step: dict[str, Any], key: str) -> str:
    if key == "speaker_stages":
        p50 = step.get("speaker_stage_p50_ms") or {}
        parts = [p50.get(k) for k in ("decide", "map", "ask", "deliver")]
        return "/".join("-" if v is None else f"{v:.0f}" for v in parts)
    return str(step.get(key))


def table(steps: list[dict[str, Any]]) -> str:
    header = ["build"] + [title for _, title in COLUMNS]
    rows = [[s["build"]] + [_cell(s, key) for key, _ in COLUMNS] for s in steps]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="6,20,40,60", help="participants per step")
    parser.add_argument("--seconds", type=float, default=20.0, help="hold per step")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--reference", default=None, help="commit measured beside this tree")
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--turn", type=float, default=4.0, help="seconds per speaker's turn")
    parser.add_argument("--last-n", type=int, default=9)
    parser.add_argument("--slots", type=int, default=9, help="video receive lines per peer")
    parser.add_argument("--audio-slots", type=int, default=5)
    parser.add_argument("--tiles", type=int, default=6, help="gallery tiles each page shows")
    parser.add_argument("--tile-height", type=int, default=360)
    parser.add_argument("--no-simulcast", action="store_true")
    parser.add_argument("--quick", action="store_true", help="4 peers, 4 s: a smoke run")
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_worker:
        serve_worker(args.last_n)
        return 0
    if args.quick:
        args.sizes, args.seconds, args.processes = "4", 4.0, 1
        args.speakers, args.turn, args.last_n, args.slots, args.tiles = 2, 1.0, 2, 3, 1
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    from waitroom.loadtest.clip import load_simulcast_clip

    load_simulcast_clip()  # encoded once here, read from the cache by every driver
    steps: list[dict[str, Any]] = []
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="waitroom-large-call-") as tmp:
        builds = [Build("this tree", ROOT)]
        if args.reference:
            builds.append(export_commit(args.reference, Path(tmp) / "reference"))
        for size in sizes:
            for build in builds:
                step = run_step(build, size, args)
                steps.append(step)
                print(table([step]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(steps))
    print(f"load average: start {load_start}, end {load_average()}")
    print(json.dumps({"steps": steps, "args": vars(args)}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
