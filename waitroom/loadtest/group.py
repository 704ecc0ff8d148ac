"""``waitroom loadtest URL --scenario group``: one group consultation, its crowd and breakout rooms.

What issue 12 asks to be measured for 60 people, done as their browsers would do it:

* a moderator signs in (``/sign-in``), creates a session on the real page (``/group/new``), reads
  its link from the session's page and its room from the moderator page, and enters the call on
  the websocket with their session cookie;
* ``participants`` people open the link over ``arrival_seconds`` (the name form and its CSRF
  token), say hello with the token the page carries and wait (``room.enter``). **Lobby update**:
  from the form's POST to the moderator's ``group.lobby`` listing them;
* once all wait, the moderator admits everyone at once (``group.admit_all``); each participant
  offers media (``media.offer``) from a simulated peer that publishes simulcast (three VP8 layers),
  Opus with RFC 6464 levels, receiver reports and REMB, and answers key-frame requests.
  **Admission to media**: from the admit frame to the first RTP packet the SFU forwards to them;
* ``group.breakout.create`` (rooms of ``room_size``), ``assign`` at random, ``open``: each
  participant follows ``group.breakout.move`` with a second websocket (the move's token),
  ``room.enter`` and a new media peer there, as ``group-breakouts.js`` does. **Breakout open**:
  from the open frame to that participant's first forwarded RTP in their room; the slowest is
  when everyone was in their room with media;
* after ``room_seconds`` the moderator closes the rooms; the countdown is the product's (60 s: no
  setting shortens it). **Breakout close**: from the countdown's end (the ``ends_at`` the close
  answers) to each participant's first forwarded RTP back in the main call, after
  ``group.breakout.back`` and ``room.enter`` and ``media.offer`` on the main socket;
* then ``group.end``: everyone's sockets close and the run ends.

With ``processes`` > 1 the participants are split round-robin across child processes
(``python -m waitroom.loadtest.group --child``) so the load generator's own CPU is not what is
measured; every time is ``time.monotonic()`` (one clock for the whole host), and each child
reports its milestones as JSON lines. Every wait is bounded (``phase_timeout``), every loop
bounded in count, and the run cannot outlast `GroupScenario.hard_limit`.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

import trio

from media.dtls import Certificate
from waitroom.loadtest.client import GatewayClient, GatewayRefused, connect
from waitroom.loadtest.clip import (
    CLIP_SECONDS,
    SimulcastClip,
    load_simulcast_clip,
    make_simulcast_clip,
)
from waitroom.loadtest.http import Browser, HttpError
from waitroom.loadtest.largecall import (
    DEFAULT_AUDIO_SLOTS,
    DEFAULT_TILE_HEIGHT,
    DEFAULT_TILES,
    DEFAULT_VIDEO_SLOTS,
    HIGH_REMB,
    TurnSchedule,
    percentile,
)
from waitroom.loadtest.mediaload import DTLS_TIMEOUT, ICE_TIMEOUT, media_error
from waitroom.loadtest.mediapeer import VIDEO_CLOCK, MediaPeer, MediaTally
from waitroom.loadtest.pacer import MediaPump
from waitroom.loadtest.scenario import ROOM_TOKEN

#: A session holds at most this many participants (actors.group: capacity 1..60).
MAX_PARTICIPANTS = 60
MAX_ARRIVAL_SECONDS = 600.0
MAX_HOLD_SECONDS = 300.0
MAX_PROCESSES = 8
#: The issue's aim: every participant in their room of 6 with media within 2 s (p99), at 60.
OPEN_P99_AIM_MS = 2000.0
#: How long the moderator waits for each phase to complete before going on without the rest.
PHASE_TIMEOUT = 45.0
#: The product's closing countdown (actors.group.breakout_plan.CLOSING_COUNTDOWN) is read from the
#: close's answer; this bounds it, so a wrong answer cannot hold the run.
MAX_COUNTDOWN = 120.0
#: The rooms' timer when they open: longer than any run, the moderator closes them.
ROOM_TIMER = 1800
#: Offer to first forwarded packet, for one media connection.
MEDIA_TIMEOUT = 30.0
#: Retries of a main-call offer refused ``forbidden`` just after ``group.breakout.back``.
BACK_OFFER_RETRIES = 3
BACK_OFFER_PAUSE = 0.5
#: Participants who speak in turns (the rest send room noise levels).
SPEAKERS = 4
TURN_SECONDS = 4.0
TILE_WIDTH = 640
PROGRESS_INTERVAL = 1.0
_MS = 1000.0
_LINK = re.compile(r'id="share-link"[^>]*value="[^"]*/g/([A-Za-z0-9_\-]+)"')
_ROOM = re.compile(r'id="group-page"[^>]*data-room="([^"]+)"')
_MODERATOR = re.compile(r'name="moderators" value="(\d+)" checked')
_UNIT = re.compile(r'name="unit_id" value="(\d+)"|<option value="(\d+)"')
_SESSION = re.compile(r"/group/([A-Za-z0-9_\-]+)\?done=created")
#: The milestones a participant reports, in the order they happen.
ARRIVED, ENTERED, MAIN, MOVED, ROOM, ROOM_STREAMS, BACK, BACK_MEDIA = (
    "arrived",
    "entered",
    "main",
    "moved",
    "room",
    "room_streams",
    "back",
    "back_media",
)

Emit = Callable[[dict[str, Any]], None]


class GroupLoadtestError(Exception):
    """Why the run cannot start (no server, refused sign-in, no session): one line, no traceback."""


@dataclass(frozen=True)
class GroupScenario:
    base_url: str
    username: str
    password: str
    participants: int = MAX_PARTICIPANTS
    arrival_seconds: float = 60.0
    room_size: int = 6
    #: Seconds everyone stays in the main call with media before the rooms open ...
    main_seconds: float = 3.0
    #: ... and in their rooms with media before the moderator closes them.
    room_seconds: float = 5.0
    phase_timeout: float = PHASE_TIMEOUT
    processes: int = 1
    #: The simulated camera's clip length: the cached 2 s one, or a shorter one encoded at once.
    clip_seconds: float = CLIP_SECONDS

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"

    @property
    def rooms(self) -> int:
        return max(1, math.ceil(self.participants / self.room_size))

    @property
    def hard_limit(self) -> float:
        """No run lasts longer: arrivals, every phase's bound, the holds and the countdown."""
        return (
            self.arrival_seconds
            + 5 * self.phase_timeout
            + self.main_seconds
            + self.room_seconds
            + MAX_COUNTDOWN
        )

    def validate(self) -> None:
        if not 1 <= self.participants <= MAX_PARTICIPANTS:
            raise GroupLoadtestError(f"--participants must be 1..{MAX_PARTICIPANTS}")
        if not 2 <= self.room_size <= MAX_PARTICIPANTS:
            raise GroupLoadtestError(f"--room-size must be 2..{MAX_PARTICIPANTS}")
        if not 0 <= self.arrival_seconds <= MAX_ARRIVAL_SECONDS:
            raise GroupLoadtestError(f"--arrival-seconds must be 0..{MAX_ARRIVAL_SECONDS:.0f}")
        for name, value in (("main", self.main_seconds), ("room", self.room_seconds)):
            if not 0 <= value <= MAX_HOLD_SECONDS:
                raise GroupLoadtestError(f"--{name}-seconds must be 0..{MAX_HOLD_SECONDS:.0f}")
        if not 1 <= self.processes <= MAX_PROCESSES:
            raise GroupLoadtestError(f"--processes must be 1..{MAX_PROCESSES} for --scenario group")


def participant_name(index: int) -> str:
    return f"Guest {index:02d}"


# -- a participant's media: one simulated browser connection per call ---------------------------


class GroupPeer(MediaPeer):
    """A large-call peer that notes its first forwarded RTP packet (the figures' end point)."""

    def __init__(self, certificate: Certificate) -> None:
        super().__init__("peer", certificate, simulcast=True, extensions=True)
        self.light_receive = True
        self.remb_bitrate = HIGH_REMB
        self.check_timeout, self.handshake_timeout = ICE_TIMEOUT, DTLS_TIMEOUT
        self.first_media: float | None = None
        self.got_media = trio.Event()

    def _on_light(self, data: bytes, tally: MediaTally) -> None:
        if self.first_media is None:
            self.first_media = time.monotonic()
            self.got_media.set()
        super()._on_light(data, tally)


@dataclass
class Crowd:
    """This process's share of the participants: their sockets, media peers and milestones."""

    spec: GroupScenario
    link: str
    mine: list[int]
    start: float  # monotonic: participant i arrives at start + i * arrival_seconds / N
    emit: Emit
    clip: SimulcastClip
    errors: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    finished: int = 0

    def __post_init__(self) -> None:
        self.tally = MediaTally()
        self.pump = MediaPump(self.clip, self.tally)
        speakers = tuple(participant_name(i) for i in self.mine[:SPEAKERS])
        self.schedule = TurnSchedule(speakers, time.monotonic(), TURN_SECONDS)
        self.done = trio.Event()

    def milestone(self, kind: str, index: int, **extra: Any) -> None:
        self.emit({"kind": kind, "i": index, "t": time.monotonic(), **extra})

    async def run(self) -> None:
        """Every participant of this share until the session ends (or the hard limit)."""
        with trio.move_on_after(self.spec.hard_limit):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.pump.run)
                async with trio.open_nursery() as people:
                    step = self.spec.arrival_seconds / self.spec.participants
                    for index in self.mine:
                        await trio.sleep_until(_trio_at(self.start + index * step))
                        people.start_soon(self._participant, index)
                nursery.cancel_scope.cancel()
        self.done.set()

    async def _participant(self, index: int) -> None:
        try:
            await self._one(index)
        except Exception as exc:  # every failure is a figure in the report, never a crash
            self.errors[_classify("participant", exc)] += 1
        finally:
            self.finished += 1

    async def _one(self, index: int) -> None:
        name = participant_name(index)
        http = Browser(self.spec.base_url)
        path = f"/g/{self.link}"
        form = await http.get(path)
        csrf = form.csrf_token()
        if form.status != 200 or csrf is None:
            self.errors[f"arrive_form_{form.status}"] += 1
            return
        posted = time.monotonic()
        page = await http.post_form(path, {"csrf_token": csrf, "name": name})
        match = ROOM_TOKEN.search(page.text)
        if page.status != 200 or match is None:
            self.errors[f"arrive_{page.status}"] += 1
            return
        self.emit({"kind": ARRIVED, "i": index, "t": posted, "name": name})
        certificate = Certificate.generate()
        send, receive = trio.open_memory_channel[tuple[str, dict[str, Any]]](math.inf)
        state: dict[str, Any] = {"participants": [], "you": None}

        def on_main(kind: str, body: dict[str, Any]) -> None:
            if kind in ("room.state", "room.participants") and isinstance(
                body.get("participants"), list
            ):
                state["participants"] = body["participants"]
            if kind in ("room.state", "group.breakout.move", "group.breakout.back"):
                send.send_nowait((kind, body))

        async with connect(self.spec.ws_url, on_main, token=match.group(1)) as main:
            entered = time.monotonic()
            view = await main.request("room.enter", {})
            state["you"] = view.get("you")
            if isinstance(view.get("participants"), list) and view["participants"]:
                state["participants"] = view["participants"]
            self.emit(
                {"kind": ENTERED, "i": index, "t": entered, "name": name, "member": view["member"]}
            )
            if view.get("state") == "in_call":
                send.send_nowait(("room.state", view))
            await self._follow(index, name, certificate, main, receive, state)

    async def _follow(
        self,
        index: int,
        name: str,
        certificate: Certificate,
        main: GatewayClient,
        events: trio.MemoryReceiveChannel[tuple[str, dict[str, Any]]],
        state: dict[str, Any],
    ) -> None:
        """The participant page's rules: media once admitted, a room's socket on each move, the
        main call again on back, until the session ends or the main socket closes."""
        async with trio.open_nursery() as nursery:
            main_media: trio.CancelScope | None = None
            in_room: trio.CancelScope | None = None
            admitted = False

            async def until_closed() -> None:
                await main.closed.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_closed)

            async def start(fn: Callable[..., Any], *args: Any) -> trio.CancelScope:
                scope = trio.CancelScope()

                async def runner() -> None:
                    with scope:
                        await fn(*args)

                nursery.start_soon(runner)
                return scope

            async for kind, body in events:
                if kind == "room.state":
                    if body.get("state") == "ended":
                        break
                    if body.get("state") == "in_call" and not admitted:
                        admitted = True
                        main_media = await start(
                            self._media, index, name, certificate, main, state, MAIN, False
                        )
                elif kind == "group.breakout.move":
                    self.milestone(MOVED, index, room=body.get("room"))
                    if main_media is not None:
                        main_media.cancel()
                        main_media = None
                    if in_room is not None:
                        in_room.cancel()
                    in_room = await start(self._room, index, name, certificate, body)
                elif kind == "group.breakout.back":
                    self.milestone(BACK, index)
                    if in_room is not None:
                        in_room.cancel()
                        in_room = None
                    if main_media is None:
                        main_media = await start(self._back, index, name, certificate, main, state)
            nursery.cancel_scope.cancel()

    async def _back(
        self,
        index: int,
        name: str,
        certificate: Certificate,
        main: GatewayClient,
        state: dict[str, Any],
    ) -> None:
        """Back in the main call: ``room.enter`` again for the view, then media (the page)."""
        try:
            view = await main.request("room.enter", {})
        except GatewayRefused as refused:
            self.errors[f"back_enter_{refused.code}"] += 1
            return
        if isinstance(view.get("participants"), list):
            state["participants"] = view["participants"]
        await self._media(index, name, certificate, main, state, BACK_MEDIA, True)

    async def _room(
        self, index: int, name: str, certificate: Certificate, move: dict[str, Any]
    ) -> None:
        """A breakout room: its own socket with the move's token, ``room.enter``, media there.
        The server closes that socket when the rooms close (4001) or on a move (4006)."""
        state: dict[str, Any] = {"participants": [], "you": None, "most": 0}

        def on_room(kind: str, body: dict[str, Any]) -> None:
            if kind in ("room.state", "room.participants") and isinstance(
                body.get("participants"), list
            ):
                state["participants"] = body["participants"]
                state["most"] = max(state["most"], len(body["participants"]))

        try:
            async with connect(self.spec.ws_url, on_room, token=str(move["token"])) as room:
                view = await room.request("room.enter", {})
                state["you"] = view.get("you")
                if isinstance(view.get("participants"), list):
                    state["participants"] = view["participants"]
                    state["most"] = max(state["most"], len(view["participants"]))
                if view.get("breakout") != move.get("room"):
                    self.errors["room_not_the_moved_one"] += 1
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        self._media, index, name, certificate, room, state, ROOM, False
                    )
                    await room.closed.wait()
                    nursery.cancel_scope.cancel()
        except Exception as exc:  # counted; the participant goes on in the main call
            if not (isinstance(exc, GatewayRefused) and exc.code == "closed"):
                self.errors[_classify("room", exc)] += 1

    async def _media(
        self,
        index: int,
        name: str,
        certificate: Certificate,
        client: GatewayClient,
        state: dict[str, Any],
        milestone: str,
        after_back: bool,
    ) -> None:
        """One media connection on ``client``'s call until cancelled: offer, ICE, DTLS, publish,
        the page's gallery view, and the milestone at the first forwarded packet."""
        peer = GroupPeer(certificate)
        peer.bind()
        try:
            try:
                with trio.fail_after(MEDIA_TIMEOUT):
                    reply = await self._offer(client, peer, after_back)
                    peer.accept(str(reply["sdp"]))
                    await peer.establish()
            except Exception as exc:  # refused, timed out, no answer: counted, never a crash
                if not client.closed.is_set():
                    self.errors[media_error(exc)] += 1
                return
            self.tally.connected += 1
            offset = time.monotonic() - trio.current_time()
            peer.level_schedule = self.schedule.level_of(name, offset)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peer.receive, self.tally)
                self.pump.add(peer)
                try:
                    await self._view(client, state)
                    with trio.move_on_after(MEDIA_TIMEOUT) as waited:
                        await peer.got_media.wait()
                    if waited.cancelled_caught:
                        self.errors[f"no_media_{milestone}"] += 1
                    elif peer.first_media is not None:
                        self.emit({"kind": milestone, "i": index, "t": peer.first_media})
                    await trio.sleep_forever()
                finally:
                    if milestone == ROOM:
                        self._confinement(index, peer, state)
                    self.pump.remove(peer)
                    nursery.cancel_scope.cancel()
        finally:
            peer.close()

    def _confinement(self, index: int, peer: GroupPeer, state: dict[str, Any]) -> None:
        """Media stays inside a room: the video streams that reached this peer there (one per
        receive slot in use) against the most people its room ever had besides itself."""
        video = sum(1 for st in peer.streams.values() if st.clock == VIDEO_CLOCK and st.received)
        self.milestone(ROOM_STREAMS, index, video=video, mates=max(0, int(state["most"]) - 1))

    async def _offer(
        self, client: GatewayClient, peer: GroupPeer, after_back: bool
    ) -> dict[str, Any]:
        sdp = peer.offer(DEFAULT_VIDEO_SLOTS, DEFAULT_AUDIO_SLOTS)
        for attempt in range(BACK_OFFER_RETRIES + 1):
            try:
                return await client.request("media.offer", {"sdp": sdp})
            except GatewayRefused as refused:
                # Just back from a room: the main call may not know yet (noted, not hidden).
                if not after_back or refused.code != "forbidden" or attempt == BACK_OFFER_RETRIES:
                    raise
                self.notes["back_offer_forbidden_retried"] += 1
                await trio.sleep(BACK_OFFER_PAUSE)
        raise AssertionError("unreachable")

    async def _view(self, client: GatewayClient, state: dict[str, Any]) -> None:
        """The first gallery page: the first few others at tile size (``media.view``)."""
        you = state.get("you")
        others = [
            str(p["id"])
            for p in state.get("participants") or []
            if isinstance(p, dict) and p.get("id") and p.get("id") != you
        ][:DEFAULT_TILES]
        shown = {peer: {"w": TILE_WIDTH, "h": DEFAULT_TILE_HEIGHT} for peer in others}
        try:
            await client.request("media.view", {"shown": shown})
        except GatewayRefused as refused:
            # Someone in the list left meanwhile: the page sends the next view; so do we not.
            self.notes[f"view_{refused.code}"] += 1

    def media_summary(self) -> dict[str, Any]:
        tally = self.tally.to_json()
        flows = tally["flows"].values()
        return {
            "connected": tally["connected"],
            "sent": sum(f["sent"] for f in flows),
            "received": sum(f["received"] for f in flows),
            "expected": sum(f["expected"] for f in flows),
            "send_dropped": sum(f["send_dropped"] for f in flows),
            "srtp_errors": tally["srtp_errors"],
            "socket_drops": tally["socket_drops"],
            "rtcp_in": tally["rtcp_in"],
        }


def _trio_at(monotonic: float) -> float:
    return trio.current_time() + (monotonic - time.monotonic())


def _classify(who: str, exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _classify(who, exc.exceptions[0])
    if isinstance(exc, GatewayRefused):
        return f"{who}_{exc.code}"
    if isinstance(exc, HttpError):
        return f"{who}_{exc.kind}"
    return f"{who}_{type(exc).__name__}"


# -- the moderator ------------------------------------------------------------------------------


@dataclass
class Session:
    session_id: str
    link: str
    room: str  # room/<id>
    cookie: str


async def create_session(spec: GroupScenario) -> Session:
    """Sign in and create the session on its page, as a moderator's browser does."""
    browser = Browser(spec.base_url)
    try:
        page = await browser.get("/sign-in")
    except HttpError as error:
        raise GroupLoadtestError(f"cannot reach {spec.base_url} ({error})") from None
    csrf = page.csrf_token()
    if csrf is None:
        raise GroupLoadtestError(f"no sign-in form at {spec.base_url}/sign-in ({page.status})")
    form = {"username": spec.username, "password": spec.password, "csrf_token": csrf}
    if (await browser.post_form("/sign-in", form)).status != 303:
        raise GroupLoadtestError(f"sign-in as {spec.username!r} refused: check --password")
    new = await browser.get("/group/new")
    csrf, unit = new.csrf_token(), _UNIT.search(new.text)
    if new.status != 200 or csrf is None or unit is None:
        raise GroupLoadtestError(f"{spec.username!r} may not create group sessions ({new.status})")
    fields = [
        ("csrf_token", csrf),
        ("unit_id", unit.group(1) or unit.group(2)),
        ("title", f"Load test group of {spec.participants}"),
        ("starts_at", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")),
        ("time_zone", "UTC"),
        ("capacity", str(MAX_PARTICIPANTS)),
        ("registrations", ""),
    ] + [("moderators", m) for m in _MODERATOR.findall(new.text)]
    created = await browser.request(
        "POST",
        "/group/new",
        urlencode(fields).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    found = _SESSION.search(created.header("location") or "")
    if created.status != 303 or found is None:
        raise GroupLoadtestError(f"the session was not created ({created.status})")
    session_id = found.group(1)
    detail = await browser.get(f"/group/{session_id}")
    call = await browser.get(f"/group/{session_id}/call")
    link, room = _LINK.search(detail.text), _ROOM.search(call.text)
    if link is None or room is None:
        raise GroupLoadtestError("no link or room on the session's pages")
    return Session(session_id, link.group(1), f"room/{room.group(1)}", browser.cookie_header())


@dataclass
class Moderator:
    """The moderator's socket, what it saw and when, and the counts of everyone's milestones."""

    spec: GroupScenario
    errors: Counter[str] = field(default_factory=Counter)
    lobby_seen: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    assignment: dict[str, str] = field(default_factory=dict)
    milestones: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.changed = trio.Event()

    def _poke(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def on_milestone(self, milestone: dict[str, Any]) -> None:
        self.milestones.append(milestone)
        self.counts[str(milestone["kind"])] += 1
        self._poke()

    def on_event(self, kind: str, body: dict[str, Any]) -> None:
        now = time.monotonic()
        if kind == "group.lobby":
            for entry in body.get("waiting") or []:
                if isinstance(entry, dict):
                    self.lobby_seen.setdefault(str(entry.get("name")), now)
            self._poke()
        elif kind in ("room.participants", "room.state") and "admit" in self.marks:
            people = body.get("participants")
            entries = people if isinstance(people, list) else []
            listed = sum(
                1
                for p in entries
                if isinstance(p, dict) and str(p.get("member", "")).startswith("p-")
            )
            if listed >= self.spec.participants and "all_listed" not in self.marks:
                self.marks["all_listed"] = now
        elif kind == "group.breakout.rooms" and body.get("phase") == "open":
            present = sum(len(r.get("present") or []) for r in body.get("rooms") or [])
            if present >= self.spec.participants and "all_present" not in self.marks:
                self.marks["all_present"] = now
                self._poke()

    async def until(self, what: str, test: Callable[[], bool], timeout: float) -> bool:
        """Wait (bounded) for ``test``; a timeout is an error of its own and the run goes on."""
        with trio.move_on_after(timeout):
            while not test():
                await self.changed.wait()
            return True
        self.errors[f"timeout_{what}"] += 1
        return False

    async def run_session(self, client: GatewayClient, room: str) -> None:
        spec, n = self.spec, self.spec.participants
        await self.until(
            "lobby", lambda: len(self.lobby_seen) >= n, spec.arrival_seconds + spec.phase_timeout
        )
        self.marks["admit"] = time.monotonic()
        await client.request("group.admit_all", {}, room)
        await self.until("admission_media", lambda: self.counts[MAIN] >= n, spec.phase_timeout)
        await trio.sleep(spec.main_seconds)
        await client.request("group.breakout.create", {"count": spec.rooms}, room)
        await client.request("group.breakout.assign", {"mode": "random"}, room)
        self.marks["open"] = time.monotonic()
        view = await client.request("group.breakout.open", {"duration": ROOM_TIMER}, room)
        for entry in view.get("rooms") or []:
            for person in entry.get("people") or []:
                self.assignment[str(person["id"])] = str(entry["id"])
        await self.until("breakout_open", lambda: self.counts[ROOM] >= n, spec.phase_timeout)
        await trio.sleep(spec.room_seconds)
        self.marks["close"] = time.monotonic()
        closing = await client.request("group.breakout.close", {}, room)
        ends_at = closing.get("ends_at")
        left = float(ends_at) - time.time() if isinstance(ends_at, int | float) else MAX_COUNTDOWN
        self.marks["countdown_end"] = time.monotonic() + max(0.0, min(left, MAX_COUNTDOWN))
        self.marks["countdown_seconds"] = self.marks["countdown_end"] - self.marks["close"]
        await self.until(
            "breakout_close",
            lambda: self.counts[BACK_MEDIA] >= n,
            self.marks["countdown_seconds"] + spec.phase_timeout,
        )
        await client.request("group.end", {}, room)


# -- a run: the moderator here, the crowd here or in child processes ----------------------------


async def run(
    spec: GroupScenario, progress: TextIO | None = None, clip: SimulcastClip | None = None
) -> dict[str, Any]:
    """One session from creation to its end; returns the raw samples (see `summarise`)."""
    spec.validate()
    started, cpu_started = time.monotonic(), _cpu_seconds()
    session = await create_session(spec)
    media_clip = clip if clip is not None else await _clip(spec)
    moderator = Moderator(spec)
    crowds: list[Crowd] = []
    children: list[dict[str, Any]] = []
    with trio.move_on_after(spec.hard_limit + spec.phase_timeout) as limit:
        async with connect(spec.ws_url, moderator.on_event, cookie=session.cookie) as client:
            await client.request("room.enter", {}, session.room)
            async with trio.open_nursery() as nursery:
                start = time.monotonic() + 0.5
                if spec.processes == 1:
                    crowd = Crowd(
                        spec,
                        session.link,
                        list(range(spec.participants)),
                        start,
                        moderator.on_milestone,
                        media_clip,
                    )
                    crowds.append(crowd)
                    nursery.start_soon(crowd.run)
                else:
                    for worker in range(spec.processes):
                        mine = list(range(worker, spec.participants, spec.processes))
                        nursery.start_soon(
                            _child, spec, session.link, mine, start, moderator, children
                        )
                if progress is not None:
                    nursery.start_soon(_progress, moderator, progress)
                try:
                    await moderator.run_session(client, session.room)
                except GatewayRefused as refused:
                    moderator.errors[f"moderator_{refused.code}"] += 1
                    with trio.move_on_after(5):
                        await client.request("group.end", {}, session.room)
                # Everyone's sockets close with the end; give the crowd a bounded moment.
                with trio.move_on_after(spec.phase_timeout):
                    for crowd in crowds:
                        await crowd.done.wait()
                    while len(children) < (spec.processes if spec.processes > 1 else 0):
                        await moderator.changed.wait()
                nursery.cancel_scope.cancel()
    if limit.cancelled_caught:
        moderator.errors["hard_limit"] += 1
    errors = Counter(moderator.errors)
    notes: Counter[str] = Counter()
    media: list[dict[str, Any]] = []
    client_cpu: list[float] = [_cpu_seconds() - cpu_started]
    for crowd in crowds:
        errors.update(crowd.errors)
        notes.update(crowd.notes)
        media.append(crowd.media_summary())
    for child in children:
        errors.update(child.get("errors") or {})
        notes.update(child.get("notes") or {})
        if child.get("media"):
            media.append(child["media"])
        client_cpu.append(float(child.get("cpu_seconds") or 0.0))
    return {
        "scenario": {k: v for k, v in asdict(spec).items() if k != "password"},
        "session": session.session_id,
        "milestones": moderator.milestones,
        "lobby_seen": moderator.lobby_seen,
        "marks": moderator.marks,
        "assignment": moderator.assignment,
        "errors": dict(errors),
        "notes": dict(notes),
        "media": media,
        "client_cpu_seconds": [round(c, 3) for c in client_cpu],
        "wall_seconds": round(time.monotonic() - started, 3),
    }


async def _progress(moderator: Moderator, out: TextIO) -> None:
    begin = time.monotonic()
    while True:
        await trio.sleep(PROGRESS_INTERVAL)
        c = moderator.counts
        print(
            f"t={time.monotonic() - begin:5.1f}s arrived={c[ARRIVED]} lobby="
            f"{len(moderator.lobby_seen)} media={c[MAIN]} moved={c[MOVED]} rooms={c[ROOM]} "
            f"back={c[BACK]} back_media={c[BACK_MEDIA]} errors={sum(moderator.errors.values())}",
            file=out,
            flush=True,
        )


async def _child(
    spec: GroupScenario,
    link: str,
    mine: list[int],
    start: float,
    moderator: Moderator,
    results: list[dict[str, Any]],
) -> None:
    """One child process's share: its milestone lines feed the moderator; its last line is its
    errors, media counts and CPU."""
    # A participant needs no password: it stays out of the child's command line.
    share = {**asdict(spec), "password": ""}
    payload = json.dumps({"spec": share, "link": link, "mine": mine, "start": start})
    command = [sys.executable, "-m", "waitroom.loadtest.group", "--child", payload]
    final: dict[str, Any] = {"errors": {"child_failed": 1}}
    try:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
            )
            assert process.stdout is not None
            buffer = b""
            async for chunk in process.stdout:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    try:
                        message = json.loads(line)
                    except ValueError:
                        moderator.errors["child_output"] += 1  # not ours: counted, not fatal
                        continue
                    if not isinstance(message, dict):
                        continue
                    if message.get("kind") == "child_done":
                        final = message
                    else:
                        moderator.on_milestone(message)
    finally:
        results.append(final)
        moderator._poke()


def child_main(payload: str) -> int:
    """``--child``: run a share of the crowd; milestones and the result as JSON lines on stdout."""
    data = json.loads(payload)
    spec = GroupScenario(**data["spec"])
    cpu_started = _cpu_seconds()

    def emit(milestone: dict[str, Any]) -> None:
        print(json.dumps(milestone), flush=True)

    async def main() -> Crowd:
        clip = await _clip(spec)
        crowd = Crowd(spec, data["link"], list(data["mine"]), float(data["start"]), emit, clip)
        await crowd.run()
        return crowd

    crowd = trio.run(main)
    print(
        json.dumps(
            {
                "kind": "child_done",
                "errors": dict(crowd.errors),
                "notes": dict(crowd.notes),
                "media": crowd.media_summary(),
                "cpu_seconds": _cpu_seconds() - cpu_started,
            }
        ),
        flush=True,
    )
    return 0


async def _clip(spec: GroupScenario) -> SimulcastClip:
    return await trio.to_thread.run_sync(_load_clip, spec.clip_seconds)


def _load_clip(seconds: float = CLIP_SECONDS) -> SimulcastClip:
    """The three-layer clip: the cached one (encoded once per host), or a short one encoded now
    (tests); run in a thread, it takes seconds."""
    return load_simulcast_clip() if seconds == CLIP_SECONDS else make_simulcast_clip(seconds)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- figures ------------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict[str, float | int | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * _MS, 1)

    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 0.5)),
        "p99_ms": ms(percentile(values, 0.99)),
        "max_ms": ms(max(values) if values else None),
    }


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """The figures: lobby updates, admission to media, breakout open and close, who was where."""
    n = int(raw["scenario"]["participants"])
    marks: dict[str, float] = raw["marks"]
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for m in raw["milestones"]:
        by.setdefault(str(m["kind"]), {})[int(m["i"])] = m
    arrived = by.get(ARRIVED, {})
    entered = by.get(ENTERED, {})
    lobby: list[float] = []
    lobby_from_enter: list[float] = []
    for index, m in arrived.items():
        seen = raw["lobby_seen"].get(m["name"])
        if seen is not None:
            lobby.append(max(0.0, seen - m["t"]))
            if index in entered:
                lobby_from_enter.append(max(0.0, seen - entered[index]["t"]))

    def since(kind: str, mark: str) -> list[float]:
        at = marks.get(mark)
        if at is None:
            return []
        return [max(0.0, m["t"] - at) for m in by.get(kind, {}).values()]

    right_room = 0
    for index, m in by.get(MOVED, {}).items():
        member = entered.get(index, {}).get("member")
        if member is not None and raw["assignment"].get(member) == m.get("room"):
            right_room += 1
    streams = list(by.get(ROOM_STREAMS, {}).values())
    open_stats = _stats(since(ROOM, "open"))
    media = raw["media"]
    figures = {
        "participants": n,
        "rooms": math.ceil(n / int(raw["scenario"]["room_size"])),
        "room_size": raw["scenario"]["room_size"],
        "arrived": len(arrived),
        "lobby_update": _stats(lobby),
        "lobby_update_from_enter": _stats(lobby_from_enter),
        "admission_to_media": _stats(since(MAIN, "admit")),
        "breakout_moved": _stats(since(MOVED, "open")),
        "breakout_open": open_stats,
        "breakout_open_aim_ms": OPEN_P99_AIM_MS,
        "breakout_open_aim_met": open_stats["count"] == n
        and open_stats["p99_ms"] is not None
        and float(open_stats["p99_ms"]) < OPEN_P99_AIM_MS,
        "moderator_lists_all_admitted_ms": None
        if "all_listed" not in marks or "admit" not in marks
        else round((marks["all_listed"] - marks["admit"]) * _MS, 1),
        "moderator_sees_all_present_ms": None
        if "all_present" not in marks or "open" not in marks
        else round((marks["all_present"] - marks["open"]) * _MS, 1),
        "countdown_seconds": None
        if "countdown_seconds" not in marks
        else round(marks["countdown_seconds"], 1),
        "breakout_back_event": _stats(since(BACK, "countdown_end")),
        "breakout_close": _stats(since(BACK_MEDIA, "countdown_end")),
        "in_the_assigned_room": right_room,
        # Participants whose room brought them more video streams than it had other people.
        "room_video_checked": len(streams),
        "room_video_from_outside": sum(1 for m in streams if m["video"] > m["mates"]),
        "room_video_streams_p50": percentile([float(m["video"]) for m in streams], 0.5),
        "media_connections": sum(m["connected"] for m in media),
        "media_received": sum(m["received"] for m in media),
        "media_lost": sum(max(0, m["expected"] - m["received"]) for m in media),
        "media_socket_drops": sum(m["socket_drops"] for m in media),
        "srtp_errors": sum(m["srtp_errors"] for m in media),
        "client_cpu_seconds": raw["client_cpu_seconds"],
        "wall_seconds": raw["wall_seconds"],
        "errors": raw["errors"],
        "error_count": sum(raw["errors"].values()),
        "notes": raw["notes"],
    }
    return figures


def table(figures: dict[str, Any]) -> str:
    def row(label: str, s: dict[str, Any]) -> str:
        return (
            f"{label:<34} n={s['count']:<3} p50={s['p50_ms']} ms  p99={s['p99_ms']} ms  "
            f"max={s['max_ms']} ms"
        )

    aim = "met" if figures["breakout_open_aim_met"] else "NOT met"
    lines = [
        f"group session: {figures['participants']} participants, {figures['rooms']} rooms of "
        f"{figures['room_size']}, {figures['arrived']} arrived",
        row("lobby update (POST -> group.lobby)", figures["lobby_update"]),
        row("admission to media", figures["admission_to_media"]),
        f"  the moderator's list showed everyone admitted after "
        f"{figures['moderator_lists_all_admitted_ms']} ms",
        row("breakout open (in room with media)", figures["breakout_open"]),
        f"  aim p99 < {OPEN_P99_AIM_MS:.0f} ms: {aim}; moderator saw all present after "
        f"{figures['moderator_sees_all_present_ms']} ms; in the assigned room: "
        f"{figures['in_the_assigned_room']}; more video than room-mates: "
        f"{figures['room_video_from_outside']} of {figures['room_video_checked']}",
        f"breakout close: countdown {figures['countdown_seconds']} s, then",
        row("  back in main call with media", figures["breakout_close"]),
        f"media: {figures['media_connections']} connections, {figures['media_received']} packets "
        f"received, {figures['media_lost']} lost, {figures['media_socket_drops']} dropped at the "
        f"tester's sockets",
        f"errors: {figures['error_count']} {figures['errors']}  notes: {figures['notes']}",
    ]
    return "\n".join(lines)


# -- the command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``--scenario group`` (beside the load tester's own)."""
    group = parser.add_argument_group("--scenario group (issue 12)")
    group.add_argument("--participants", type=int, default=MAX_PARTICIPANTS, help="1..60 (60)")
    group.add_argument(
        "--arrival-seconds", type=float, default=60.0, help="arrivals spread over (60)"
    )
    group.add_argument("--room-size", type=int, default=6, help="people per breakout room (6)")
    group.add_argument(
        "--main-seconds", type=float, default=3.0, help="in the main call before the rooms (3)"
    )
    group.add_argument(
        "--room-seconds", type=float, default=5.0, help="in the rooms before closing (5)"
    )


#: ``--quick`` with ``--scenario group``: a smoke run (the product's 60 s countdown still runs).
QUICK = {"participants": 8, "arrival_seconds": 2.0, "room_size": 3}


def scenario_from_args(args: argparse.Namespace) -> GroupScenario:
    """The scenario the options ask for; without ``--processes``, one child process per core
    (at most two) carries the crowd, so the moderator's own loop is not slowed by media."""
    processes = args.processes if args.processes > 0 else min(2, os.cpu_count() or 1)
    sizes = {
        "participants": args.participants,
        "arrival_seconds": args.arrival_seconds,
        "room_size": args.room_size,
    }
    if getattr(args, "quick", False):
        sizes.update(QUICK)
    spec = GroupScenario(
        base_url=args.url.rstrip("/"),
        username=args.username,
        password=args.password,
        participants=int(sizes["participants"]),
        arrival_seconds=float(sizes["arrival_seconds"]),
        room_size=int(sizes["room_size"]),
        main_seconds=args.main_seconds,
        room_seconds=args.room_seconds,
        processes=processes,
    )
    spec.validate()
    return spec


def run_cli(args: argparse.Namespace) -> int:
    """``waitroom loadtest URL --scenario group``: the run, the table, a JSON line, the exit code
    (0 only when nothing failed). The loopback guard is the caller's (main.run)."""
    if not args.password:
        print("loadtest: --password is required (the moderator's)", file=sys.stderr)
        return 2
    try:
        spec = scenario_from_args(args)
        raw = trio.run(run, spec, sys.stderr)
    except GroupLoadtestError as error:
        print(f"loadtest: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"loadtest: cannot reach {args.url}: {error.strerror or error}", file=sys.stderr)
        return 2
    figures = summarise(raw)
    out: Path = args.out / time.strftime("group-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "raw.json").write_text(json.dumps(raw))
    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    print(table(figures))
    print(f"report: {out / 'figures.json'}")
    print(json.dumps(figures, separators=(",", ":")))
    return 0 if figures["error_count"] == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2]))
    print("usage: waitroom loadtest URL --scenario group", file=sys.stderr)
    sys.exit(2)
