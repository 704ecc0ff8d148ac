"""The simulated clinic: callers arriving through the real form, providers on their dashboards.

Callers fill in the arrival form (``POST /w/<slug>``), open the gateway with the token the waiting
page carries, enter their room and wait until a provider ends the call (or the run ends). Providers
sign in through ``/sign-in``, watch every waiting area their home page lists, join the
longest-waiting caller (``caller.join`` on the dashboard connection, ``room.enter`` on a second
connection, as the browser's call page does), stay ``call_seconds`` and end the call.

Every loop is bounded: at most ``callers`` arrivals, at most ``duration`` seconds of arrivals, and
the whole run is cancelled ``drain`` seconds after that.
"""

from __future__ import annotations

import re
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import trio

from actors import addresses
from waitroom.loadtest.client import GatewayRefused, connect
from waitroom.loadtest.http import Browser, HttpError, parse_prometheus
from waitroom.loadtest.mediaload import CallWatch, MediaLoad

#: How often the progress line is printed and the server's /metrics sampled.
SAMPLE_INTERVAL = 1.0
#: After the arrival phase: how long calls in progress get to finish before the run is cut.
DRAIN_SECONDS = 5.0
#: A provider with nobody to join looks again after this long (events usually wake it first).
IDLE_POLL = 0.5
#: With media, the last /metrics sample waits this long: the server's media worker processes
#: report their counters once a second.
MEDIA_STATS_SETTLE = 1.5
ROOM_TOKEN = re.compile(r'data-token="([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)"')
_AREA = re.compile(r'data-area-id="(\d+)".*?/w/([A-Za-z0-9_\-]+)"', re.S)


@dataclass(frozen=True)
class Scenario:
    base_url: str
    username: str
    password: str
    areas: int = 2
    callers: int = 50
    rate: float = 5.0
    duration: float = 20.0
    providers: int = 1
    call_seconds: float = 2.0
    drain: float = DRAIN_SECONDS
    #: False: providers only watch their dashboards (measures callers waiting at once).
    join: bool = True
    #: For several processes: this worker's index and the count (arrivals are split round-robin).
    worker: int = 0
    workers: int = 1
    #: Both sides of every call publish and receive RTP through the SFU (``--media``).
    media: bool = False

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"


@dataclass
class Recorder:
    """Everything measured, as raw samples (merged across processes, summarised in report)."""

    started: float = field(default_factory=time.time)
    #: (seconds since start, latency seconds)
    arrival_http: list[tuple[float, float]] = field(default_factory=list)
    dashboard: list[tuple[float, float]] = field(default_factory=list)
    join: list[tuple[float, float]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    arrivals: int = 0
    #: Callers between opening the form and their arrival being acknowledged (or failing): the
    #: run does not stop while one of them may still show up on a dashboard.
    arriving: int = 0
    #: Calls a provider has claimed and not finished (joining, in the call or ending it): the
    #: run does not stop in the gap between claiming a caller and the call being counted.
    calls_in_progress: int = 0
    calls_started: int = 0
    calls_ended: int = 0
    callers_connected: int = 0
    waiting: int = 0
    provider_connections: int = 0
    #: Server /metrics samples over time: (t, {name: value}).
    server: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    arrival_window: float = 0.0
    #: Room id -> monotonic time of the arrival POST, until a dashboard shows it.
    pending_dashboard: dict[str, float] = field(default_factory=dict)
    #: Room id -> monotonic time a dashboard first showed it, until the arrival POST returns.
    seen_first: dict[str, float] = field(default_factory=dict)
    #: Rooms of callers this process brought: its providers join only these, so several
    #: load-generator processes never join (and end) the same call.
    own_rooms: set[str] = field(default_factory=set)
    #: With ``--media``: this process's media peers, pump and counts.
    media: MediaLoad | None = None
    #: This process's own CPU over the run ({"cpu_seconds", "wall_seconds"}), set at its end:
    #: the report's busiest load-generator process.
    client_cpu: dict[str, float] | None = None

    def dashboard_seen(self, room: str) -> None:
        """A dashboard showed this room's caller (often before the arrival POST has returned)."""
        posted = self.pending_dashboard.pop(room, None)
        if posted is not None:
            self.dashboard.append((self.now(), time.monotonic() - posted))
        elif room not in self.seen_first:
            self.seen_first[room] = time.monotonic()

    def arrival_posted(self, room: str, posted: float) -> None:
        self.own_rooms.add(room)
        seen = self.seen_first.pop(room, None)
        if seen is not None:
            self.dashboard.append((self.now(), max(0.0, seen - posted)))
        else:
            self.pending_dashboard[room] = posted

    def now(self) -> float:
        return time.time() - self.started

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "arrival_http": self.arrival_http,
            "dashboard": self.dashboard,
            "join": self.join,
            "errors": dict(self.errors),
            "arrivals": self.arrivals,
            "calls_started": self.calls_started,
            "calls_ended": self.calls_ended,
            "callers_connected": self.callers_connected,
            "provider_connections": self.provider_connections,
            "server": self.server,
            "arrival_window": self.arrival_window,
            "media": self.media.tally.to_json() if self.media else None,
            "client_cpu": self.client_cpu,
        }


@dataclass
class Waiting:
    caller_id: str
    area: str
    arrived_at: float


class Clinic:
    """State shared by the simulated providers of one process: who waits, who is claimed."""

    def __init__(self) -> None:
        self.queue: dict[str, Waiting] = {}  # room id -> waiting caller
        self.claimed: set[str] = set()
        self.changed = trio.Event()

    def on_event(self, recorder: Recorder, event: str, body: dict[str, Any]) -> None:
        if event == "queue.caller":
            caller = body.get("caller") or {}
            room = str(caller.get("room"))
            recorder.dashboard_seen(room)
            if caller.get("status") == "waiting":
                self.queue[room] = Waiting(
                    str(caller.get("id")),
                    addresses.area(body.get("area")),
                    float(caller["arrived_at"]),
                )
            else:
                self.queue.pop(room, None)
            self.changed.set()
            self.changed = trio.Event()
        elif event == "queue.removed":
            for room, entry in list(self.queue.items()):
                if entry.caller_id == body.get("id"):
                    del self.queue[room]

    def claim(self, mine: set[str]) -> tuple[str, Waiting] | None:
        free = [
            (w.arrived_at, room)
            for room, w in self.queue.items()
            if room in mine and room not in self.claimed
        ]
        if not free:
            return None
        _, room = min(free)
        self.claimed.add(room)
        return room, self.queue.pop(room)


class LoadtestError(Exception):
    """Why a run cannot start (no server, refused sign-in): printed as one line, not a traceback."""


async def discover_areas(
    scenario: Scenario, recorder: Recorder
) -> tuple[Browser, list[tuple[str, str]]]:
    """Sign in as the provider and read the home page: [(area id, slug)] and a signed-in browser."""
    browser = Browser(scenario.base_url)
    try:
        page = await browser.get("/sign-in")
    except HttpError as error:
        raise LoadtestError(f"cannot reach {scenario.base_url} ({error})") from None
    csrf = page.csrf_token()
    if csrf is None:
        raise LoadtestError(f"no sign-in form at {scenario.base_url}/sign-in ({page.status})")
    form = {"username": scenario.username, "password": scenario.password, "csrf_token": csrf}
    signed = await browser.post_form("/sign-in", form)
    if signed.status != 303:
        raise LoadtestError(
            f"sign-in as {scenario.username!r} refused ({signed.status}): check --username/--password"
        )
    home = await browser.get("/")
    areas = [(m.group(1), m.group(2)) for m in _AREA.finditer(home.text)]
    if not areas:
        raise LoadtestError(f"{scenario.username!r} sees no waiting areas on the home page")
    return browser, areas[: scenario.areas]


async def caller(
    scenario: Scenario, recorder: Recorder, slug: str, index: int, stop: trio.Event
) -> None:
    # ``arriving`` was counted by whoever started this task, before it first ran.
    try:
        token = await _arrive(scenario, recorder, slug, index)
    finally:
        recorder.arriving -= 1
    if token is None:
        return
    room = token.partition(".")[0]
    await _wait_in_room(scenario, recorder, room, token, stop)


async def _arrive(scenario: Scenario, recorder: Recorder, slug: str, index: int) -> str | None:
    """Fill in and post the arrival form; the room token, or None (an error is counted).

    The form's page and the post share one connection, as in a browser."""
    try:
        async with Browser(scenario.base_url, keep_alive=True) as browser:
            form_page = await browser.get(f"/w/{slug}")
            csrf = form_page.csrf_token()
            if form_page.status != 200 or csrf is None:
                recorder.error(f"arrive_form_{form_page.status}")
                return None
            form = {
                "name": f"Load {scenario.worker}-{index}",
                "reason": "load test",
                "consent": "yes",
                "csrf_token": csrf,
            }
            posted = time.monotonic()
            page = await browser.post_form(f"/w/{slug}", form)
    except HttpError as error:
        recorder.error(error.kind)
        return None
    match = ROOM_TOKEN.search(page.text)
    if page.status != 200 or match is None:
        recorder.error(f"arrive_{page.status}")
        return None
    token = match.group(1)
    recorder.arrival_posted(token.partition(".")[0], posted)
    recorder.arrival_http.append((recorder.now(), time.monotonic() - posted))
    recorder.arrivals += 1
    return token


async def _wait_in_room(
    scenario: Scenario, recorder: Recorder, room: str, token: str, stop: trio.Event
) -> None:
    """Connect with the room token and wait (in a call, once joined) until the room ends."""
    ended = trio.Event()
    in_call = CallWatch()

    def on_event(event: str, body: dict[str, Any]) -> None:
        if event == "room.state" and body.get("state") == "ended":
            ended.set()
        in_call.on_event(event, body)

    try:
        async with connect(scenario.ws_url, on_event, token=token) as client:
            entered = await client.request("room.enter", {}, addresses.room(room))
            # A provider may have joined before this caller connected: the reply says so.
            in_call.on_event("room.state", entered)
            recorder.callers_connected += 1
            recorder.waiting += 1
            try:
                with trio.CancelScope() as scope:

                    async def cancel_on_stop() -> None:
                        await stop.wait()
                        scope.cancel()

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(cancel_on_stop)
                        if recorder.media is not None:
                            nursery.start_soon(
                                recorder.media.caller_side, room, client.request, in_call.started
                            )
                        await ended.wait()
                        nursery.cancel_scope.cancel()
            finally:
                recorder.waiting -= 1
    except Exception as exc:  # every failure is a figure in the report, never a crash of the run
        recorder.error(classify("caller", exc))


def classify(who: str, exc: BaseException) -> str:
    """An error's type for the report: the server's error code, else the exception's name."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return classify(who, exc.exceptions[0])
    if isinstance(exc, GatewayRefused):
        return f"{who}_{exc.code}"
    if isinstance(exc, HttpError):
        return f"{who}_{exc.kind}"
    return f"{who}_{type(exc).__name__}"


async def provider(
    scenario: Scenario,
    recorder: Recorder,
    clinic: Clinic,
    browser: Browser,
    areas: list[tuple[str, str]],
    stop: trio.Event,
) -> None:
    try:
        await _provider(scenario, recorder, clinic, browser, areas, stop)
    except Exception as exc:
        recorder.error(classify("dashboard", exc))


async def _provider(
    scenario: Scenario,
    recorder: Recorder,
    clinic: Clinic,
    browser: Browser,
    areas: list[tuple[str, str]],
    stop: trio.Event,
) -> None:
    cookie = browser.cookie_header()

    def on_event(event: str, body: dict[str, Any]) -> None:
        clinic.on_event(recorder, event, body)

    async with connect(scenario.ws_url, on_event, cookie=cookie) as dashboard:
        recorder.provider_connections += 1
        for area_id, _ in areas:
            snapshot = await dashboard.request("area.watch", {}, addresses.area(area_id))
            for entry in snapshot.get("callers", []):
                on_event("queue.caller", {"area": area_id, "caller": entry})
        if not scenario.join:
            # Only watch, until the run ends or the server closes the dashboard (counted below).
            async with trio.open_nursery() as watching:

                async def until_stop() -> None:
                    await stop.wait()
                    watching.cancel_scope.cancel()

                watching.start_soon(until_stop)
                await dashboard.closed.wait()
                watching.cancel_scope.cancel()
        while not stop.is_set():
            if dashboard.closed.is_set():
                # The server closed the dashboard (1013: too slow to read its events). One error
                # for it, not one per caller this provider would have tried to join without it.
                raise GatewayRefused("closed", "the dashboard connection was closed")
            claimed = clinic.claim(recorder.own_rooms)
            if claimed is None:
                with trio.move_on_after(IDLE_POLL):
                    await clinic.changed.wait()
                continue
            room, waiting = claimed
            await _one_call(scenario, recorder, dashboard, cookie, room, waiting)


async def _one_call(
    scenario: Scenario,
    recorder: Recorder,
    dashboard: Any,
    cookie: str,
    room: str,
    waiting: Waiting,
) -> None:
    started = time.monotonic()
    recorder.calls_in_progress += 1
    try:
        reply = await dashboard.request(
            "caller.join", {"caller_id": waiting.caller_id}, waiting.area
        )
        async with connect(scenario.ws_url, lambda _e, _b: None, cookie=cookie) as call:
            recorder.provider_connections += 1
            await call.request("room.enter", {}, addresses.room(reply.get("room", room)))
            recorder.join.append((recorder.now(), time.monotonic() - started))
            recorder.calls_started += 1
            if recorder.media is None:
                await trio.sleep(scenario.call_seconds)
            else:
                address = addresses.room(reply.get("room", room))

                async def signal(kind: str, body: dict[str, Any]) -> dict[str, Any]:
                    return await call.request(kind, body, address)

                await recorder.media.provider_side(room, signal, scenario.call_seconds)
            await call.request("call.end", {}, addresses.room(reply.get("room", room)))
            recorder.calls_ended += 1
    except Exception as exc:
        recorder.error(classify("provider", exc))
    finally:
        recorder.calls_in_progress -= 1


async def sample_metrics(scenario: Scenario, recorder: Recorder) -> dict[str, float]:
    try:
        response = await Browser(scenario.base_url).get("/metrics")
    except HttpError as error:
        recorder.error(f"metrics_{error.kind}")
        return {}
    if response.status != 200:
        recorder.error(f"metrics_{response.status}")
        return {}
    samples = parse_prometheus(response.text)
    recorder.server.append((recorder.now(), samples))
    return samples


def progress_line(recorder: Recorder) -> str:
    recent = sorted(lat for t, lat in recorder.dashboard if t > recorder.now() - 5)
    p95 = recent[int(len(recent) * 0.95) - 1] * 1000 if recent else 0.0
    last = recorder.server[-1][1] if recorder.server else {}
    return (
        f"t={recorder.now():5.1f}s arrivals={recorder.arrivals} waiting={recorder.waiting} "
        f"calls={recorder.calls_started}/{recorder.calls_ended} dash_p95(5s)={p95:.0f}ms "
        f"errors={sum(recorder.errors.values())} "
        f"server_ws={last.get('waitroom_ws_connections_open', 0):.0f} "
        f"lag={last.get('waitroom_event_loop_lag_max_seconds', 0) * 1000:.0f}ms"
    ) + (recorder.media.progress() if recorder.media is not None else "")


async def run(scenario: Scenario, progress: TextIO | None = None) -> Recorder:
    """Run the scenario to completion (bounded by duration + drain) and return the samples."""
    recorder = Recorder()
    cpu_started, wall_started = _process_cpu_seconds(), time.monotonic()
    clinic = Clinic()
    stop = trio.Event()
    browser, areas = await discover_areas(scenario, recorder)
    if scenario.media:
        recorder.media = await MediaLoad.create(recorder.now, recorder.error)
    await sample_metrics(scenario, recorder)
    hard_limit = scenario.duration + scenario.drain + 2 * SAMPLE_INTERVAL
    with trio.move_on_after(hard_limit):
        async with trio.open_nursery() as nursery:

            async def sampler() -> None:
                while True:
                    await trio.sleep(SAMPLE_INTERVAL)
                    await sample_metrics(scenario, recorder)
                    if progress is not None:
                        print(progress_line(recorder), file=progress, flush=True)

            nursery.start_soon(sampler)
            if recorder.media is not None:
                nursery.start_soon(recorder.media.run)
            async with trio.open_nursery() as users:
                mine = [
                    i for i in range(scenario.callers) if i % scenario.workers == scenario.worker
                ]
                providers = [
                    i for i in range(scenario.providers) if i % scenario.workers == scenario.worker
                ]
                for _ in providers:
                    users.start_soon(provider, scenario, recorder, clinic, browser, areas, stop)
                begin = trio.current_time()
                with trio.move_on_after(scenario.duration):
                    for n, index in enumerate(mine):
                        await trio.sleep_until(begin + n * scenario.workers / scenario.rate)
                        _, slug = areas[index % len(areas)]
                        # Counted now, not when the task first runs: the drain below may look
                        # before it does.
                        recorder.arriving += 1
                        users.start_soon(caller, scenario, recorder, slug, index, stop)
                recorder.arrival_window = trio.current_time() - begin
                # Let the last arrivals and calls in progress finish, then everyone leaves.
                with trio.move_on_after(scenario.drain):
                    while recorder.arriving or clinic.queue or recorder.calls_in_progress:
                        await trio.sleep(SAMPLE_INTERVAL / 4)
                        if scenario.providers == 0 or not scenario.join:
                            break
                stop.set()
                users.cancel_scope.deadline = trio.current_time() + scenario.drain
            nursery.cancel_scope.cancel()
    if recorder.media is not None:
        # Media worker processes report their counters to the server once a second.
        await trio.sleep(MEDIA_STATS_SETTLE)
    await sample_metrics(scenario, recorder)
    recorder.client_cpu = {
        "cpu_seconds": round(_process_cpu_seconds() - cpu_started, 3),
        "wall_seconds": round(time.monotonic() - wall_started, 3),
    }
    return recorder


def _process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
