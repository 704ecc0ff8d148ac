"""Media worker processes behind the same interface as one in-process `Worker`.

`MediaPool` starts N `python -m media.process` children (one UDP port each: base port + i, or an
ephemeral port each when the base is 0) in its own nursery and supervises them. It places each
call on one worker, the one forwarding the fewest streams (`call_cost` over its calls' peers,
open or being opened), then with the fewest peers, at the time, so every
peer of a call shares a worker and forwarding never leaves a process; the placement is kept until
the call has no peers left.

What the rooms call synchronously (`close_peer`, `set_receiving`, `slots`, ...) is answered from
a mirror kept here or queued as a one-way command; only `open_peer` waits for the worker, and
never longer than `REQUEST_TIMEOUT`. Replies and events of one worker come over one pipe in the
order the worker produced them, and the mirror is updated in that order by the pipe's reader.

Supervision: a worker that exits, stops answering the periodic stats request, or stops reading
its pipe is killed and restarted, paced by the runtime's restart intensity. Every peer it carried gets
`PeerClosed(reason="worker_died")`, so the room tells the browser, which offers again and lands
on a running worker. Children die with the pool: cancellation kills them, and a child exits by
itself when its stdin pipe closes (the control plane exited or crashed).
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from media.control import (
    MAX_VIEW_PINNED,
    MAX_VIEW_SHOWN,
    ControlError,
    Frame,
    FrameReader,
    Refused,
    encode,
    text,
)
from media.events import (
    DominantSpeakerChanged,
    LayersWanted,
    MediaError,
    MediaEvent,
    PeerClosed,
    PeerConnected,
    SlotsChanged,
)
from media.worker import WorkerConfig
from runtime.supervisor import RestartIntensity

log = logging.getLogger("waitroom.media.pool")

#: The repository root: the children import `media` from here whatever the parent's cwd.
ROOT = Path(__file__).resolve().parent.parent
#: A child imports Trio, OpenSSL and pylibsrtp and makes a certificate: about a second idle,
#: several on a loaded machine.
START_TIMEOUT = 30.0
#: An offer is answered in milliseconds; this covers a loaded machine, not a normal one.
REQUEST_TIMEOUT = 10.0
#: Stats are polled this often (for /metrics) and double as the liveness check.
STATS_INTERVAL = 1.0
#: A worker that does not answer a stats request in this long is stuck and is restarted.
HEALTH_TIMEOUT = 5.0
#: Commands queued for one worker; a worker that lets this many pile up is stuck.
OUTBOX_FRAMES = 1000
WRITE_TIMEOUT = 5.0
READ_CHUNK = 65536
#: How long `open_peer` waits for some worker to be running (all of them restarting).
PLACE_TIMEOUT = 10.0
PLACE_POLL = 0.05
#: A worker's `layers` event: at most this many rids (a simulcast track has up to three), each
#: at most this long (an offer's rid is a short token).
MAX_RIDS = 3
MAX_RID_LENGTH = 32
#: Restart intensity (runtime.supervisor.RestartIntensity): this many restarts of one worker in
#: this many seconds are restarted after RESTART_DELAY; more mean a crash loop, retried every
#: RESTART_BACKOFF so it does not burn a core.
RESTART_MAX = 3
RESTART_PERIOD = 30.0
RESTART_DELAY = 0.2
RESTART_BACKOFF = 5.0
PEER_CLOSED_WORKER_DIED = "worker_died"
#: How long a stopping worker gets after SIGTERM before SIGKILL.
KILL_AFTER = 1.0


@dataclass
class _Pending:
    done: trio.Event = field(default_factory=trio.Event)
    reply: Frame | None = None
    error: str | None = None
    #: For an open: (call, peer, call epoch, peer epoch) at the time it was sent.
    opening: tuple[str, str, int, int] | None = None


@dataclass
class _Call:
    worker: _WorkerSlot
    peers: set[str] = field(default_factory=set)
    opening: int = 0
    #: Bumped by close_call (epoch) and close_peer (peer_epochs): an open answered after a close
    #: that was sent later must not bring the peer back into the mirror.
    epoch: int = 0
    peer_epochs: dict[str, int] = field(default_factory=dict)


def call_cost(peers: int, last_n: int, loudest: int) -> int:
    """About how many streams a call of ``peers`` forwards: each subscriber gets at most
    ``last_n`` videos and about ``loudest`` voices, everyone's while the call is small. The
    worker's CPU goes with forwarded packets (docs/media.md, "When a call outgrows a worker")."""
    others = max(0, peers - 1)
    return peers * (min(others, last_n) + min(others, loudest))


@dataclass(eq=False)
class _WorkerSlot:
    """One worker position; its process (incarnation) may be replaced many times."""

    index: int
    wanted_port: int
    up: bool = False
    ever_ready: bool = False
    port: int = 0
    pid: int | None = None
    restarts: int = 0
    refused: int = 0  # frames from the worker the pool could not use
    stats: dict[str, int] = field(default_factory=dict)
    outbox: trio.MemorySendChannel[bytes] | None = None
    scope: trio.CancelScope | None = None
    pending: dict[int, _Pending] = field(default_factory=dict)
    calls: set[str] = field(default_factory=set)
    ready: trio.Event = field(default_factory=trio.Event)  # the first start
    live: trio.Event = field(default_factory=trio.Event)  # the current incarnation's start


class MediaPool:
    """N media worker processes, used like one `media.Worker` (see the module docstring)."""

    def __init__(
        self,
        config: WorkerConfig | None = None,
        workers: int = 1,
        on_event: Callable[[MediaEvent], None] | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        if workers < 1:
            raise ValueError("a media pool needs at least one worker process")
        self.config = config or WorkerConfig()
        self.start_timeout = start_timeout
        self.health_timeout = health_timeout
        self._on_event = on_event
        base = self.config.port
        self._workers = [_WorkerSlot(i, base + i if base else 0) for i in range(workers)]
        self._calls: dict[str, _Call] = {}
        self._slots: dict[tuple[str, str], dict[int, str]] = {}
        self._audio_slots: dict[tuple[str, str], dict[int, str]] = {}
        self._states: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)
        self._running = False
        self.internal_errors = 0

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[MediaPool] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start every worker, report ready once all run, supervise until cancelled.

        A worker that cannot start the first time (port taken, crash on import) raises
        MediaError here; later failures restart it.
        """
        try:
            await self._run(task_status)
        except ExceptionGroup as group:
            failed = group.subgroup(MediaError)
            if failed is None:
                raise
            first: BaseException = failed
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from group

    async def _run(self, task_status: trio.TaskStatus[MediaPool]) -> None:
        async with trio.open_nursery() as nursery:
            for slot in self._workers:
                nursery.start_soon(self._supervise, slot)
            with trio.move_on_after(self.start_timeout) as waited:
                for slot in self._workers:
                    await slot.ready.wait()
            if waited.cancelled_caught:
                raise MediaError(f"media workers did not start within {self.start_timeout} s")
            self._running = True
            task_status.started(self)
            try:
                await trio.sleep_forever()
            finally:
                self._running = False

    @property
    def port(self) -> int:
        """The first worker's UDP port (every worker has its own: see `ports`)."""
        return self._workers[0].port

    @property
    def ports(self) -> list[int]:
        return [slot.port for slot in self._workers]

    def worker_pids(self) -> list[int | None]:
        return [slot.pid if slot.up else None for slot in self._workers]

    def placement(self, call_id: str) -> int | None:
        """Index of the worker carrying the call, None when it has no peers."""
        call = self._calls.get(call_id)
        return call.worker.index if call is not None else None

    async def _supervise(self, slot: _WorkerSlot) -> None:
        """Run the slot's worker, restarting it whenever it goes: at once within the restart
        intensity, after RESTART_BACKOFF beyond it (never giving up: the other workers' calls
        and the server go on, and a worker that comes back takes new calls again)."""
        intensity = RestartIntensity(RESTART_MAX, RESTART_PERIOD)
        while True:
            try:
                await self._incarnation(slot)
                log.warning("media worker %d (pid %s) exited", slot.index, slot.pid)
            except Exception as exc:
                if not slot.ever_ready:
                    raise MediaError(f"media worker {slot.index} failed to start: {exc!r}") from exc
                log.exception("media worker %d failed", slot.index)
            finally:
                # On cancellation too: nothing may wait on a worker that is gone.
                self._down(slot)
            if not slot.ever_ready:
                raise MediaError(f"media worker {slot.index} exited before it was ready")
            self._lost(slot)
            slot.restarts += 1
            if intensity.record(trio.current_time()):
                await trio.sleep(RESTART_DELAY)
            else:
                log.error(
                    "media worker %d restarted more than %d times in %g s: next try in %g s",
                    slot.index,
                    RESTART_MAX,
                    RESTART_PERIOD,
                    RESTART_BACKOFF,
                )
                await trio.sleep(RESTART_BACKOFF)

    async def _incarnation(self, slot: _WorkerSlot) -> None:
        """One child process, from spawn to exit; returns (or raises) when it is gone."""
        send, receive = trio.open_memory_channel[bytes](OUTBOX_FRAMES)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "media.process",
            "--bind",
            self.config.bind_address,
            "--announce",
            self.config.announced_address,
            "--port",
            str(slot.wanted_port),
            "--consent-timeout",
            str(self.config.consent_timeout),
            "--connect-timeout",
            str(self.config.connect_timeout),
            "--last-n",
            str(self.config.last_n),
            "--loudest",
            str(self.config.loudest),
            "--log-level",
            logging.getLevelName(log.getEffectiveLevel()),
        ]
        tcp_port = self.config.tcp_port
        if tcp_port is not None:  # ICE-TCP: base port + i, or a free one each when the base is 0
            command += ["--tcp-port", str(tcp_port + slot.index if tcp_port else 0)]
        if not self.config.udp_candidates:
            command.append("--no-udp-candidates")
        slot.live = trio.Event()
        async with trio.open_nursery() as nursery:
            slot.scope = nursery.cancel_scope
            process: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    check=False,
                    cwd=ROOT,
                    env=env,
                    deliver_cancel=_terminate,
                )
            )
            assert process.stdin is not None and process.stdout is not None
            slot.pid = process.pid
            nursery.start_soon(self._writer, process.stdin, receive)
            nursery.start_soon(self._watch, slot)
            await self._reader(slot, process.stdout, send)
            nursery.cancel_scope.cancel(reason="media worker pipe closed")

    async def _watch(self, slot: _WorkerSlot) -> None:
        """Bound the start, then poll stats, which is also the liveness check."""
        with trio.move_on_after(self.start_timeout):
            await slot.live.wait()
        if slot.live.is_set():
            await self._poll_stats(slot)
            return
        raise MediaError(f"media worker {slot.index} did not start within {self.start_timeout} s")

    async def _poll_stats(self, slot: _WorkerSlot) -> None:
        """Refresh the stats every second; a worker that does not answer is restarted."""
        while True:
            try:
                reply = await self._request(slot, {"op": "stats"}, self.health_timeout)
            except MediaError as exc:
                log.error("media worker %d is unresponsive (%s): restarting it", slot.index, exc)
                self._restart(slot)
                return
            stats = reply.get("stats")
            if isinstance(stats, dict):
                slot.stats = _int_stats(stats)
            await trio.sleep(STATS_INTERVAL)

    @staticmethod
    async def _writer(
        stream: trio.abc.SendStream, receive: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        async with receive, stream:
            async for frame in receive:
                with trio.fail_after(WRITE_TIMEOUT):
                    await stream.send_all(frame)

    async def _reader(
        self,
        slot: _WorkerSlot,
        stream: trio.abc.ReceiveStream,
        outbox: trio.MemorySendChannel[bytes],
    ) -> None:
        reader = FrameReader()
        while True:
            data = await stream.receive_some(READ_CHUNK)
            if not data:
                return
            for item in reader.feed(data):
                if isinstance(item, Refused):
                    self._refuse(slot, item.reason)
                    continue
                try:
                    self._on_frame(slot, item, outbox)
                except ControlError as exc:
                    self._refuse(slot, str(exc))

    def _restart(self, slot: _WorkerSlot) -> None:
        if slot.scope is not None:
            slot.scope.cancel(reason="media worker restarted")

    def _down(self, slot: _WorkerSlot) -> None:
        slot.up = False
        if slot.outbox is not None:
            slot.outbox.close()
        slot.outbox = None
        slot.scope = None
        slot.stats = {}
        for pending in slot.pending.values():
            pending.error = f"media worker {slot.index} stopped"
            pending.done.set()
        slot.pending.clear()

    def _lost(self, slot: _WorkerSlot) -> None:
        """The worker is gone with every peer it carried: tell the rooms."""
        for call_id in sorted(slot.calls):
            call = self._calls.pop(call_id, None)
            if call is None:
                continue
            for peer_id in sorted(call.peers):
                self._forget(call_id, peer_id)
                self._emit(PeerClosed(call_id, peer_id, PEER_CLOSED_WORKER_DIED))
        slot.calls.clear()

    # ---- frames from a worker ----------------------------------------------------------------

    def _on_frame(
        self, slot: _WorkerSlot, frame: Frame, outbox: trio.MemorySendChannel[bytes]
    ) -> None:
        event = frame.get("ev")
        if event is None:
            self._on_reply(slot, frame)
        elif event == "ready":
            port = frame.get("port")
            if type(port) is not int:
                raise ControlError("ready without a port")
            slot.port = port
            slot.up = True
            slot.ever_ready = True
            slot.outbox = outbox
            slot.ready.set()
            slot.live.set()
            log.info("media worker %d (pid %s) on UDP port %d", slot.index, slot.pid, port)
        elif event == "refused":
            # A command without an id (a request's refusal comes back as its reply).
            log.warning("media worker %d refused a command: %r", slot.index, frame.get("reason"))
        else:
            call_id, peer_id = text(frame, "call"), text(frame, "peer")
            call = self._calls.get(call_id)
            if call is None or call.worker is not slot:
                return  # about a call this worker no longer carries
            key = (call_id, peer_id)
            if event == "connected":
                if peer_id in call.peers:
                    self._states[key] = "connected"
                self._emit(PeerConnected(call_id, peer_id))
            elif event == "closed":
                call.peers.discard(peer_id)
                self._forget(call_id, peer_id)
                self._settle(call_id)
                self._emit(PeerClosed(call_id, peer_id, text(frame, "reason")))
            elif event == "slots":
                slots = _slot_map(frame.get("slots"))
                audio = _slot_map(frame.get("audio", []))
                if peer_id in call.peers:
                    self._slots[key] = slots
                    self._audio_slots[key] = audio
                self._emit(SlotsChanged(call_id, peer_id, dict(slots), dict(audio)))
            elif event == "speaker":
                if peer_id in call.peers:
                    self._emit(DominantSpeakerChanged(call_id, peer_id))
            elif event == "layers":
                if peer_id in call.peers:
                    self._emit(LayersWanted(call_id, peer_id, _rids(frame.get("active"))))
            else:
                raise ControlError(f"unknown event {event!r}")

    def _on_reply(self, slot: _WorkerSlot, frame: Frame) -> None:
        rid = frame.get("id")
        pending = slot.pending.get(rid) if type(rid) is int else None
        if pending is None:
            return  # answered after its request timed out
        if pending.opening is not None and frame.get("ok") is not None:
            self._apply_open(slot, pending.opening, frame)
        pending.reply = frame
        pending.done.set()

    def _apply_open(
        self, slot: _WorkerSlot, opening: tuple[str, str, int, int], frame: Frame
    ) -> None:
        """Bring the mirror up to date with an open's reply, in pipe order."""
        call_id, peer_id, epoch, peer_epoch = opening
        call = self._calls.get(call_id)
        if call is None or call.worker is not slot:
            return
        if call.epoch != epoch or call.peer_epochs.get(peer_id, 0) != peer_epoch:
            return  # closed after this open was sent: the close wins
        key = (call_id, peer_id)
        if frame.get("present") is True:
            call.peers.add(peer_id)
            if frame.get("ok") is True:
                self._states[key] = "new"
                self._slots[key] = _slot_map(frame.get("slots"))
                self._audio_slots[key] = _slot_map(frame.get("audio", []))
        else:
            call.peers.discard(peer_id)
            self._forget(call_id, peer_id)

    def _refuse(self, slot: _WorkerSlot, reason: str) -> None:
        slot.refused += 1
        log.warning("media worker %d sent an unusable frame: %s", slot.index, reason)

    # ---- the MediaService interface ----------------------------------------------------------

    async def open_peer(self, call_id: str, peer_id: str, offer_sdp: str) -> str:
        """Answer a peer's offer on the worker carrying its call (placing the call if new)."""
        if not self._running:
            raise MediaError("media pool is not running")
        call = self._calls.get(call_id)
        if call is None:
            slot = await self._choose()
            call = self._calls.get(call_id)
            if call is None:
                call = self._calls[call_id] = _Call(slot)
                slot.calls.add(call_id)
        opening = (call_id, peer_id, call.epoch, call.peer_epochs.get(peer_id, 0))
        call.opening += 1
        try:
            reply = await self._request(
                call.worker,
                {"op": "open", "call": call_id, "peer": peer_id, "sdp": offer_sdp},
                REQUEST_TIMEOUT,
                opening=opening,
            )
        finally:
            call.opening -= 1
            self._settle(call_id)
        if reply.get("ok") is not True:
            raise MediaError(str(reply.get("error") or "the media worker refused the offer"))
        answer = reply.get("sdp")
        if not isinstance(answer, str):
            raise MediaError("the media worker sent no answer")
        return answer

    def close_peer(self, call_id: str, peer_id: str) -> None:
        """Remove a peer from its call; idempotent, no event."""
        call = self._calls.get(call_id)
        if call is None:
            return
        call.peer_epochs[peer_id] = call.peer_epochs.get(peer_id, 0) + 1
        self._command(call.worker, {"op": "close_peer", "call": call_id, "peer": peer_id})
        call.peers.discard(peer_id)
        self._forget(call_id, peer_id)
        self._settle(call_id)

    def close_call(self, call_id: str) -> None:
        """Remove every peer of a call; idempotent."""
        call = self._calls.get(call_id)
        if call is None:
            return
        call.epoch += 1
        self._command(call.worker, {"op": "close_call", "call": call_id})
        for peer_id in call.peers:
            self._forget(call_id, peer_id)
        call.peers.clear()
        self._settle(call_id)

    def set_receiving(self, call_id: str, peer_id: str, on: bool) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            self._command(
                call.worker, {"op": "receiving", "call": call_id, "peer": peer_id, "on": on}
            )

    def set_publishing(self, call_id: str, peer_id: str, on: bool) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            self._command(
                call.worker, {"op": "publishing", "call": call_id, "peer": peer_id, "on": on}
            )

    def set_view(
        self, call_id: str, peer_id: str, shown: dict[str, int], pinned: list[str]
    ) -> None:
        """What the peer's page shows (`Worker.set_view`), queued to the call's worker."""
        call = self._calls.get(call_id)
        if call is None or peer_id not in call.peers:
            return
        self._command(
            call.worker,
            {
                "op": "view",
                "call": call_id,
                "peer": peer_id,
                "shown": [[p, h] for p, h in list(shown.items())[:MAX_VIEW_SHOWN]],
                "pinned": list(pinned[:MAX_VIEW_PINNED]),
            },
        )

    def slots(self, call_id: str, peer_id: str) -> dict[int, str]:
        return dict(self._slots.get((call_id, peer_id), {}))

    def audio_slots(self, call_id: str, peer_id: str) -> dict[int, str]:
        return dict(self._audio_slots.get((call_id, peer_id), {}))

    def peers(self, call_id: str) -> list[str]:
        call = self._calls.get(call_id)
        return sorted(call.peers) if call is not None else []

    def peer_state(self, call_id: str, peer_id: str) -> str | None:
        """ "new" (answered) or "connected" (DTLS done), as last reported; None if absent."""
        return self._states.get((call_id, peer_id))

    def worker_stats(self) -> dict[str, dict[str, int]]:
        """Per worker (label: its index): its last polled counters, plus up and restarts."""
        out: dict[str, dict[str, int]] = {}
        for slot in self._workers:
            stats = dict(slot.stats)
            stats["control_refused"] = stats.get("control_refused", 0) + slot.refused
            stats["up"] = int(slot.up)
            stats["restarts"] = slot.restarts
            out[str(slot.index)] = stats
        return out

    async def refresh_stats(self) -> dict[str, dict[str, int]]:
        """Ask every running worker for its counters now (not the last poll): for benchmarks."""
        for slot in self._workers:
            if slot.up:
                reply = await self._request(slot, {"op": "stats"}, self.health_timeout)
                stats = reply.get("stats")
                if isinstance(stats, dict):
                    slot.stats = _int_stats(stats)
        return self.worker_stats()

    def stats(self) -> dict[str, int]:
        """The sum over workers (counters restart from 0 with a restarted worker)."""
        total: dict[str, int] = {}
        for stats in self.worker_stats().values():
            for key, value in stats.items():
                total[key] = total.get(key, 0) + value
        total["workers_up"] = total.pop("up", 0)
        total["worker_restarts"] = total.pop("restarts", 0)
        total["internal_errors"] = total.get("internal_errors", 0) + self.internal_errors
        return total

    # ---- helpers -----------------------------------------------------------------------------

    async def _choose(self) -> _WorkerSlot:
        """The running worker that carries least (`_load`); waits while none runs."""
        with trio.move_on_after(PLACE_TIMEOUT):
            while True:
                running = [slot for slot in self._workers if slot.up]
                if running:
                    return min(running, key=self._load)
                await trio.sleep(PLACE_POLL)
        raise MediaError("no media worker is running")

    def _load(self, slot: _WorkerSlot) -> tuple[int, int, int, int]:
        """What a worker carries, cheapest first: the streams its calls forward (`call_cost`),
        then its peers, then its calls. Peers alone would rank a worker with one 60-person call
        (720 streams) like one with thirty two-party calls (120)."""
        calls = [self._calls[c] for c in slot.calls if c in self._calls]
        sizes = [len(c.peers) + c.opening for c in calls]
        cost = sum(call_cost(n, self.config.last_n, self.config.loudest) for n in sizes)
        return (cost, sum(sizes), len(calls), slot.index)

    async def _request(
        self,
        slot: _WorkerSlot,
        message: Frame,
        timeout: float,
        *,
        opening: tuple[str, str, int, int] | None = None,
    ) -> Frame:
        if not slot.up or slot.outbox is None:
            raise MediaError(f"media worker {slot.index} is not running")
        rid = next(self._ids)
        pending = slot.pending[rid] = _Pending(opening=opening)
        try:
            self._command(slot, {**message, "id": rid})
            with trio.move_on_after(timeout):
                await pending.done.wait()
        finally:
            slot.pending.pop(rid, None)
        if pending.error is not None:
            raise MediaError(pending.error)
        if pending.reply is None:
            raise MediaError(f"media worker {slot.index} did not answer within {timeout} s")
        return pending.reply

    def _command(self, slot: _WorkerSlot, message: Frame) -> None:
        """Queue a command without waiting; a worker too stuck to take it is restarted."""
        if slot.outbox is None:
            return  # the worker is down: its peers are closed already
        try:
            frame = encode(message)
        except ControlError as exc:
            raise MediaError(str(exc)) from None
        try:
            slot.outbox.send_nowait(frame)
        except trio.WouldBlock:
            log.error("media worker %d stopped reading commands: restarting it", slot.index)
            self._restart(slot)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # going down right now; `_lost` will tell the rooms

    def _settle(self, call_id: str) -> None:
        """Forget the placement of a call that has no peers and no open under way."""
        call = self._calls.get(call_id)
        if call is not None and not call.peers and not call.opening:
            del self._calls[call_id]
            call.worker.calls.discard(call_id)

    def _forget(self, call_id: str, peer_id: str) -> None:
        self._slots.pop((call_id, peer_id), None)
        self._audio_slots.pop((call_id, peer_id), None)
        self._states.pop((call_id, peer_id), None)

    def _emit(self, event: MediaEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            self.internal_errors += 1
            log.exception("media pool: event handler failed on %r", event)


async def _terminate(process: trio.Process) -> None:
    """SIGTERM, then SIGKILL for a worker that is stuck or stopped (a worker keeps no state)."""
    process.terminate()
    await trio.sleep(KILL_AFTER)
    process.kill()


def _int_stats(stats: dict[object, object]) -> dict[str, int]:
    return {k: v for k, v in stats.items() if isinstance(k, str) and type(v) is int}


def _rids(value: object) -> tuple[str, ...]:
    """A worker's list of active rids (short strings; a simulcast track has at most three)."""
    if not isinstance(value, list) or len(value) > MAX_RIDS:
        raise ControlError("bad active layers")
    if not all(isinstance(rid, str) and 0 < len(rid) <= MAX_RID_LENGTH for rid in value):
        raise ControlError("bad active layers")
    return tuple(value)


def _slot_map(value: object) -> dict[int, str]:
    if not isinstance(value, list):
        raise ControlError("slots must be a list of [slot, peer] pairs")
    out: dict[int, str] = {}
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or type(pair[0]) is not int
            or not isinstance(pair[1], str)
        ):
            raise ControlError("slots must be a list of [slot, peer] pairs")
        out[pair[0]] = pair[1]
    return out
