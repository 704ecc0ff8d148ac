"""The listening socket holds a reconnect storm (issue 17, bench/blip.py).

After a network blip every waiting caller's page connects again within about half a second.
With Hypercorn's backlog of 100 the kernel dropped the rest of the SYNs, and each of those
browsers tried again only after 1, 3 and 7 s. The server's listener is made as Hypercorn makes
it (its config's sockets, ``listen(config.backlog)``), and nothing accepts while a storm of
connections arrives: the kernel must complete every one of them.
"""

from __future__ import annotations

import select
import socket
import time

from waitroom.server import LISTEN_BACKLOG, ServerConfig, hypercorn_config

#: Connections at once: well above Hypercorn's 100, inside the file descriptors a test may hold.
STORM = 600
#: Real seconds the kernel gets to complete them (it does at once, on loopback).
WITHIN = 2.0


def test_the_listener_completes_a_storm_of_connections_nobody_has_accepted_yet() -> None:
    config = hypercorn_config(ServerConfig(host="127.0.0.1", port=0))
    assert config.backlog == LISTEN_BACKLOG
    [listener] = config.create_sockets().insecure_sockets
    clients: list[socket.socket] = []
    try:
        listener.listen(config.backlog)  # what hypercorn.trio.run.worker_serve does with it
        address = listener.getsockname()
        for _ in range(STORM):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(address)
            clients.append(client)
        pending = list(clients)
        deadline = time.monotonic() + WITHIN
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], pending, [], 0.1)
            pending = [c for c in pending if c not in writable]
        done = [c for c in clients if c not in pending]
        assert all(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for c in done)
        assert len(done) == STORM
    finally:
        for client in clients:
            client.close()
        listener.close()
