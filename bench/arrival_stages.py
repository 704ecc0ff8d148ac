"""Server CPU of one arrival, stage by stage: the form's GET, the POST that admits, the websocket.

Where ``capacity.py`` loads a node until it fails, this asks what each step of one arrival costs
it: arrivals one after another (nothing queues, no dashboard watches) on a fresh server of each
build, the server's CPU read from ``/proc`` around each stage. Stages are cumulative: ``post`` is
the GET and the POST, ``websocket`` adds the connection, ``hello`` and ``room.enter`` (the
websockets stay open until the stage ends). Repeat it: run to run, a stage moves by about 1 ms.

    python bench/arrival_stages.py --arrivals 300 --reference 7424ace

The last line printed is one JSON object: ``{build: {stage: ms of server CPU per arrival}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capacity import PASSWORD, Build, ServeProcess, Server, export_commit  # bench/, beside this

from actors import addresses
from waitroom.loadtest.client import connect
from waitroom.loadtest.http import Browser
from waitroom.loadtest.scenario import ROOM_TOKEN, Recorder, Scenario, discover_areas

STAGES = ("get", "post", "websocket")
#: Arrivals made before measuring, so imports, caches and the first room are paid for.
WARM_UP = 20
#: Bounds an arrival's two page requests (the websocket client bounds its own connect and asks).
PAGES_TIMEOUT = 20.0


async def _arrive(
    base_url: str, slug: str, stage: str, index: int, stack: contextlib.AsyncExitStack
) -> None:
    with trio.fail_after(PAGES_TIMEOUT):
        token = await _pages(base_url, slug, stage, index)
    if token is None:
        return
    ws_url = base_url.replace("http://", "ws://", 1) + "/ws"
    client = await stack.enter_async_context(connect(ws_url, lambda *_: None, token=token))
    await client.request("room.enter", {}, addresses.room(token.partition(".")[0]))


async def _pages(base_url: str, slug: str, stage: str, index: int) -> str | None:
    """The form (and the arrival, after ``get``): the room token, None when the stage ends here."""
    browser = Browser(base_url)
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


async def _measure(server: ServeProcess, arrivals: int) -> dict[str, float]:
    scenario = Scenario(server.url, "provider", PASSWORD, areas=len(STAGES))
    _, areas = await discover_areas(scenario, Recorder())
    results: dict[str, float] = {}
    # An area per stage: each stage starts with an empty queue, whatever the one before left.
    for stage, (_, slug) in zip(STAGES, areas, strict=True):
        async with contextlib.AsyncExitStack() as stack:
            for index in range(WARM_UP):
                await _arrive(server.url, slug, "get", index, stack)
            before = server.cpu_seconds()
            for index in range(arrivals):
                await _arrive(server.url, slug, stage, index, stack)
            results[stage] = round((server.cpu_seconds() - before) / arrivals * 1000, 2)
        print(f"  {stage}: {results[stage]} ms of server CPU per arrival", file=sys.stderr)
    return results


def measure(build: Build, work: Path, arrivals: int) -> dict[str, float]:
    print(f"{build.name}:", file=sys.stderr)
    with Server(build, work / "server", len(STAGES)) as server:
        return trio.run(_measure, server, arrivals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrivals", type=int, default=300, help="per stage (300)")
    parser.add_argument("--reference", help="a commit measured after this tree, in the same run")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="waitroom-stages-") as tmp:
        work = Path(tmp)
        tree = Build("this tree", Path(__file__).resolve().parent.parent)
        results[tree.name] = measure(tree, work / "tree", args.arrivals)
        if args.reference:
            reference = export_commit(args.reference, work / "reference")
            results[reference.name] = measure(reference, work / "ref", args.arrivals)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
