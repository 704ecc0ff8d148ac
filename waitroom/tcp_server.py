"""Hypercorn's connection server, with an idle timer that spawns no task per request and a
response sent in one write (issue 17).

Hypercorn closes a kept-alive connection that stays idle for ``keep_alive_timeout``. It does so
with a task per idle spell: every request cancels the connection's idle task (Trio's
``CancelScope.cancel`` formats a description of the calling task each time) and every response
starts a new one through ``nursery.start``. That is two task switches, a spawn and a cancel per
request, about a tenth of what the form's GET costs the server.

Here a kept connection has one watcher task, waiting under a cancel scope whose deadline each
request and each answer moves ``keep_alive_timeout`` on; moving a deadline is an assignment.
When it fires on an idle connection the watcher does what Hypercorn's idle task did: close the
connection. When it fires during a request the watcher ends (a websocket keeps no timer task),
and the next idle spell starts another. On a graceful shutdown it closes the connection once
it is idle, as Hypercorn's does. When the client closes the connection the watcher ends at once
(Hypercorn's slept out its timeout first, holding the connection's objects that long).

Hypercorn writes a response as three sends: the head, the body, and its end (no bytes at all for
a body of known length), each under a lock and a shielded cancel scope. The head is held and
goes with the first of the body; an empty send is not made; a free lock is taken without a
task switch.

Hypercorn has no setting for its connection class: `install` puts this one in its place in
``hypercorn.trio.run``, for the one version pinned (checked there and in the tests).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import hypercorn.trio.run
import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import TCPServer

#: The Hypercorn this was written against (its ``TCPServer`` is subclassed, not just called).
HYPERCORN_VERSION = "0.18.0"


class LeanTCPServer(TCPServer):  # type: ignore[misc]
    """A `TCPServer` whose ``idle_task`` is an `IdleDeadline`, and which sends a response's head
    with the first of its body."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.idle = IdleDeadline(self)
        self.idle_task = self.idle  # type: ignore[assignment]  # what TCPServer.run restarts
        self._head = b""

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            # The protocol holds this server's protocol_send and the timer holds the server: two
            # cycles that kept a closed connection's objects (about 70, with Hypercorn's and
            # wsproto's) until a full collection (issue 17). Its tasks are done by now.
            vars(self).pop("protocol", None)  # not set when the connection failed before it
            del self.idle, self.idle_task

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            data = event.data
            if self._head:
                data, self._head = self._head + data, b""
            elif is_final_head(data):
                self._head = data  # its body follows at once, in the same step of the view
                return
            if data:  # the end of a body of known length is no bytes: nothing to send
                await self._send(data)
            return
        if isinstance(event, Closed):
            self.idle.closed()
            if self._head:
                head, self._head = self._head, b""
                await self._send(head)
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        await super()._read_data()
        # The client is gone: nothing is left to time out. (Hypercorn's timer slept out its
        # keep_alive_timeout, holding the connection's objects for that long, then closed it.)
        self.idle.closed()

    async def _send(self, data: bytes) -> None:
        """What Hypercorn does with bytes to send, without a task switch to take a free lock
        (``Lock.acquire`` always makes one; the send that follows makes its own)."""
        lock = self.send_lock
        if lock.locked():  # another task is sending on this connection: wait in line
            await super().protocol_send(RawData(data))
            return
        lock.acquire_nowait()
        try:
            with trio.CancelScope(shield=True):
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self.protocol.handle(Closed())
        finally:
            lock.release()


def is_final_head(data: bytes) -> bool:
    """The head of a final response, which h11 hands over on its own, its body in another send.
    Not an interim one (``100 Continue``, ``101 Switching Protocols``): nothing follows it at
    once, the client does."""
    return data.startswith(b"HTTP/1.") and data[9:10] != b"1"


#: The scope a connection's timer points at before its first watcher: moving its deadline or
#: cancelling it does nothing (it is never entered), and one serves every connection.
_NO_WATCHER = trio.CancelScope()


class IdleDeadline:
    """Stands in for Hypercorn's ``TrioSingleTask`` as a connection's idle timer.

    ``restart`` (the connection went idle) and ``stop`` (a request came) move the deadline of
    the watcher's cancel scope, ``keep_alive_timeout`` on from now; ``restart`` starts a watcher
    if none is running. A watcher whose deadline comes during a request ends by itself (a long
    request, or a websocket, whose life is the gateway's: it would hold a sleeping task, about
    20 objects the garbage collector walks, for every waiting caller). ``closed`` ends the
    watcher without closing anything again."""

    __slots__ = ("_became_idle", "_ended", "_idle", "_scope", "_server", "_watching")

    def __init__(self, server: LeanTCPServer) -> None:
        self._server = server
        self._scope = _NO_WATCHER  # until the first restart starts a watcher with its own
        self._watching = False
        self._idle = False
        self._ended = False
        self._became_idle: trio.Event | None = None

    def _deadline(self) -> float:
        return trio.current_time() + float(self._server.config.keep_alive_timeout)

    async def restart(self, task_group: Any, action: object) -> None:
        self._idle = True
        if self._ended:
            return
        if self._became_idle is not None:
            self._became_idle.set()
        if self._watching:
            self._scope.deadline = self._deadline()
        else:
            self._watching = True
            self._scope = trio.CancelScope(deadline=self._deadline())
            task_group._nursery.start_soon(self._watch)

    async def stop(self) -> None:
        self._idle = False
        self._scope.deadline = self._deadline()

    def closed(self) -> None:
        """The connection closed: the watcher ends without closing it again."""
        if not self._ended:
            self._ended = True
            self._scope.cancel()

    async def _watch(self) -> None:
        with self._scope:
            await self._server.context.terminated.wait()
            while not self._idle:  # shutting down mid-request: close once it is answered
                self._became_idle = trio.Event()
                await self._became_idle.wait()
        self._became_idle = None
        if self._ended:
            return
        if not self._idle:  # busy for a whole timeout: the next idle spell watches again
            self._watching = False
            return
        self._ended = True
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()


def install() -> None:
    """Make Hypercorn's Trio worker serve connections with `LeanTCPServer`."""
    installed = version("hypercorn")
    if installed != HYPERCORN_VERSION:
        raise RuntimeError(
            f"LeanTCPServer was written for Hypercorn {HYPERCORN_VERSION}, not {installed}"
        )
    setattr(hypercorn.trio.run, "TCPServer", LeanTCPServer)  # noqa: B010 (not exported)
