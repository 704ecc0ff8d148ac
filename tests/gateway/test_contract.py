"""A client written from ``docs/protocol.md`` alone, against the whole server.

Everything this client knows comes from the document: where the participant token is in the
arrival page, where staff find area ids, the frames' shapes, the replies (``{}`` included), the
events and their fields, the error codes and the close codes. It walks the documented flows
(connecting, a consultation from arrival to ``call.end``, hold) and checks each server message
against the documented shape, including the points where document and server used to drift: ping
before hello, ``frame_too_large``, the media replies and events, the staff hello, participant ids,
and ``call.end`` closing the sender's own socket.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from tests.conftest import RunningServer
from tests.httpclient import HttpClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
REFUSALS = Path(__file__).resolve().parents[2] / "actors" / "refusals.py"

#: Values the document states.
FRAME_LIMIT = 64 * 1024
HEARTBEAT = 20.0
CLOSE_ROOM_ENDED = 4001
#: How long this client waits for any one frame (generous for a loaded machine).
WAIT = 10.0

#: "data-token on the element #room-page is the participant token".
TOKEN_IN_PAGE = re.compile(r'<div id="room-page"[^>]*\bdata-token="([^"]*)"')
#: "each area on / and /dashboard is an element with data-area-id".
AREA_ID_IN_PAGE = re.compile(r'data-area-id="(\d+)"')
CSRF_IN_PAGE = re.compile(r'name="csrf_token" value="([^"]*)"')

HELLO_FIELDS = {"version", "conn", "kind", "name", "room", "heartbeat"}
CALLER_FIELDS = {
    "id",
    "room",
    "name",
    "details",
    "status",
    "arrived_at",
    "queued_at",
    "transferred_from",
    "connected",
    "with",
    "precheck",
    "namesake",
}
PARTICIPANT_FIELDS = {"id", "name", "kind", "audio", "video"}
ROOM_VIEW_FIELDS = {"room", "state", "area", "joining", "estimate", "participants"}


class DocClient:
    """One websocket, speaking the envelope: requests matched by id, events kept in order."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self._next_id = 1
        #: Messages of a frame not read yet (a version 2 frame may hold several events).
        self._unread: list[dict[str, Any]] = []
        #: Messages per frame received.
        self.per_frame: list[int] = []

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send_message(data)

    async def frame(self) -> dict[str, Any]:
        """The next message: a frame of its own, or the next of a version 2 frame's events."""
        if not self._unread:
            with trio.fail_after(WAIT):
                data = await self.ws.get_message()
            assert isinstance(data, bytes), "server frames are binary"
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(data)
            self._unread = list(unpacker)
            self.per_frame.append(len(self._unread))
            if len(self._unread) > 1:  # several in one frame: events only, never a reply
                assert all(isinstance(m, dict) and "id" not in m for m in self._unread)
        frame = self._unread.pop(0)
        assert isinstance(frame, dict) and isinstance(frame.get("t"), str)
        self.seen.add(frame["t"])
        if frame["t"] in ("reply", "error"):
            assert set(frame) == {"t", "id", "b"}, frame
            if frame["t"] == "error":
                assert set(frame["b"]) == {"code", "detail"}, frame
                assert isinstance(frame["b"]["detail"], str)
        else:
            assert set(frame) == {"t", "b"}, f"an event has no id: {frame}"
        return frame

    async def request(
        self, msg_type: str, body: dict[str, Any] | None = None, to: str | None = None
    ) -> dict[str, Any]:
        """The reply or error frame for this request; events that come first are kept."""
        rid = self._next_id
        self._next_id += 1
        envelope: dict[str, Any] = {"t": msg_type, "id": rid, "b": body or {}}
        if to is not None:
            envelope["to"] = to
        await self.ws.send_message(msgpack.packb(envelope))
        while True:
            frame = await self.frame()
            if frame["t"] in ("reply", "error") and frame["id"] == rid:
                return frame
            assert frame["t"] not in ("reply", "error"), f"a reply to another request: {frame}"
            self.events.append(frame)

    async def reply(
        self, msg_type: str, body: dict[str, Any] | None = None, to: str | None = None
    ) -> dict[str, Any]:
        frame = await self.request(msg_type, body, to)
        assert frame["t"] == "reply", (msg_type, frame)
        body_: dict[str, Any] = frame["b"]
        return body_

    async def error(
        self, msg_type: str, body: dict[str, Any] | None = None, to: str | None = None
    ) -> str:
        frame = await self.request(msg_type, body, to)
        assert frame["t"] == "error", (msg_type, frame)
        code: str = frame["b"]["code"]
        return code

    async def event(self, msg_type: str, **match: Any) -> dict[str, Any]:
        """The first event of this type (whose body has these values), kept or still to come."""
        while True:
            for i, frame in enumerate(self.events):
                if frame["t"] == msg_type and all(frame["b"].get(k) == v for k, v in match.items()):
                    del self.events[i]
                    body: dict[str, Any] = frame["b"]
                    return body
            frame = await self.frame()
            assert frame["t"] not in ("reply", "error"), f"unasked reply: {frame}"
            self.events.append(frame)

    async def close_code(self) -> int:
        """Read (events) until the server closes; the close code."""
        try:
            with trio.fail_after(WAIT):
                while True:
                    frame = await self.frame()
                    self.events.append(frame)
        except ConnectionClosed as closed:
            code: int = closed.reason.code
            return code


def ws_url(server: RunningServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/ws"


@asynccontextmanager
async def connect(
    server: RunningServer, staff: HttpClient | None = None
) -> AsyncIterator[DocClient]:
    headers: list[tuple[bytes, bytes]] = []
    if staff is not None:  # "the browser sends the session cookie, with an Origin of the host"
        cookie = "; ".join(f"{k}={v}" for k, v in staff.cookies.items())
        headers = [(b"Cookie", cookie.encode()), (b"Origin", server.base_url.encode())]
    async with open_websocket_url(ws_url(server), extra_headers=headers) as ws:
        yield DocClient(ws)


def area_path(server: RunningServer) -> str:
    link = server.demo.area_links[0][1]
    return link[link.index("/w/") :]


async def arrive(server: RunningServer, name: str) -> str:
    """Fill the arrival form like a browser; the token is in the answering page's markup."""
    browser = HttpClient(server.base_url)
    path = area_path(server)
    form = await browser.get(path)
    csrf = CSRF_IN_PAGE.search(form.text)
    assert csrf is not None
    page = await browser.post(
        path, {"csrf_token": csrf.group(1), "name": name, "reason": "contract", "consent": "yes"}
    )
    assert page.status == 200
    found = TOKEN_IN_PAGE.search(page.text)
    assert found is not None and found.group(1), "the arrival page has the participant token"
    later = await browser.get(path + "/wait")
    again = TOKEN_IN_PAGE.search(later.text)
    assert again is not None and again.group(1) == "", "the token is handed out once"
    return found.group(1)


async def staff_browser(server: RunningServer) -> tuple[HttpClient, list[int]]:
    """Sign in as the demo provider; the area ids from the staff pages' markup."""
    browser = HttpClient(server.base_url)
    page = await browser.get("/sign-in")
    csrf = CSRF_IN_PAGE.search(page.text)
    assert csrf is not None
    signed_in = await browser.post(
        "/sign-in",
        {
            "username": server.demo.provider_username,
            "password": server.demo.password,
            "csrf_token": csrf.group(1),
        },
    )
    assert signed_in.status == 303
    home = await browser.get("/")
    dashboard = await browser.get("/dashboard")
    from_home = [int(i) for i in AREA_ID_IN_PAGE.findall(home.text)]
    from_dashboard = [int(i) for i in AREA_ID_IN_PAGE.findall(dashboard.text)]
    assert from_home and sorted(set(from_home)) == sorted(set(from_dashboard))
    return browser, from_home


async def caller_hello(client: DocClient, token: str) -> dict[str, Any]:
    hello = await client.reply("hello", {"versions": [1], "token": token})
    assert set(hello) == HELLO_FIELDS
    assert hello["kind"] == "caller" and hello["version"] == 1
    assert hello["room"] == token.partition(".")[0]
    assert hello["conn"].startswith("conn/") and hello["heartbeat"] == HEARTBEAT
    return hello


async def staff_hello(client: DocClient) -> dict[str, Any]:
    hello = await client.reply("hello", {"versions": [1]})
    assert set(hello) == HELLO_FIELDS
    assert hello["kind"] == "staff" and hello["room"] is None and hello["name"]
    assert hello["conn"].startswith("conn/") and hello["heartbeat"] == HEARTBEAT
    return hello


def check_participants(participants: list[dict[str, Any]]) -> None:
    for person in participants:
        assert set(person) == PARTICIPANT_FIELDS, person
        assert person["kind"] in ("staff", "caller", "guest")
        assert isinstance(person["id"], str) and isinstance(person["audio"], bool)


def check_room_view(view: dict[str, Any], room: str) -> None:
    assert ROOM_VIEW_FIELDS <= set(view) <= ROOM_VIEW_FIELDS | {"you"}, view
    assert view["room"] == room and view["state"] in ("waiting", "in_call", "on_hold")
    check_participants(view["participants"])


def check_caller(caller: dict[str, Any]) -> None:
    assert set(caller) == CALLER_FIELDS, caller
    assert caller["status"] in ("waiting", "in_call", "on_hold")


def test_every_refusal_code_is_documented() -> None:
    """The "Refusal codes" section has a row for every constant in actors/refusals.py."""
    text = DOC.read_text()
    section = text[text.index("## Refusal codes") : text.index("## Versioning")]
    codes = re.findall(r'^[A-Z_]+ = "([a-z_]+)"', REFUSALS.read_text(), re.M)
    assert codes
    missing = [code for code in codes if f"| `{code}` |" not in section]
    assert not missing, f"not in docs/protocol.md's Refusal codes: {missing}"


async def test_connecting_as_the_document_says(waitroom_server: RunningServer) -> None:
    token = await arrive(waitroom_server, "Ada")
    async with connect(waitroom_server) as client:
        # ping is answered before hello; anything else is refused until hello succeeds.
        assert await client.reply("ping") == {"pong": True}
        assert await client.error("echo", {"data": 1}) == "hello_required"
        assert await client.error("hello", {"versions": [99]}) == "unsupported_version"
        assert await client.error("hello", {"token": "nosuchroom.secret"}) == "invalid_token"
        assert await client.error("hello", {"versions": [1]}) == "unauthenticated"
        await caller_hello(client, token)
        assert await client.error("hello", {"token": token}) == "already_authenticated"
        assert await client.reply("echo", {"data": [1, 2, 3]}) == {"data": [1, 2, 3]}
        # A request without an id gets its reply with "id": null.
        await client.send_raw(msgpack.packb({"t": "ping"}))
        assert await client.frame() == {"t": "reply", "id": None, "b": {"pong": True}}
        # Envelope and routing errors.
        await client.send_raw("a text frame")
        assert (await client.frame())["b"]["code"] == "binary_required"
        await client.send_raw(b"\xc1")
        malformed = await client.frame()
        assert malformed["id"] is None and malformed["b"]["code"] == "malformed"
        assert await client.error("no.such.type") == "unknown_type"
        assert await client.error("area.watch", to="area/1") == "forbidden"
        assert await client.error("chat.send", {"text": "hi"}, to="room/other") == "forbidden"
        assert await client.error("chat.send", {"text": "hi"}) == "not_in_room"
        assert await client.error("chat.send") == "missing_field"
        assert await client.error("chat.send", {"text": 5}) == "bad_field"


async def test_version_2_is_chosen_when_offered_and_its_events_arrive_as_documented(
    waitroom_server: RunningServer,
) -> None:
    """A dashboard that speaks version 2 (as the pages do) gets every arrival of a burst; a
    frame holding several of them holds events only, each a whole message."""
    staff, area_ids = await staff_browser(waitroom_server)
    async with connect(waitroom_server, staff) as dashboard:
        hello = await dashboard.reply("hello", {"versions": [1, 2]})
        assert hello["version"] == 2 and set(hello) == HELLO_FIELDS
        await dashboard.reply("area.watch", to=f"area/{area_ids[0]}")
        names = [f"Burst {n}" for n in range(12)]
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(arrive, waitroom_server, name)
        seen = set()
        for _ in names:
            body = await dashboard.event("queue.caller", area=area_ids[0])
            check_caller(body["caller"])
            seen.add(body["caller"]["name"])
        assert seen == set(names)
        assert sum(dashboard.per_frame) >= len(names)


async def test_a_frame_over_64_kib_gets_frame_too_large_and_the_socket_stays(
    waitroom_server: RunningServer,
) -> None:
    token = await arrive(waitroom_server, "Ada")
    async with connect(waitroom_server) as client:
        await caller_hello(client, token)
        await client.send_raw(b"\x00" * (FRAME_LIMIT + 1))
        try:
            refused = await client.frame()
        except ConnectionClosed as closed:
            pytest.fail(f"the transport closed with {closed.reason.code}")
        assert refused["b"]["code"] == "frame_too_large"
        assert await client.reply("ping") == {"pong": True}


def offer(fingerprint: str = ":".join(["AB"] * 32), slots: int = 5) -> str:
    """A slot-model offer as docs/media.md describes it: own audio and video, then slot pairs."""
    mids = list(range(2 + 2 * slots))
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    lines += ["a=group:BUNDLE " + " ".join(map(str, mids)), "a=msid-semantic: WMS *"]
    kinds = [("audio", "sendonly"), ("video", "sendonly")]
    kinds += [(kind, "recvonly") for _ in range(slots) for kind in ("audio", "video")]
    for mid, (kind, direction) in zip(mids, kinds, strict=True):
        pt, codec = (111, "opus/48000/2") if kind == "audio" else (96, "VP8/90000")
        lines += [
            f"m={kind} 9 UDP/TLS/RTP/SAVPF {pt}",
            "c=IN IP4 0.0.0.0",
            f"a=mid:{mid}",
            f"a={direction}",
            "a=ice-ufrag:cont",
            "a=ice-pwd:contractcontractcontract",
            f"a=fingerprint:sha-256 {fingerprint}",
            "a=setup:actpass",
            "a=rtcp-mux",
            f"a=rtpmap:{pt} {codec}",
        ]
        if direction == "sendonly":
            lines.append(f"a=ssrc:{1000 + mid} cname:contract")
    return "\r\n".join(lines) + "\r\n"


async def test_a_consultation_from_arrival_to_call_end(waitroom_server: RunningServer) -> None:
    staff, area_ids = await staff_browser(waitroom_server)
    area = f"area/{area_ids[0]}"
    token = await arrive(waitroom_server, "Ada")
    room_id = token.partition(".")[0]
    async with (
        connect(waitroom_server, staff) as dashboard,
        connect(waitroom_server) as caller,
        connect(waitroom_server) as second_tab,
        connect(waitroom_server, staff) as call,
    ):
        await staff_hello(dashboard)
        watched = await dashboard.reply("area.watch", to=area)
        assert set(watched) == {"area", "callers"}
        assert (
            set(watched["area"]) == {"id", "name", "open"} and watched["area"]["id"] == area_ids[0]
        )
        [ada] = [c for c in watched["callers"] if c["room"] == room_id]
        check_caller(ada)
        assert ada["status"] == "waiting" and ada["name"] == "Ada" and ada["with"] == []
        assert await dashboard.error("area.watch") == "bad_address"
        assert await dashboard.error("caller.join", {"caller_id": "nobody"}, area) == "not_found"

        # The caller enters their room: no `to` needed; `you` is their participant id.
        hello = await caller_hello(caller, token)
        view = await caller.reply("room.enter")
        check_room_view(view, room_id)
        assert view["state"] == "waiting" and view["joining"] is None
        me = view["you"]
        assert [p["id"] for p in view["participants"]] == [me] and me != hello["conn"]
        connected = await dashboard.event("queue.caller", area=area_ids[0])
        check_caller(connected["caller"])

        # A second tab of the same caller is a connection that has not entered: not_in_room.
        await caller_hello(second_tab, token)
        assert await second_tab.error("media.state", {"audio": True, "video": True}) == (
            "not_in_room"
        )

        # The provider joins from the dashboard, then enters the room on a call connection.
        joined = await dashboard.reply("caller.join", {"caller_id": ada["id"]}, area)
        assert joined == {"room": room_id, "url": f"/call/{room_id}"}
        in_call = await caller.event("room.state", state="in_call")
        check_room_view(in_call, room_id)
        assert "you" not in in_call and in_call["joining"]
        status = await dashboard.event("queue.caller", area=area_ids[0])
        assert status["caller"]["status"] == "in_call" and status["caller"]["with"]
        # The same provider joining again is not an error: the same reply.
        assert await dashboard.reply("caller.join", {"caller_id": ada["id"]}, area) == joined

        provider = await staff_hello(call)
        assert await call.error("room.enter") == "bad_address"
        staff_view = await call.reply("room.enter", to=f"room/{room_id}")
        check_room_view(staff_view, room_id)
        doctor = staff_view["you"]
        assert doctor != me and doctor != provider["conn"]
        assert {p["kind"] for p in staff_view["participants"]} == {"caller", "staff"}
        arrived = await caller.event("room.participants")
        check_participants(arrived["participants"])
        assert set(arrived) == {"participants"}

        # Chat: {} to the sender, chat.message to everyone (the sender too), peer = participant id.
        assert await caller.reply("chat.send", {"text": "  Can you hear me?  "}) == {}
        for member in (caller, call):
            said = await member.event("chat.message")
            assert set(said) == {"from", "peer", "text", "at"}
            assert (
                said["peer"] == me and said["text"] == "Can you hear me?" and said["from"] == "Ada"
            )
        assert await caller.error("chat.send", {"text": "   "}) == "bad_field"

        # media.state: {} and room.participants for everyone.
        assert await caller.reply("media.state", {"audio": False, "video": True}) == {}
        for member in (caller, call):
            while True:
                people = (await member.event("room.participants"))["participants"]
                [ada_now] = [p for p in people if p["id"] == me]
                if not ada_now["audio"]:
                    break

        # media.offer: the answer and the slots (slot index as a string -> participant id).
        assert await caller.error("media.offer", {"sdp": "not sdp"}) == "bad_sdp"
        answer = await caller.reply("media.offer", {"sdp": offer()})
        assert set(answer) == {"sdp", "slots", "audio", "seq"} and answer["sdp"].startswith("v=0")
        staff_answer = await call.reply("media.offer", {"sdp": offer()}, f"room/{room_id}")
        for reply_ in (answer, staff_answer):
            assert all(k.isdigit() and v in (me, doctor) for k, v in reply_["slots"].items())
        # Once both publish, each is told which slot carries the other: media.slots.
        slots = await caller.event("media.slots")
        assert set(slots) == {"slots", "audio", "seq"} and set(slots["slots"].values()) <= {doctor}
        assert await caller.reply("media.leave") == {}

        # call.invite: a one-time link; transfer refused while in a call.
        invite = await call.reply("call.invite", {"label": "Interpreter"}, f"room/{room_id}")
        assert set(invite) == {"url"} and invite["url"].startswith(f"/i/{room_id}.")
        assert await caller.error("call.invite") == "forbidden"
        transfer = {"caller_id": ada["id"], "target_area": str(area_ids[-1])}
        assert await dashboard.error("caller.transfer", transfer, area) in ("in_call", "bad_target")

        # call.end: the sender gets room.state ended and {} before its own socket closes (4001).
        assert await call.reply("call.end", to=f"room/{room_id}") == {}
        ended = await call.event("room.state", state="ended")
        assert ended == {"room": room_id, "state": "ended", "reason": "ended"}
        assert await call.close_code() == CLOSE_ROOM_ENDED
        assert await caller.event("room.state", state="ended") == ended
        assert await caller.close_code() == CLOSE_ROOM_ENDED
        removed = await dashboard.event("queue.removed", id=ada["id"])
        assert removed == {"area": area_ids[0], "id": ada["id"]}

    # The token of an ended call is invalid_token from now on.
    async with connect(waitroom_server) as late:
        assert await late.error("hello", {"token": token}) == "invalid_token"


async def test_hold_and_call_end_on_one_connection(waitroom_server: RunningServer) -> None:
    """One staff socket that watches the area and takes the call loses both at call.end."""
    staff, area_ids = await staff_browser(waitroom_server)
    area = f"area/{area_ids[0]}"
    token = await arrive(waitroom_server, "Bea")
    room_id = token.partition(".")[0]
    async with connect(waitroom_server, staff) as desk, connect(waitroom_server) as caller:
        await staff_hello(desk)
        watched = await desk.reply("area.watch", to=area)
        [bea] = [c for c in watched["callers"] if c["room"] == room_id]
        await caller_hello(caller, token)
        await caller.reply("room.enter")
        assert await desk.error("caller.hold", {"caller_id": bea["id"]}, area) == "not_in_call"
        await desk.reply("caller.join", {"caller_id": bea["id"]}, area)
        await desk.reply("room.enter", to=f"room/{room_id}")

        # Hold: the staff socket gets the short on_hold form; the caller the full view.
        assert await desk.reply("call.hold", to=f"room/{room_id}") == {}
        assert await desk.event("room.state", state="on_hold") == {
            "room": room_id,
            "state": "on_hold",
        }
        held = await caller.event("room.state", state="on_hold")
        check_room_view(held, room_id)
        assert [p["kind"] for p in held["participants"]] == ["caller"]
        queued = await desk.event("queue.caller", area=area_ids[0])
        while queued["caller"]["status"] != "on_hold":
            queued = await desk.event("queue.caller", area=area_ids[0])
        assert await desk.error("chat.send", {"text": "hi"}, f"room/{room_id}") == "not_in_room"
        assert await desk.error("room.enter", to=f"room/{room_id}") == "not_joined"

        # Join again and end the call from inside it, on the same socket as the area.watch.
        await desk.reply("caller.join", {"caller_id": bea["id"]}, area)
        await desk.reply("room.enter", to=f"room/{room_id}")
        assert await desk.reply("call.end", to=f"room/{room_id}") == {}
        assert await desk.close_code() == CLOSE_ROOM_ENDED
        assert await caller.close_code() == CLOSE_ROOM_ENDED
    # The subscription went with the socket: a new one must hello and watch again.
    async with connect(waitroom_server, staff) as again:
        await staff_hello(again)
        rewatched = await again.reply("area.watch", to=area)
        assert all(c["room"] != room_id for c in rewatched["callers"])
