"""A media worker as its own OS process: `python -m media.process --port P ...`.

It runs one `Worker` (one UDP port) and takes its orders over stdin, answering and reporting
events on stdout, in the framed msgpack of `media.control`. Python's stdout is pointed at stderr
first, so a stray print can never corrupt the pipe. The process ends when stdin reaches end of
file (the control plane closed the pipe or died), on a `shutdown` command, or on SIGTERM: it can
never outlive the control plane. A bad frame is refused, counted (`control_refused`) and
answered: a request (a frame with an id) with its one reply, not ok, anything else with a
`refused` event. It never stops the worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import trio

from media.control import (
    ControlError,
    Frame,
    FrameReader,
    Refused,
    encode,
    flag,
    request_id,
    text,
    view_fields,
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
from media.selection import DEFAULT_LAST_N, DEFAULT_LOUDEST
from media.worker import CONNECT_TIMEOUT, CONSENT_TIMEOUT, Worker, WorkerConfig

log = logging.getLogger("waitroom.media.process")

#: Events and replies queued for the control plane; a control plane that stops reading for this
#: many frames is gone or stuck, and the worker stops rather than buffer without bound.
OUTBOX_FRAMES = 10_000
#: A write to the control pipe that takes longer than this means the control plane is stuck.
WRITE_TIMEOUT = 10.0
#: Answering an offer is local work (SDP, a certificate, a task start): milliseconds.
OPEN_TIMEOUT = 5.0
READ_CHUNK = 65536
#: Ids are opaque to the worker but bounded, so a hostile frame cannot make it keep megabytes.
MAX_ID_LENGTH = 256


class WorkerProcess:
    """The command loop around one Worker; `serve` runs until stdin closes or `shutdown`."""

    def __init__(self, config: WorkerConfig, control_in: int, control_out: int) -> None:
        self.worker = Worker(config, on_event=self._on_event)
        self.control_in = control_in
        self.control_out = control_out
        self.refused = 0
        self.events_dropped = 0
        self._outbox_send, self._outbox_receive = trio.open_memory_channel[bytes](OUTBOX_FRAMES)

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.worker.run)
            nursery.start_soon(self._writer)
            self._send(
                {
                    "ev": "ready",
                    "port": self.worker.port,
                    "tcp_port": self.worker.tcp_port,
                    "pid": os.getpid(),
                }
            )
            await self._reader()
            nursery.cancel_scope.cancel(reason="control pipe closed")

    async def _reader(self) -> None:
        reader = FrameReader()
        async with trio.lowlevel.FdStream(self.control_in) as stream:
            while True:
                data = await stream.receive_some(READ_CHUNK)
                if not data:
                    return
                for item in reader.feed(data):
                    if isinstance(item, Refused):
                        self._refuse(item.reason, None)
                    elif await self._handle(item) is False:
                        return

    async def _writer(self) -> None:
        async with trio.lowlevel.FdStream(self.control_out) as stream:
            async for frame in self._outbox_receive:
                with trio.fail_after(WRITE_TIMEOUT):
                    await stream.send_all(frame)

    async def _handle(self, frame: Frame) -> bool:
        """Run one command; False means stop. A malformed command is refused and counted."""
        try:
            rid = request_id(frame)
        except ControlError as exc:
            self._refuse(str(exc), None)
            return True
        try:
            op = frame.get("op")
            if op == "open":
                await self._open(rid, frame)
            elif op == "close_peer":
                self.worker.close_peer(_id(frame, "call"), _id(frame, "peer"))
            elif op == "close_call":
                self.worker.close_call(_id(frame, "call"))
            elif op == "receiving":
                self.worker.set_receiving(_id(frame, "call"), _id(frame, "peer"), flag(frame, "on"))
            elif op == "publishing":
                self.worker.set_publishing(
                    _id(frame, "call"), _id(frame, "peer"), flag(frame, "on")
                )
            elif op == "view":
                shown, pinned = view_fields(frame)
                self.worker.set_view(_id(frame, "call"), _id(frame, "peer"), shown, pinned)
            elif op == "stats":
                self._reply(rid, stats=self.stats())
            elif op == "shutdown":
                return False
            else:
                raise ControlError(f"unknown op {op!r}")
        except ControlError as exc:
            self._refuse(str(exc), rid)
        return True

    async def _open(self, rid: int | None, frame: Frame) -> None:
        call, peer, sdp = _id(frame, "call"), _id(frame, "peer"), text(frame, "sdp")
        try:
            with trio.fail_after(OPEN_TIMEOUT):
                answer = await self.worker.open_peer(call, peer, sdp)
        except (MediaError, trio.TooSlowError) as exc:
            self._reply(
                rid,
                ok=False,
                error=str(exc) or "timed out",
                present=self.worker.peer_state(call, peer) is not None,
            )
            return
        slots = sorted(self.worker.slots(call, peer).items())
        audio = sorted(self.worker.audio_slots(call, peer).items())
        self._reply(
            rid,
            sdp=answer,
            slots=[list(s) for s in slots],
            audio=[list(s) for s in audio],
            present=True,
        )

    def stats(self) -> dict[str, int]:
        out = self.worker.stats()
        out["control_refused"] = self.refused
        out["control_events_dropped"] = self.events_dropped
        return out

    def _on_event(self, event: MediaEvent) -> None:
        if isinstance(event, PeerConnected):
            self._send({"ev": "connected", "call": event.call_id, "peer": event.peer_id})
        elif isinstance(event, PeerClosed):
            self._send(
                {
                    "ev": "closed",
                    "call": event.call_id,
                    "peer": event.peer_id,
                    "reason": event.reason,
                }
            )
        elif isinstance(event, SlotsChanged):
            slots = [[slot, peer] for slot, peer in sorted(event.slots.items())]
            audio = [[slot, peer] for slot, peer in sorted(event.audio.items())]
            self._send(
                {
                    "ev": "slots",
                    "call": event.call_id,
                    "peer": event.peer_id,
                    "slots": slots,
                    "audio": audio,
                }
            )
        elif isinstance(event, DominantSpeakerChanged):
            self._send({"ev": "speaker", "call": event.call_id, "peer": event.peer_id})
        elif isinstance(event, LayersWanted):
            self._send(
                {
                    "ev": "layers",
                    "call": event.call_id,
                    "peer": event.peer_id,
                    "active": list(event.active),
                }
            )

    def _reply(self, rid: int | None, *, ok: bool = True, **fields: Any) -> None:
        if rid is not None:
            self._send({"id": rid, "ok": ok, **fields})

    def _refuse(self, reason: str, rid: int | None) -> None:
        """Count and answer a frame that cannot be used: a request gets its one reply (not ok)."""
        self.refused += 1
        if self.refused & (self.refused - 1) == 0:  # 1st, 2nd, 4th...: a flood cannot fill logs
            log.warning("media worker: refused control frame #%d: %s", self.refused, reason)
        if rid is not None:
            self._reply(rid, ok=False, error=reason, refused=True)
        else:
            self._send({"ev": "refused", "reason": reason})

    def _send(self, message: Frame) -> None:
        try:
            self._outbox_send.send_nowait(encode(message))
        except (trio.WouldBlock, ControlError):
            self.events_dropped += 1


def _id(frame: Frame, key: str) -> str:
    return text(frame, key, MAX_ID_LENGTH)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m media.process")
    parser.add_argument("--bind", default="0.0.0.0", help="UDP address to bind")
    parser.add_argument("--announce", default="127.0.0.1", help="address put in ICE candidates")
    parser.add_argument("--port", type=int, default=0, help="UDP port; 0 picks a free one")
    parser.add_argument("--consent-timeout", type=float, default=CONSENT_TIMEOUT)
    parser.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT)
    parser.add_argument("--last-n", type=int, default=DEFAULT_LAST_N, help="videos per subscriber")
    parser.add_argument(
        "--loudest", type=int, default=DEFAULT_LOUDEST, help="voices per subscriber"
    )
    parser.add_argument(
        "--tcp-port", type=int, default=None, help="ICE-TCP port (0: a free one); off if absent"
    )
    parser.add_argument(
        "--no-udp-candidates", action="store_true", help="answer without the UDP candidate (tests)"
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s %(levelname)-7s media[{os.getpid()}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The pipe keeps file descriptor 1; Python's own stdout goes to stderr from here on.
    control_out = os.dup(1)
    os.dup2(2, 1)
    config = WorkerConfig(
        announced_address=args.announce,
        bind_address=args.bind,
        port=args.port,
        consent_timeout=args.consent_timeout,
        connect_timeout=args.connect_timeout,
        tcp_port=args.tcp_port,
        udp_candidates=not args.no_udp_candidates,
        last_n=args.last_n,
        loudest=args.loudest,
    )
    # Ctrl-C in a terminal reaches the whole process group: the control plane decides when
    # workers stop (it cancels, which terminates them), so they do not die under it mid-shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    process = WorkerProcess(config, control_in=os.dup(0), control_out=control_out)
    trio.run(process.serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
