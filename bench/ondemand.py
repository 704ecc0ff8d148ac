"""On-demand queue under load (issue 14): list updates and claims with a full queue and watchers.

A fresh database (the demo clinic, a two-step intake, ``--watchers`` providers of the demo unit
and an administrator, each with a session), ``waitroom serve`` in a process of its own, and this
process as every client:

* ``--watchers`` (20) providers go on call and watch the list (``ondemand.watch``), each on its
  own websocket signed in with its own session cookie;
* ``--requests`` (1,000) patients fill the queue through the public Meet Now page (the form and
  its CSRF token, like a browser), open their websocket with the token from the page, enter their
  session and complete the first intake step. **List update**: from the POST (a new request) or
  the ``ondemand.step`` frame (a step) to each watcher's ``ondemand.request`` event for it;
* ``--claims`` (50) times a watcher claims the longest-waiting request, opens a new websocket for
  the session page and enters the session. **Claim to both sides**: from the claim frame to the
  later of the staff member's ``room.enter`` reply and the patient's ``room.state`` saying who
  claimed it.

Targets: list update p99 < 250 ms, claim p99 < 1 s. ``--quick`` (a smoke run: 10 requests, 3
watchers, 3 claims). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "ondemand-bench-password"
LIST_P99_TARGET_MS = 250.0
CLAIM_P99_TARGET_MS = 1000.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
WAIT = 30.0
#: Meet Now requests in flight at once while filling the queue.
FILL_CONCURRENCY = 20
STEPS = [
    {
        "title": "Why you are here",
        "fields": [{"key": "symptoms", "label": "Symptoms", "kind": "text", "required": True}],
    },
    {
        "title": "Consent",
        "fields": [{"key": "agree", "label": "I agree", "kind": "consent", "required": True}],
    },
]
TOKEN_IN_PAGE = re.compile(r'data-token="([^"]*)"')
CSRF_IN_PAGE = re.compile(r'name="csrf_token" value="([^"]*)"')


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the database (a child process, so the server's code is the tree's) -------------------------


async def _prepare(db: str, watchers: int) -> dict[str, Any]:
    from services.passwords import Passwords
    from storage import ondemand, seed, sessions, staff
    from storage.db import open_store

    async with open_store(db) as store:
        demo = await seed.seed_demo(store, await Passwords().hash(PASSWORD))
        await ondemand.save_settings(store, demo.org_id, True, STEPS, 0)
        cookies = []
        for n in range(watchers):
            user = await staff.create_user(store, f"bench{n}", f"Bench {n:02d}", "not-a-hash")
            await staff.grant_role(store, user.id, "provider", "unit", demo.unit_id)
            cookies.append((await sessions.create_session(store, user.id)).session_id)
    return {"org_id": demo.org_id, "cookies": cookies}


def prepare(db: Path, watchers: int) -> dict[str, Any]:
    out = db.with_suffix(".json")
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--prepare",
            str(db),
            "--watchers",
            str(watchers),
            "--out",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


class Server:
    """``waitroom serve`` on the prepared database, in a process of its own."""

    def __init__(self, workdir: Path, db: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = (workdir / "serve.log").open("w")
        command = [
            sys.executable,
            "-c",
            "import sys; from waitroom.cli import main; sys.exit(main(sys.argv[1:]))",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--media-port",
            str(free_port(socket.SOCK_DGRAM)),
            "--log-level",
            "WARNING",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        deadline = time.monotonic() + START_TIMEOUT
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith("Serving on"):
                return
        self.stop()
        raise RuntimeError(f"the server did not start (see {workdir}/serve.log)")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self.log.close()


# -- the clients (trio) ------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(pct: float) -> float:
        index = max(0, min(len(ordered), math.ceil(pct / 100 * len(ordered))) - 1)
        return round(ordered[index] * 1000, 2)

    return {
        "count": len(ordered),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": round(ordered[-1] * 1000, 2),
    }


async def drive(
    url: str, org_id: int, cookies: list[str], requests: int, claims: int
) -> dict[str, Any]:
    import msgpack
    import trio
    from trio_websocket import open_websocket_url

    from tests.httpclient import HttpClient

    ws_url = url.replace("http://", "ws://") + "/ws"
    queue = f"ondemand/{org_id}"
    #: Send times, looked up by watchers: a new request by its patient's (unique) name, a step by
    #: (request id, steps done after it).
    sent_new: dict[str, float] = {}
    sent: dict[tuple[str, int], float] = {}
    list_latencies: list[float] = []
    claimed_at: dict[str, float] = {}
    patient_seen: dict[str, float] = {}
    seen_claim: dict[str, trio.Event] = {}

    class Client:
        def __init__(self, ws: Any) -> None:
            self.ws = ws
            self.next_id = 0
            self.replies: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
            self.on_event: Any = None

        async def reader(self) -> None:
            while True:
                frame = msgpack.unpackb(await self.ws.get_message(), raw=False)
                if frame["t"] in ("reply", "error"):
                    channel = self.replies.pop(frame["id"], None)
                    if channel is not None:
                        channel.send_nowait(frame)
                elif self.on_event is not None:
                    self.on_event(frame)

        async def call(
            self, kind: str, body: dict[str, Any] | None = None, to: str | None = None
        ) -> dict[str, Any]:
            self.next_id += 1
            send, receive = trio.open_memory_channel[dict[str, Any]](1)
            self.replies[self.next_id] = send
            frame: dict[str, Any] = {"t": kind, "id": self.next_id, "b": body or {}}
            if to is not None:
                frame["to"] = to
            await self.ws.send_message(msgpack.packb(frame))
            with trio.fail_after(WAIT):
                return await receive.receive()

    async def connect(nursery: trio.Nursery, cookie: str | None) -> Client:
        headers = []
        if cookie is not None:
            headers = [
                (b"Cookie", f"waitroom_session={cookie}".encode()),
                (b"Origin", url.encode()),
            ]
        ws = await nursery.start(_open, ws_url, headers)
        client = Client(ws)
        nursery.start_soon(client.reader)
        return client

    async def _open(
        ws_url: str, headers: list[tuple[bytes, bytes]], task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with open_websocket_url(ws_url, extra_headers=headers) as ws:
            task_status.started(ws)
            await trio.sleep_forever()

    def watcher_event(frame: dict[str, Any]) -> None:
        if frame["t"] != "ondemand.request":
            return
        request = frame["b"]["request"]
        if request["steps_done"] == 0:
            started = sent_new.get(request["name"])
        else:
            started = sent.get((request["id"], request["steps_done"]))
        if started is not None and request["state"] in ("intake", "waiting"):
            list_latencies.append(time.perf_counter() - started)

    patients: dict[str, Client] = {}

    async with trio.open_nursery() as nursery:
        watchers: list[Client] = []
        for cookie in cookies:
            client = await connect(nursery, cookie)
            hello = await client.call("hello", {"versions": [1]})
            assert hello["t"] == "reply", hello
            assert (await client.call("ondemand.oncall", {"on": True}, queue))["t"] == "reply"
            watched = await client.call("ondemand.watch", {}, queue)
            assert watched["t"] == "reply", watched
            client.on_event = watcher_event
            watchers.append(client)

        limiter = trio.CapacityLimiter(FILL_CONCURRENCY)

        async def one_patient(n: int) -> None:
            async with limiter:
                browser = HttpClient(url)
                form = await browser.get(f"/o/{org_id}/meet")
                csrf = CSRF_IN_PAGE.search(form.text)
                fields = {"name": f"Patient {n}", "phone": "+44 20 7946 0000", "region": "Kent"}
                if csrf is not None:
                    fields["csrf_token"] = csrf.group(1)
                sent_new[fields["name"]] = time.perf_counter()
                page = await browser.post(f"/o/{org_id}/meet", fields)
                token = TOKEN_IN_PAGE.search(page.text)
                assert token is not None and token.group(1), page.status
                patient = await connect(nursery, None)
                hello = await patient.call("hello", {"versions": [1], "token": token.group(1)})
                entered = await patient.call("room.enter")
                request_id = entered["b"]["ondemand"]["request"]
                patients[request_id] = patient
                seen_claim[request_id] = trio.Event()

                def patient_event(frame: dict[str, Any], rid: str = request_id) -> None:
                    if frame["t"] == "room.state":
                        block = frame["b"].get("ondemand") or {}
                        if block.get("state") == "claimed" and rid not in patient_seen:
                            patient_seen[rid] = time.perf_counter()
                            seen_claim[rid].set()

                patient.on_event = patient_event
                sent[(request_id, 1)] = time.perf_counter()
                step = await patient.call(
                    "ondemand.step", {"step": 0, "values": {"symptoms": "cough"}}
                )
                assert step["t"] == "reply", (hello, step)

        async with trio.open_nursery() as fill:
            for n in range(requests):
                fill.start_soon(one_patient, n)
        await trio.sleep(1.0)  # the last events reach the watchers

        claim_latencies: list[float] = []
        order = sorted(patients)  # any order: the list is longest-wait first on the server
        for n in range(min(claims, len(order))):
            claimer = watchers[n % len(watchers)]
            listing = await claimer.call("ondemand.watch", {}, queue)
            open_ids = [r["id"] for r in listing["b"]["requests"] if r["claimed_by"] is None]
            request_id = open_ids[0]
            started = time.perf_counter()
            claimed = await claimer.call("ondemand.claim", {"request_id": request_id}, queue)
            assert claimed["t"] == "reply", claimed
            session = await connect(nursery, cookies[n % len(cookies)])
            await session.call("hello", {"versions": [1]})
            entered = await session.call("room.enter", {}, f"room/{claimed['b']['room']}")
            assert entered["t"] == "reply", entered
            staff_done = time.perf_counter()
            with trio.fail_after(WAIT):
                await seen_claim[request_id].wait()
            claimed_at[request_id] = started
            claim_latencies.append(max(staff_done, patient_seen[request_id]) - started)
        nursery.cancel_scope.cancel()

    listing = percentiles(list_latencies)
    claim = percentiles(claim_latencies)
    return {
        "requests": requests,
        "watchers": len(cookies),
        "list_update_ms": listing,
        "claim_to_both_sides_ms": claim,
        "list_p99_ok": listing["p99"] is not None
        and float(listing["p99"] or 0) < LIST_P99_TARGET_MS,
        "claim_p99_ok": claim["p99"] is not None and float(claim["p99"] or 0) < CLAIM_P99_TARGET_MS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--watchers", type=int, default=20)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few requests")
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import trio

    if args.prepare:
        Path(args.out).write_text(json.dumps(trio.run(_prepare, args.prepare, args.watchers)))
        return 0
    if args.quick:
        args.requests, args.watchers, args.claims = 10, 3, 3

    with tempfile.TemporaryDirectory(prefix="ondemand-bench-") as tmp:
        work = Path(tmp)
        db = work / "waitroom.sqlite3"
        prepared = prepare(db, args.watchers)
        server = Server(work, db)
        try:
            figures = trio.run(
                drive,
                server.url,
                prepared["org_id"],
                prepared["cookies"],
                args.requests,
                args.claims,
            )
        finally:
            server.stop()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
