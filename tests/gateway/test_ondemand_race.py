"""Issue 14: claims are race-free over real websockets against the whole server.

Many on-call providers (and an administrator assigning) send their claim for the same request at
the same instant, each on its own websocket signed in with its own session cookie: exactly one
wins, every other one is told ``already_claimed`` with the winner's name, and storage agrees.
Also: a caller's socket sending the staff messages is refused by the gateway and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgpack
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from actors import addresses, refusals
from actors.ondemand.messages import RequestTicket, StartRequest
from gateway.asgi import SESSION_COOKIE
from storage import ondemand as store_od
from storage import orgs, sessions, staff
from storage.db import open_store
from tests.conftest import RunningServer

#: Providers racing for each request (plus one administrator assigning).
RACERS = 12
ROUNDS = 4
WAIT = 20.0


class Socket:
    """One websocket speaking the envelope; replies matched by id, events skipped."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._next = 0

    async def send(
        self, kind: str, body: dict[str, Any] | None = None, to: str | None = None
    ) -> int:
        self._next += 1
        frame: dict[str, Any] = {"t": kind, "id": self._next, "b": body or {}}
        if to is not None:
            frame["to"] = to
        await self.ws.send_message(msgpack.packb(frame))
        return self._next

    async def outcome(self, request_id: int) -> dict[str, Any]:
        with trio.fail_after(WAIT):
            while True:
                frame = msgpack.unpackb(await self.ws.get_message(), raw=False)
                if frame["t"] in ("reply", "error") and frame["id"] == request_id:
                    return dict(frame)

    async def call(
        self, kind: str, body: dict[str, Any] | None = None, to: str | None = None
    ) -> dict[str, Any]:
        return await self.outcome(await self.send(kind, body, to))


@dataclass
class Staffer:
    user_id: int
    name: str
    socket: Socket


async def race(
    go: trio.Event,
    outcomes: dict[str, dict[str, Any]],
    who: Staffer,
    kind: str,
    body: dict[str, Any],
    queue: str,
) -> None:
    """Wait for the start, then send: every racer's frame leaves at the same instant."""
    await go.wait()
    outcomes[who.name] = await who.socket.call(kind, body, queue)


def ws_url(server: RunningServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/ws"


@asynccontextmanager
async def staff_socket(server: RunningServer, cookie: str | None) -> AsyncIterator[Socket]:
    headers = []
    if cookie is not None:
        headers = [
            (b"Cookie", f"{SESSION_COOKIE}={cookie}".encode()),
            (b"Origin", server.base_url.encode()),
        ]
    async with open_websocket_url(ws_url(server), extra_headers=headers) as ws:
        yield Socket(ws)


async def test_simultaneous_claims_over_websockets_exactly_one_wins(
    waitroom_server: RunningServer,
) -> None:
    server = waitroom_server
    async with open_store(server.db_path) as store:
        org = (await orgs.list_organisations(store))[0]
        unit = (await orgs.list_units(store, org.id))[0]
        made: list[tuple[int, str, str]] = []
        for n in range(RACERS + 1):
            name = f"Racer {n:02d}" if n else "Race Admin"
            user = await staff.create_user(store, f"racer{n}", name, "not-a-hash")
            if n:
                await staff.grant_role(store, user.id, "provider", "unit", unit.id)
            else:
                await staff.grant_role(store, user.id, "org_admin", "org", org.id)
            session = await sessions.create_session(store, user.id)
            made.append((user.id, name, session.session_id))
    queue = addresses.ondemand(org.id)

    async with AsyncExitStack() as stack:
        people: list[Staffer] = []
        for user_id, name, cookie in made:
            socket = await stack.enter_async_context(staff_socket(server, cookie))
            hello = await socket.call("hello", {"versions": [1]})
            assert hello["t"] == "reply" and hello["b"]["kind"] == "staff", hello
            people.append(Staffer(user_id, name, socket))
        admin, providers = people[0], people[1:]
        for p in providers:
            on = await p.socket.call("ondemand.oncall", {"on": True}, queue)
            assert on["b"] == {"on": True, "sees_list": True}, on

        for _ in range(ROUNDS):
            ticket: RequestTicket = await server.registry.ref(queue).ask(
                StartRequest({"name": "Ada", "phone": "+44 20 7946 0000"})
            )
            outcomes: dict[str, dict[str, Any]] = {}
            go = trio.Event()

            target = providers[0]
            async with trio.open_nursery() as nursery:
                for p in providers:
                    claim = {"request_id": ticket.request_id}
                    nursery.start_soon(race, go, outcomes, p, "ondemand.claim", claim, queue)
                assign = {"request_id": ticket.request_id, "user_id": str(target.user_id)}
                nursery.start_soon(race, go, outcomes, admin, "ondemand.assign", assign, queue)
                await trio.sleep(0.2)  # every racer is parked on the event
                go.set()

            winners = [name for name, o in outcomes.items() if o["t"] == "reply"]
            assert len(outcomes) == RACERS + 1
            if winners == [admin.name]:
                # The assign won: the request is the target's, whose claim may have won after it.
                holder = target.name
            else:
                claimers = [w for w in winners if w != admin.name]
                assert len(claimers) == 1, outcomes
                holder = claimers[0]
            for o in outcomes.values():
                if o["t"] == "error":
                    assert o["b"]["code"] == refusals.ALREADY_CLAIMED, o
                    assert holder in o["b"]["detail"], o
            async with open_store(server.db_path) as store:
                stored = await store_od.get_request(store, ticket.request_id)
            if stored.state == "claimed":
                assert stored.claimed_name == holder
            else:
                assert stored.state == "assigned" and stored.assigned_name == holder


async def test_a_caller_socket_sending_staff_messages_is_refused(
    waitroom_server: RunningServer,
) -> None:
    server = waitroom_server
    async with open_store(server.db_path) as store:
        org = (await orgs.list_organisations(store))[0]
    queue = addresses.ondemand(org.id)
    ticket: RequestTicket = await server.registry.ref(queue).ask(StartRequest({"name": "Ada"}))
    async with staff_socket(server, None) as patient:
        hello = await patient.call("hello", {"versions": [1], "token": ticket.token})
        assert hello["b"]["kind"] == "caller"
        for kind, body in (
            ("ondemand.watch", {}),
            ("ondemand.oncall", {"on": True}),
            ("ondemand.claim", {"request_id": ticket.request_id}),
            ("ondemand.assign", {"request_id": ticket.request_id, "user_id": "1"}),
            ("ondemand.decline", {"request_id": ticket.request_id}),
            ("notices.subscribe", {}),
        ):
            for to in (queue, None):
                refused = await patient.call(kind, body, to)
                assert refused["t"] == "error" and refused["b"]["code"] == refusals.FORBIDDEN, (
                    refused
                )
        entered = await patient.call("room.enter")
        assert entered["b"]["ondemand"]["state"] == "waiting"
    async with open_store(server.db_path) as store:
        stored = await store_od.get_request(store, ticket.request_id)
    assert stored.claimed_by is None and stored.assigned_to is None
