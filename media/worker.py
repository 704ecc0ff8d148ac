"""The media worker: one UDP socket, every peer of every call placed on it, under Trio.

The Trio parts are thin: a receive task that waits for readability and drains the non-blocking
socket synchronously, a ticker for timers (consent, coalesced keyframe requests, RTCP reports),
and one task per connecting transport that drives its DTLS retransmission timer inside a cancel
scope. Everything a datagram triggers runs synchronously in `_on_datagram`: no await per packet,
and `sendto` on a full buffer drops and counts instead of waiting.

This module keeps the socket loop, the dispatch by first byte (ranges from `media.demux`), ICE
(STUN) and DTLS set-up, timers and the control plane. The per-packet RTP path and all sending are
`media.datapath`'s, RTCP handling is `media.feedback`'s.

Ownership: the worker owns its socket (closed when `run` exits, on cancellation too), every
transport and router; closing a transport cancels its task and frees its slots in the call.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import trio

from media import stun
from media.counters import Counters
from media.datapath import DataPath, not_running
from media.demux import (
    DTLS_FIRST_BYTE_MAX,
    DTLS_FIRST_BYTE_MIN,
    RTCP_PT_MAX,
    RTCP_PT_MIN,
    RTP_FIRST_BYTE_MAX,
    RTP_FIRST_BYTE_MIN,
    STUN_FIRST_BYTE_MAX,
)
from media.dtls import Certificate, DtlsError, DtlsServer, DtlsState, make_context
from media.events import (
    DominantSpeakerChanged,
    LayersWanted,
    MediaError,
    MediaEvent,
    PeerClosed,
    PeerConnected,
    SlotsChanged,
)
from media.feedback import Feedback
from media.forward import Consumer
from media.router import Router
from media.rtp import RTP_HEADER_LENGTH
from media.sdp import LocalParameters, Offer, SdpError, build_answer, parse_offer, plan_offer
from media.selection import DEFAULT_LAST_N, DEFAULT_LOUDEST, MAX_PINNED, SelectionConfig, View
from media.simulcast import Simulcast
from media.speaker import DominantSpeaker
from media.tcp import TcpServer, real_address
from media.transport import ICE_PWD_BYTES, ICE_UFRAG_BYTES, Transport, TransportState

__all__ = [
    "CONNECT_TIMEOUT",
    "CONSENT_TIMEOUT",
    "DominantSpeakerChanged",
    "LayersWanted",
    "MediaError",
    "MediaEvent",
    "PeerClosed",
    "PeerConnected",
    "SlotsChanged",
    "Worker",
    "WorkerConfig",
]

log = logging.getLogger("waitroom.media")

# Datagrams drained per wake-up before yielding to other tasks: bounds the latency the receive
# loop adds to the ticker and control plane (64 x ~10 us) while amortising the epoll round trip.
RECV_BATCH = 64
# Larger than any sane path MTU; longer datagrams are truncated by the kernel and then fail
# authentication, which counts them.
MAX_DATAGRAM = 2048
# Kernel buffers: a few hundred milliseconds of a six-party call at video rates.
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
TICK_SECONDS = 0.05
REPORT_INTERVAL = 1.0
# RFC 7675: consent expires 30 s after the last authenticated check.
CONSENT_TIMEOUT = 30.0
# A peer that answered but never completed ICE + DTLS within this is freed.
CONNECT_TIMEOUT = 20.0
# How often a handshaking transport looks at its DTLS timer when OpenSSL has none armed.
DTLS_IDLE_POLL = 0.05
# How often the loudest few of each call are chosen again from the speakers' activity (the
# detector's own decision interval): each time costs one selection pass over the call.
AUDIO_RESELECT_INTERVAL = 0.3
# How often each simulcast publisher's wanted layers are looked at (`LayersWanted`): a layer
# wanted again resumes within this; one unwanted pauses after `media.simulcast.PAUSE_AFTER`.
LAYER_CHECK_INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    announced_address: str = "127.0.0.1"
    bind_address: str = "0.0.0.0"
    port: int = 0
    consent_timeout: float = CONSENT_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    #: ICE-TCP (passive candidates, `media.tcp`): None = off, 0 = an ephemeral port.
    tcp_port: int | None = None
    #: False leaves the UDP candidate out of answers (tests of the ICE-TCP path only).
    udp_candidates: bool = True
    #: Videos (last-N) and loudest voices forwarded to each subscriber of a call that does not
    #: fit its slots (`media.selection`).
    last_n: int = DEFAULT_LAST_N
    loudest: int = DEFAULT_LOUDEST


class Worker:
    """One UDP port serving many calls. Start with `await nursery.start(worker.run)`."""

    def __init__(
        self,
        config: WorkerConfig | None = None,
        on_event: Callable[[MediaEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or WorkerConfig()
        self.counters = Counters()
        self.certificate = Certificate.generate()
        self._context = make_context(self.certificate)
        self._on_event = on_event
        self._clock = clock
        self._sock: socket.socket | None = None
        self._nursery: trio.Nursery | None = None
        self._datapath = DataPath(self.counters, clock)
        self._feedback = Feedback(self._datapath, self.counters, clock)
        # Bound once: the receive path calls these per datagram.
        self._on_rtp = self._datapath.on_rtp
        self._on_rtcp = self._feedback.on_rtcp
        self._send = self._datapath.send
        self._send_all = self._datapath.send_all
        self._request_keyframe = self._feedback.request_keyframe
        self._routers: dict[str, Router] = {}
        #: One dominant-speaker detector per call with audio levels, fed by the data path.
        self._speakers: dict[str, DominantSpeaker[str]] = {}
        self._next_reselect = 0.0
        self._next_layer_check = 0.0
        self._datapath.on_level = self._on_level
        self._transports: dict[tuple[str, str], Transport] = {}
        self._by_ufrag: dict[str, Transport] = {}
        self._by_addr: dict[tuple[str, int], Transport] = {}
        self._scopes: dict[Transport, trio.CancelScope] = {}
        # Error replies to failed checks: a bounded rate per source address and in all.
        self._stun_replies = stun.ReplyLimiter()
        self.port = 0
        self._tcp: TcpServer | None = None
        self.tcp_port = 0
        #: A restarted transport keeps the cname of its first answer (lip sync per slot).
        self._cnames: weakref.WeakKeyDictionary[Transport, str] = weakref.WeakKeyDictionary()
        self.ice_restarts = 0

    # ---- lifecycle -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket, report ready, serve until cancelled; closes every peer on exit."""
        family = socket.AF_INET6 if ":" in self.config.bind_address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
            sock.bind((self.config.bind_address, self.config.port))
            self.port = sock.getsockname()[1]
            self._sock = sock
            self._datapath.sendto = sock.sendto
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.config.tcp_port is not None:
                    await self._start_tcp(nursery, sock)
                nursery.start_soon(self._ticker)
                task_status.started(self)
                await self._receive_loop(sock)
        finally:
            for transport in list(self._transports.values()):
                self._close(transport, "worker_stopped", notify=False)
            self._nursery = None
            self._datapath.sendto = not_running
            self._sock = None
            sock.close()

    async def _start_tcp(self, nursery: trio.Nursery, sock: socket.socket) -> None:
        """ICE-TCP: its connections are addresses like any other (`media.tcp`)."""
        assert self.config.tcp_port is not None
        self._tcp = TcpServer(
            self._on_datagram,
            sock.sendto,
            is_bound=self._by_addr.__contains__,
            on_closed=self._tcp_closed,
        )
        self.tcp_port = await nursery.start(
            self._tcp.run, self.config.bind_address, self.config.tcp_port
        )
        self._datapath.sendto = self._tcp.sendto

    def _tcp_closed(self, key: tuple[str, int]) -> None:
        transport = self._by_addr.pop(key, None)
        if transport is not None:
            transport.addrs.discard(key)

    async def _receive_loop(self, sock: socket.socket) -> None:
        recvfrom = sock.recvfrom
        on_datagram = self._on_datagram
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(RECV_BATCH):
                try:
                    data, addr = recvfrom(MAX_DATAGRAM)
                except BlockingIOError:
                    break
                except OSError:
                    self.counters.dropped_send_error += 1
                    continue
                try:
                    on_datagram(data, addr)
                except Exception:
                    self.counters.internal_errors += 1
                    log.exception("media worker: datagram from %s", addr)
            # wait_readable above is the checkpoint: it parks this task even when data is ready.

    async def _ticker(self) -> None:
        next_report = self._clock() + REPORT_INTERVAL
        while True:
            await trio.sleep(TICK_SECONDS)
            now = self._clock()
            try:
                self._tick(now, now >= next_report)
            except Exception:
                self.counters.internal_errors += 1
                log.exception("media worker: ticker")
            if now >= next_report:
                next_report = now + REPORT_INTERVAL

    def _tick(self, now: float, report: bool) -> None:
        reselect = now >= self._next_reselect
        if reselect:
            self._next_reselect = now + AUDIO_RESELECT_INTERVAL
        check_layers = now >= self._next_layer_check
        if check_layers:
            self._next_layer_check = now + LAYER_CHECK_INTERVAL
        for call_id, detector in list(self._speakers.items()):
            new = detector.tick(now)  # decides for calls whose speakers went quiet too
            if new is not None:
                self._speaker_changed(call_id, new)
            router = self._routers.get(call_id)
            if reselect and router is not None:
                changed, attached = router.activity(detector.activity(), now)
                self._after_assignment(router, changed, attached, now)
        for transport in list(self._transports.values()):
            state = transport.state
            if state is TransportState.NEW:
                continue  # the connect timeout of its task covers it
            if now - transport.last_consent > self.config.consent_timeout:
                self.counters.consent_expired += 1
                self._close(transport, "consent_expired")
                continue
            if state is not TransportState.CONNECTED:
                continue
            if transport.layer_choice_owed and now >= transport.layer_choice_at:
                self._feedback.choose_layers(transport, now)
            for producer in transport.publish.values():
                if producer.keyframes.due(now):
                    self._feedback.send_pli(producer)
                track = producer.simulcast
                if track is None:
                    if producer.nacked:
                        self._feedback.resend_nacks(producer, now)
                else:
                    for layer in track.layers.values():
                        if layer.nacked:
                            self._feedback.resend_nacks(layer, now)
                    if track.stalled():
                        track.reselect(now)  # off a layer the publisher stopped sending
                    self._feedback.send_owed_layer_plis(track, now)
                    if check_layers:
                        self._check_layers(transport, track, now)
            if report:
                self._feedback.send_reports(transport, now)

    async def _drive_transport(
        self, transport: Transport, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the DTLS retransmission timer until connected; close the peer on timeout."""
        with trio.CancelScope() as scope:
            self._scopes[transport] = scope
            task_status.started()
            try:
                with trio.move_on_after(self.config.connect_timeout):
                    while transport.state is not TransportState.CONNECTED:
                        delay = transport.dtls.timeout()
                        await trio.sleep(DTLS_IDLE_POLL if delay is None else delay)
                        if transport.state is TransportState.CLOSED:
                            return
                        if delay is not None and transport.addr is not None:
                            try:
                                out = transport.dtls.handle_timeout()
                            except DtlsError as exc:
                                self._dtls_failed(transport, exc)
                                return
                            self._send_all(out, transport.addr)
                    return
                self.counters.dtls_timeouts += 1
                self._close(transport, "connect_timeout")
            except Exception:
                self.counters.internal_errors += 1
                log.exception("media worker: transport %s/%s", transport.call_id, transport.peer_id)
                self._close(transport, "internal_error")
            finally:
                self._scopes.pop(transport, None)

    # ---- control plane ------------------------------------------------------------------------

    async def open_peer(self, call_id: str, peer_id: str, offer_sdp: str) -> str:
        """Answer a peer's offer and place it in the call; an existing transport is replaced."""
        if self._nursery is None:
            raise MediaError("media worker is not running")
        try:
            offer = parse_offer(offer_sdp)
        except SdpError as exc:
            raise MediaError(str(exc)) from exc
        old = self._transports.get((call_id, peer_id))
        if old is not None:
            restarted = self._restart_ice(old, offer)
            if restarted is not None:
                return restarted
            self._close(old, "replaced", notify=False)
        now = self._clock()
        transport = Transport(
            call_id, peer_id, offer, DtlsServer(self._context, offer.fingerprint), now
        )
        while transport.ufrag in self._by_ufrag:
            transport = Transport(
                call_id, peer_id, offer, DtlsServer(self._context, offer.fingerprint), now
            )
        plan = plan_offer(offer, transport.new_ssrc)
        local = LocalParameters(
            transport.ufrag,
            transport.pwd,
            self.certificate.fingerprint,
            self.config.announced_address,
            self.port,
            cname=f"waitroom-{transport.ufrag}",
            tcp_port=self.tcp_port if self._tcp is not None else 0,
            udp=self.config.udp_candidates,
        )
        try:
            answer = build_answer(offer, plan, local)
        except SdpError as exc:
            raise MediaError(str(exc)) from exc
        transport.build(plan)
        self._transports[(call_id, peer_id)] = transport
        self._by_ufrag[transport.ufrag] = transport
        router = self._routers.get(call_id)
        if router is None:
            selection = SelectionConfig(self.config.last_n, self.config.loudest)
            router = self._routers[call_id] = Router(call_id, selection)
        changed, attached = router.add(transport, now)
        self.counters.peers_opened += 1
        await self._nursery.start(self._drive_transport, transport)
        self._after_assignment(router, changed, attached, now)
        return answer

    def _restart_ice(self, transport: Transport, offer: Offer) -> str | None:
        """Answer an ICE restart (RFC 8445 section 9, a browser's `restartIce()` after a network
        change): the same DTLS certificate and media lines with new ICE credentials. The
        transport keeps its DTLS session, SRTP keys and slots and gets new local credentials; the
        next nominated check moves it to its new address. None: not a restart (replace it)."""
        old = transport.offer
        if (
            transport.state is not TransportState.CONNECTED
            or transport.plan is None
            or offer.fingerprint != old.fingerprint
            or offer.ice_ufrag == old.ice_ufrag
            or [(m.mid, m.kind) for m in offer.media] != [(m.mid, m.kind) for m in old.media]
        ):
            return None
        cname = self._cnames.setdefault(transport, f"waitroom-{transport.ufrag}")
        ufrag = secrets.token_urlsafe(ICE_UFRAG_BYTES).replace("-", "a")
        while ufrag in self._by_ufrag:
            ufrag = secrets.token_urlsafe(ICE_UFRAG_BYTES).replace("-", "a")
        pwd = secrets.token_urlsafe(ICE_PWD_BYTES)
        local = LocalParameters(
            ufrag,
            pwd,
            self.certificate.fingerprint,
            self.config.announced_address,
            self.port,
            cname=cname,
            tcp_port=self.tcp_port if self._tcp is not None else 0,
            udp=self.config.udp_candidates,
        )
        try:
            answer = build_answer(offer, transport.plan, local)
        except SdpError:
            return None
        del self._by_ufrag[transport.ufrag]
        transport.ufrag, transport.pwd = ufrag, pwd
        self._by_ufrag[ufrag] = transport
        old.ice_ufrag, old.ice_pwd = offer.ice_ufrag, offer.ice_pwd
        transport.nominated = False
        self.ice_restarts += 1
        return answer

    def close_peer(self, call_id: str, peer_id: str) -> None:
        """Remove a peer from its call at once; idempotent. No PeerClosed event is sent."""
        transport = self._transports.get((call_id, peer_id))
        if transport is not None:
            self._close(transport, "closed", notify=False)

    def close_call(self, call_id: str) -> None:
        """Remove every peer of a call; idempotent."""
        router = self._routers.get(call_id)
        if router is not None:
            for transport in list(router.transports.values()):
                self._close(transport, "closed", notify=False)

    def set_receiving(self, call_id: str, peer_id: str, on: bool) -> None:
        """Stop (hold) or resume forwarding to a peer; takes effect with the next packet."""
        transport = self._transports.get((call_id, peer_id))
        if transport is None or transport.receiving == on:
            return
        transport.receiving = on
        self._routers[call_id].refresh()
        if on:
            now = self._clock()
            for consumer in transport.consumers.values():
                if consumer.producer is not None:
                    self._request_keyframe(consumer.producer, now)

    def set_publishing(self, call_id: str, peer_id: str, on: bool) -> None:
        """Stop or resume forwarding a peer's own media to everyone else."""
        transport = self._transports.get((call_id, peer_id))
        if transport is None or transport.publishing == on:
            return
        transport.publishing = on
        self._routers[call_id].refresh()
        if on:
            now = self._clock()
            for producer in transport.publish.values():
                self._request_keyframe(producer, now)

    def set_view(
        self, call_id: str, peer_id: str, shown: dict[str, int], pinned: list[str]
    ) -> None:
        """What `peer_id`'s page shows (peer id -> display height in px) and whom it pinned.

        Video is forwarded to it by this (`media.selection`); ids not in the call are ignored.
        """
        router = self._routers.get(call_id)
        if router is None or peer_id not in router.transports:
            return
        now = self._clock()
        view = View(dict(shown), tuple(pinned[:MAX_PINNED]))
        changed, attached = router.set_view(peer_id, view, now)
        self._after_assignment(router, changed | {peer_id}, attached, now, notify=changed)

    def slots(self, call_id: str, peer_id: str) -> dict[int, str]:
        """Slot index -> peer id whose video (audio, for an audio-only slot) `peer_id` receives."""
        router = self._routers.get(call_id)
        return router.slot_map(peer_id) if router is not None else {}

    def audio_slots(self, call_id: str, peer_id: str) -> dict[int, str]:
        """Slot index -> peer id whose audio `peer_id` receives in that slot."""
        router = self._routers.get(call_id)
        return router.slot_maps(peer_id).audio if router is not None else {}

    def unwanted_video(self, call_id: str) -> set[str]:
        """Peers of the call whose video no subscriber receives (none of it is forwarded)."""
        router = self._routers.get(call_id)
        return router.unwanted_video() if router is not None else set()

    def peers(self, call_id: str) -> list[str]:
        router = self._routers.get(call_id)
        return list(router.transports) if router is not None else []

    def peer_state(self, call_id: str, peer_id: str) -> str | None:
        transport = self._transports.get((call_id, peer_id))
        return transport.state.value if transport is not None else None

    def stats(self) -> dict[str, int]:
        """Counters plus gauges (peers, calls, connected peers) for a /metrics endpoint."""
        out = self.counters.as_dict()
        out["peers"] = len(self._transports)
        out["peers_connected"] = sum(
            1 for t in self._transports.values() if t.state is TransportState.CONNECTED
        )
        out["calls"] = len(self._routers)
        if self._tcp is not None:
            out.update(self._tcp.stats())
        out["ice_restarts"] = self.ice_restarts
        return out

    # ---- closing -------------------------------------------------------------------------------

    def _close(self, transport: Transport, reason: str, *, notify: bool = True) -> None:
        if transport.state is TransportState.CLOSED:
            return
        if transport.addr is not None:
            self._send_all(transport.dtls.close(), transport.addr)
        transport.state = TransportState.CLOSED
        key = (transport.call_id, transport.peer_id)
        if self._transports.get(key) is transport:
            del self._transports[key]
        if self._by_ufrag.get(transport.ufrag) is transport:
            del self._by_ufrag[transport.ufrag]
        for addr in transport.addrs:
            if self._by_addr.get(addr) is transport:
                del self._by_addr[addr]
        scope = self._scopes.pop(transport, None)
        if scope is not None:
            scope.cancel()
        self.counters.peers_closed += 1
        router = self._routers.get(transport.call_id)
        changed: set[str] = set()
        if router is not None and router.transports.get(transport.peer_id) is transport:
            changed = router.remove(transport.peer_id, self._clock())
            detector = self._speakers.get(transport.call_id)
            if detector is not None:
                detector.remove(transport.peer_id)
            if not router.transports:
                del self._routers[transport.call_id]
                self._speakers.pop(transport.call_id, None)
        if notify:
            self._emit(PeerClosed(transport.call_id, transport.peer_id, reason))
        if router is not None:
            self._after_assignment(router, changed, [], self._clock())

    def _after_assignment(
        self,
        router: Router,
        changed: set[str],
        attached: list[Consumer],
        now: float,
        *,
        notify: set[str] | None = None,
    ) -> None:
        """Wanted sizes for the changed peers' video lines, then keyframes for new slot lines
        (so a simulcast line asks for the layer it will get), then a SlotsChanged for each peer
        in `notify` (default: every changed peer). The slot map goes out at once: the page knows
        whom a slot shows before that publisher's key frame arrives."""
        selection = router.selection
        for peer_id in changed:
            transport = router.transports.get(peer_id)
            if transport is None:
                continue
            for lines in transport.slots.values():
                line = lines.get("video")
                if line is None:
                    continue
                producer = line.producer
                owner = producer.transport.peer_id if producer is not None else None
                # Simulcast's layer choice: the height it is shown at, None for an empty line.
                height = None if owner is None else selection.wanted_height(peer_id, owner)
                line.set_wanted(height, now)
        for consumer in attached:
            if consumer.transport.can_receive and consumer.producer is not None:
                self._request_keyframe(consumer.producer, now, consumer)
        for peer_id in sorted(changed if notify is None else notify):
            if peer_id in router.transports:
                maps = router.slot_maps(peer_id)
                self._emit(
                    SlotsChanged(router.call_id, peer_id, router.slot_map(peer_id), maps.audio)
                )

    def _check_layers(self, transport: Transport, track: Simulcast, now: float) -> None:
        """Tell the control plane when the layers this publisher should send change: a layer
        nobody's view wants is paused at the publisher after PAUSE_AFTER, resumed at once."""
        active = track.pause.update(track.wanted_rids(), now)
        if active is not None:
            self._emit(LayersWanted(transport.call_id, transport.peer_id, active))

    def _speaker_changed(self, call_id: str, peer_id: str) -> None:
        """Tell the control plane, and move the speaker to the front of everyone's last-N."""
        self._emit(DominantSpeakerChanged(call_id, peer_id))
        router = self._routers.get(call_id)
        if router is not None and peer_id in router.transports:
            now = self._clock()
            changed, attached = router.speaker(peer_id, now)
            self._after_assignment(router, changed, attached, now)

    def _on_level(self, transport: Transport, level: int) -> None:
        """One audio packet's level: a peer whose media is held cannot become the speaker."""
        if not transport.publishing:
            return
        call_id = transport.call_id
        detector = self._speakers.get(call_id)
        if detector is None:
            detector = self._speakers[call_id] = DominantSpeaker()
        new = detector.add_sample(transport.peer_id, level, self._clock())
        if new is not None:
            self._speaker_changed(call_id, new)

    def _emit(self, event: MediaEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            self.counters.internal_errors += 1
            log.exception("media worker: event handler failed on %r", event)

    # ---- datagrams -----------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        """Demultiplex one datagram by its first byte (RFC 7983) and handle it synchronously."""
        counters = self.counters
        counters.datagrams_in += 1
        counters.bytes_in += len(data)
        if not data:
            counters.dropped_malformed += 1
            return
        b0 = data[0]
        if RTP_FIRST_BYTE_MIN <= b0 <= RTP_FIRST_BYTE_MAX:
            transport = self._by_addr.get(addr)
            if transport is None:
                counters.dropped_unbound += 1
            elif len(data) < RTP_HEADER_LENGTH:
                counters.dropped_malformed += 1
            elif RTCP_PT_MIN <= data[1] <= RTCP_PT_MAX:
                self._on_rtcp(transport, data)
            else:
                self._on_rtp(transport, data)
        elif b0 <= STUN_FIRST_BYTE_MAX:
            self._on_stun(data, addr)
        elif DTLS_FIRST_BYTE_MIN <= b0 <= DTLS_FIRST_BYTE_MAX:
            self._on_dtls(data, addr)
        else:
            counters.dropped_unknown_type += 1

    def _on_stun(self, data: bytes, addr: tuple[str, int]) -> None:
        """Answer a check; every datagram that gets no answer is counted under its reason."""
        counters = self.counters
        counters.stun_in += 1
        outcome = stun.handle_datagram(
            data,
            real_address(addr),
            self._password_of,
            limiter=self._stun_replies,
            now=self._clock(),
        )
        verdict = outcome.verdict
        if verdict is stun.Verdict.ACCEPTED:
            assert outcome.local_ufrag is not None
            transport = self._by_ufrag[outcome.local_ufrag]
            previous = self._by_addr.get(addr)
            if previous is not None and previous is not transport:
                previous.addrs.discard(addr)
            self._by_addr[addr] = transport
            if transport.bind(addr, outcome.nominated, self._clock()):
                router = self._routers.get(transport.call_id)
                if router is not None:
                    router.refresh()
            counters.stun_responses += 1
        elif verdict is stun.Verdict.BAD_REQUEST:
            counters.stun_bad_request += 1
        elif verdict is stun.Verdict.UNAUTHORIZED:
            counters.stun_unauthorized += 1
        elif verdict is stun.Verdict.NO_CREDENTIALS:
            counters.dropped_stun_no_credentials += 1
        elif verdict is stun.Verdict.MALFORMED:
            counters.dropped_malformed += 1
        elif verdict is stun.Verdict.UNSOLICITED:
            counters.dropped_stun_unsolicited += 1
        elif verdict is stun.Verdict.INDICATION:
            counters.dropped_stun_indication += 1
        else:
            counters.dropped_stun_method += 1
        if outcome.limited:
            counters.dropped_stun_rate_limited += 1
        elif outcome.response is not None:
            if verdict is not stun.Verdict.ACCEPTED:
                counters.stun_errors_sent += 1
            self._send(outcome.response, addr)

    def _password_of(self, ufrag: str) -> str | None:
        transport = self._by_ufrag.get(ufrag)
        return transport.pwd if transport is not None else None

    def _on_dtls(self, data: bytes, addr: tuple[str, int]) -> None:
        counters = self.counters
        transport = self._by_addr.get(addr)
        if transport is None:
            counters.dropped_unbound += 1
            return
        counters.dtls_in += 1
        try:
            out = transport.dtls.receive(data)
        except DtlsError as exc:
            self._dtls_failed(transport, exc)
            return
        self._send_all(out, addr)
        if transport.dtls.state is DtlsState.CONNECTED and transport.state is not (
            TransportState.CONNECTED
        ):
            assert transport.dtls.srtp is not None
            transport.connected(transport.dtls.srtp)
            if transport.addr is None:
                transport.addr = addr
            counters.dtls_handshakes += 1
            router = self._routers[transport.call_id]
            router.refresh()
            now = self._clock()
            for consumer in transport.consumers.values():
                if consumer.producer is not None:
                    self._request_keyframe(consumer.producer, now)
            self._emit(PeerConnected(transport.call_id, transport.peer_id))

    def _dtls_failed(self, transport: Transport, exc: DtlsError) -> None:
        if exc.reason == "fingerprint_mismatch":
            self.counters.dtls_fingerprint_mismatch += 1
        elif exc.reason != "closed_by_peer":
            self.counters.dtls_failures += 1
        self._close(transport, f"dtls_{exc.reason}")
