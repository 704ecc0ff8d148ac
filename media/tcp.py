"""ICE-TCP for a media worker: passive TCP candidates (RFC 6544) with RFC 4571 framing.

A browser whose network blocks UDP connects to the worker's TCP port instead. Each connection
looks like one more address to the worker: packets read from it are handed to the worker's
datagram handler under a synthetic address key (`key_for`: ``("tcp:" + host, port)``, which no
UDP address can equal), and `TcpServer.sendto` is the worker's `sendto`: a key of an open
connection is written to that connection, anything else goes to the UDP socket. So STUN, DTLS,
SRTP and RTCP take the very same path as over UDP (docs/media.md, "ICE-TCP").

Nothing here may stall the worker. Sending is synchronous and never waits: a frame is queued on
the connection and a writer task drains the queue; a connection whose queue passes
`max_pending` bytes, or whose one write takes longer than `write_timeout`, is a slow reader and
is closed (that peer's other candidates or an ICE restart take over). Garbage (an empty or
oversized frame) closes that connection only. A connection that has not passed an authenticated
STUN check within `auth_timeout`, or that is silent for `idle_timeout`, is closed; at most
`max_connections` are open at once. Every connection runs in the server's nursery.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable

import trio

from media.tcpframing import MAX_FRAME, Deframer, FramingError, frame

log = logging.getLogger("waitroom.media.tcp")

Addr = tuple[str, int]
SendTo = Callable[[bytes, Addr], int]
#: The worker's datagram handler: one packet and the (synthetic) address it came from.
OnPacket = Callable[[bytes, Addr], None]

#: Prefix of the synthetic address of a TCP connection; a UDP address starts with an IP literal.
KEY_PREFIX = "tcp:"
#: Bytes read per receive: a few frames at a time, so one connection cannot hog the loop.
READ_CHUNK = 16384
#: Queued bytes per connection before it counts as a slow reader (about 1.5 s of a six-party
#: call's video to one subscriber): past this the connection is closed, nothing waits.
MAX_PENDING = 512 * 1024
#: One write to the kernel that takes longer than this means the peer stopped reading.
WRITE_TIMEOUT = 5.0
#: A connection must pass an authenticated connectivity check this soon after it opened.
AUTH_TIMEOUT = 10.0
#: RFC 7675 consent: a silent connection is dead.
IDLE_TIMEOUT = 30.0
#: Open connections per worker; more are refused at accept (a browser opens one per candidate).
MAX_CONNECTIONS = 1024
LISTEN_BACKLOG = 128


def key_for(host: str, port: int) -> Addr:
    """The address a TCP connection from (host, port) has inside the worker."""
    return (KEY_PREFIX + host, port)


def is_tcp(addr: Addr) -> bool:
    return addr[0].startswith(KEY_PREFIX)


def real_address(addr: Addr) -> Addr:
    """The peer's real (host, port) for a synthetic key; a UDP address as it is."""
    if addr[0].startswith(KEY_PREFIX):
        return (addr[0][len(KEY_PREFIX) :], addr[1])
    return addr


class TcpConnection:
    """One accepted connection: its deframer, its bounded send queue and its cancel scope."""

    __slots__ = (
        "deframer",
        "key",
        "last_rx",
        "pending",
        "pending_bytes",
        "reason",
        "scope",
        "server",
        "wake",
    )

    def __init__(self, server: TcpServer, key: Addr, now: float) -> None:
        self.server = server
        self.key = key
        self.deframer = Deframer(server.max_frame)
        self.pending: deque[bytes] = deque()
        self.pending_bytes = 0
        self.wake = trio.Event()
        self.scope = trio.CancelScope()
        self.last_rx = now
        self.reason: str | None = None  # why it closed, once it has

    def send(self, data: bytes) -> int:
        """Queue one packet (framed); never waits. A full queue closes the connection."""
        if self.reason is not None:
            raise OSError("ICE-TCP connection closed")
        framed = frame(data)
        if self.pending_bytes + len(framed) > self.server.max_pending:
            self.close("slow")
            raise OSError("ICE-TCP connection dropped: the peer reads too slowly")
        self.pending.append(framed)
        self.pending_bytes += len(framed)
        self.wake.set()
        return len(data)

    def close(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.server.count(f"tcp_closed_{reason}")
        self.scope.cancel()


class TcpServer:
    """The TCP listener of one worker. Start with `await nursery.start(server.run, host, port)`."""

    def __init__(
        self,
        on_packet: OnPacket,
        udp_sendto: SendTo,
        *,
        is_bound: Callable[[Addr], bool] = lambda key: False,
        on_closed: Callable[[Addr], None] = lambda key: None,
        max_connections: int = MAX_CONNECTIONS,
        max_pending: int = MAX_PENDING,
        max_frame: int = MAX_FRAME,
        write_timeout: float = WRITE_TIMEOUT,
        auth_timeout: float = AUTH_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.on_packet = on_packet
        self.udp_sendto = udp_sendto
        self.is_bound = is_bound
        self.on_closed = on_closed
        self.max_connections = max_connections
        self.max_pending = max_pending
        self.max_frame = max_frame
        self.write_timeout = write_timeout
        self.auth_timeout = auth_timeout
        self.idle_timeout = idle_timeout
        self.port = 0
        self.connections: dict[Addr, TcpConnection] = {}
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "tcp_accepted",
                "tcp_refused_full",
                "tcp_frames_in",
                "tcp_frames_out",
                "tcp_closed_garbage",
                "tcp_closed_slow",
                "tcp_closed_unbound",
                "tcp_closed_idle",
                "tcp_closed_eof",
                "tcp_closed_error",
            ),
            0,
        )

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def stats(self) -> dict[str, int]:
        return {**self.counters, "tcp_connections": len(self.connections)}

    def sendto(self, data: bytes, addr: Addr) -> int:
        """The worker's `sendto`: to the connection `addr` names, else to the UDP socket."""
        conn = self.connections.get(addr)
        if conn is not None:
            self.counters["tcp_frames_out"] += 1
            return conn.send(data)
        if addr[0].startswith(KEY_PREFIX):
            # A closed connection: never let "tcp:..." reach getaddrinfo.
            raise OSError("ICE-TCP connection closed")
        return self.udp_sendto(data, addr)

    # ---- Trio -----------------------------------------------------------------------------------

    async def run(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on (host, port), report the bound port, serve until cancelled."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = trio.socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await sock.bind((host, port))
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        listener = trio.SocketListener(sock)
        self.port = sock.getsockname()[1]
        async with listener, trio.open_nursery() as nursery:
            task_status.started(self.port)
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and the like: wait, never spin
                    log.warning("media ICE-TCP: accept failed: %s", exc)
                    await trio.sleep(0.1)
                    continue
                if len(self.connections) >= self.max_connections:
                    self.count("tcp_refused_full")
                    await trio.aclose_forcefully(stream)
                    continue
                nursery.start_soon(self._serve, stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        key = key_for(str(peer[0]), int(peer[1]))
        if key in self.connections:  # the kernel reused a 4-tuple still being closed here
            self.connections[key].close("error")
            await trio.aclose_forcefully(stream)
            return
        conn = TcpConnection(self, key, trio.current_time())
        self.connections[key] = conn
        self.count("tcp_accepted")
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, conn, stream)
                    nursery.start_soon(self._watchdog, conn)
                    await self._reader(conn, stream)
                    conn.scope.cancel()
        finally:
            if conn.reason is None:
                conn.reason = "error"
            if self.connections.get(key) is conn:
                del self.connections[key]
            conn.pending.clear()
            await trio.aclose_forcefully(stream)
            try:
                self.on_closed(key)
            except Exception:
                log.exception("media ICE-TCP: on_closed for %s", key)

    async def _reader(self, conn: TcpConnection, stream: trio.SocketStream) -> None:
        on_packet = self.on_packet
        counters = self.counters
        while True:
            try:
                data = await stream.receive_some(READ_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                conn.close("error")
                return
            if not data:
                conn.close("eof")
                return
            conn.last_rx = trio.current_time()
            try:
                packets = conn.deframer.feed(data)
            except FramingError:
                conn.close("garbage")
                return
            for packet in packets:
                counters["tcp_frames_in"] += 1
                try:
                    on_packet(packet, conn.key)
                except Exception:
                    log.exception("media ICE-TCP: packet from %s", conn.key)
                if conn.reason is not None:
                    return

    async def _writer(self, conn: TcpConnection, stream: trio.SocketStream) -> None:
        while True:
            await conn.wake.wait()
            conn.wake = trio.Event()
            while conn.pending:
                chunk = b"".join(conn.pending)
                conn.pending.clear()
                conn.pending_bytes = 0
                with trio.move_on_after(self.write_timeout) as timer:
                    try:
                        await stream.send_all(chunk)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        conn.close("error")
                        return
                if timer.cancelled_caught:
                    conn.close("slow")
                    return

    async def _watchdog(self, conn: TcpConnection) -> None:
        """Close the connection once unauthenticated past `auth_timeout` or silent too long."""
        auth_deadline = trio.current_time() + self.auth_timeout
        authenticated = False
        while True:
            now = trio.current_time()
            if not authenticated and now >= auth_deadline:
                if not self.is_bound(conn.key):
                    conn.close("unbound")
                    return
                authenticated = True
            if now - conn.last_rx >= self.idle_timeout:
                conn.close("idle")
                return
            wake = conn.last_rx + self.idle_timeout
            await trio.sleep_until(wake if authenticated else min(wake, auth_deadline))
