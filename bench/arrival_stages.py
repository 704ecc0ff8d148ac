"""Server CPU of one arrival, stage by stage: the form's GET, the POST that admits, the websocket.

Where ``capacity.py`` loads a node until it fails, this asks what each step of one arrival costs
it: arrivals one after another (nothing queues, no dashboard watches) on a fresh server of each
build, the server's CPU read from ``/proc`` around each stage. Stages are cumulative: ``post`` is
the GET and the POST, ``websocket`` adds the connection, ``hello`` and ``room.enter`` (the
websockets stay open until the stage ends). Repeat it: run to run, a stage moves by about 1 ms.

    python bench/arrival_stages.py --arrivals 300 --reference 7424ace

The last line printed is one JSON object: ``{build: {stage: ms of server CPU per arrival}}``.
``--profile post`` also records this tree's server with py-spy during that stage and adds where
its samples went (``<stage>_profile``; ``--profile-out`` keeps the raw stacks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capacity import (  # bench/, beside this
    PASSWORD,
    Build,
    Profile,
    ServeProcess,
    Server,
    export_commit,
)

from actors import addresses
from waitroom.loadtest.client import connect
from waitroom.loadtest.http import Browser
from waitroom.loadtest.scenario import ROOM_TOKEN, Recorder, Scenario, discover_areas

STAGES = ("get", "post", "websocket")
#: Arrivals made before measuring, so imports, caches and the first room are paid for.
WARM_UP = 20
#: Seconds a stage waits after its last arrival before reading the server's CPU. Builds before
#: session 19 let go of a connection whose browser had left only when its keep-alive timer (5 s)
#: ran out: that teardown belongs to the stage, not to the next one or to nothing. The server's
#: idle work in these seconds is counted too (a few hundredths of a millisecond per arrival).
SETTLE = 6.0

#: Seconds of a stage ``--profile`` records (the stage must last longer: more ``--arrivals``).
PROFILE_SECONDS = 10.0
#: Bounds an arrival's two page requests (the websocket client bounds its own connect and asks).
PAGES_TIMEOUT = 20.0


async def _arrive(
    base_url: str,
    slug: str,
    stage: str,
    index: int,
    stack: contextlib.AsyncExitStack,
    keep_alive: bool,
) -> None:
    with trio.fail_after(PAGES_TIMEOUT):
        token = await _pages(base_url, slug, stage, index, keep_alive)
    if token is None:
        return
    ws_url = base_url.replace("http://", "ws://", 1) + "/ws"
    client = await stack.enter_async_context(connect(ws_url, lambda *_: None, token=token))
    await client.request("room.enter", {}, addresses.room(token.partition(".")[0]))


async def _pages(base_url: str, slug: str, stage: str, index: int, keep_alive: bool) -> str | None:
    """The form (and the arrival, after ``get``): the room token, None when the stage ends here.

    With ``keep_alive`` the two requests share a connection, as a browser's do (the default);
    ``--connection-per-request`` gives each its own, as this benchmark did before session 18."""
    async with Browser(base_url, keep_alive=keep_alive) as browser:
        return await _form_and_post(browser, slug, stage, index)


async def _form_and_post(browser: Browser, slug: str, stage: str, index: int) -> str | None:
    form_page = await browser.get(f"/w/{slug}")
    csrf = form_page.csrf_token()
    if form_page.status != 200 or csrf is None:
        raise RuntimeError(f"the form answered {form_page.status}")
    if stage == "get":
        return None
    form = {"name": f"Stage {index}", "reason": "bench", "consent": "yes", "csrf_token": csrf}
    page = await browser.post_form(f"/w/{slug}", form)
    match = ROOM_TOKEN.search(page.text)
    if page.status != 200 or match is None:
        raise RuntimeError(f"the arrival answered {page.status}")
    return None if stage == "post" else match.group(1)


async def _measure(
    server: ServeProcess,
    arrivals: int,
    keep_alive: bool,
    profile: str | None = None,
    work: Path | None = None,
) -> dict[str, Any]:
    scenario = Scenario(server.url, "provider", PASSWORD, areas=len(STAGES))
    _, areas = await discover_areas(scenario, Recorder())
    results: dict[str, Any] = {}
    # An area per stage: each stage starts with an empty queue, whatever the one before left.
    for stage, (_, slug) in zip(STAGES, areas, strict=True):
        async with contextlib.AsyncExitStack() as stack:
            for index in range(WARM_UP):
                await _arrive(server.url, slug, "get", index, stack, keep_alive)
            recording = None
            if stage == profile and work is not None:
                recording = Profile(server, work / f"{stage}-profile.txt", PROFILE_SECONDS)
            before = server.cpu_seconds()
            started = trio.current_time()
            for index in range(arrivals):
                await _arrive(server.url, slug, stage, index, stack, keep_alive)
            await trio.sleep(SETTLE)
            results[stage] = round((server.cpu_seconds() - before) / arrivals * 1000, 2)
            if recording is not None:
                if trio.current_time() - started < PROFILE_SECONDS:
                    print(
                        f"  (the stage ended before the {PROFILE_SECONDS:.0f} s profile: "
                        "give it more arrivals)",
                        file=sys.stderr,
                    )
                results[f"{stage}_profile"] = recording.summary()
        print(f"  {stage}: {results[stage]} ms of server CPU per arrival", file=sys.stderr)
    return results


def measure(
    build: Build, work: Path, arrivals: int, keep_alive: bool, profile: str | None = None
) -> dict[str, Any]:
    print(f"{build.name}:", file=sys.stderr)
    with Server(build, work / "server", len(STAGES)) as server:
        return trio.run(_measure, server, arrivals, keep_alive, profile, work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrivals", type=int, default=300, help="per stage (300)")
    parser.add_argument("--reference", help="a commit measured after this tree, in the same run")
    parser.add_argument(
        "--profile",
        choices=STAGES,
        help=f"py-spy this tree's server for the first {PROFILE_SECONDS:.0f} s of that stage",
    )
    parser.add_argument("--profile-out", type=Path, help="keep the raw py-spy stacks here")
    parser.add_argument(
        "--connection-per-request",
        action="store_true",
        help="a new connection for the form's GET and for the POST (before session 18)",
    )
    args = parser.parse_args()
    keep_alive = not args.connection_per_request
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="waitroom-stages-") as tmp:
        work = Path(tmp)
        tree = Build("this tree", Path(__file__).resolve().parent.parent)
        results[tree.name] = measure(tree, work / "tree", args.arrivals, keep_alive, args.profile)
        raw = work / "tree" / f"{args.profile}-profile.txt"
        if args.profile_out is not None and raw.exists():
            shutil.copyfile(raw, args.profile_out)
        if args.reference:
            reference = export_commit(args.reference, work / "reference")
            results[reference.name] = measure(reference, work / "ref", args.arrivals, keep_alive)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
