"""A cluster node in its own process, for the tests and the benchmark that need two real nodes.

    python -m tests.cluster.node_process --redis URL --id b [--host room/x ...] [--race N]

Joins the cluster, hosts an echo actor at each ``--host`` address, prints one JSON line
``{"ready": "<id>"}`` and serves until SIGTERM (or until killed, which is what some tests do).
With ``--race N`` it then waits for a line on stdin and tries to host ``room/race-0`` ...
``room/race-<N-1>`` as fast as it can, printing ``{"won": [...]}``: two such processes started
together race for every room.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from functools import partial

import trio

from cluster import PlacementTaken, open_node
from runtime import ChildSpec, Supervisor
from tests.cluster.echo import Echo, echo_types


def say(obj: object) -> None:
    print(json.dumps(obj), flush=True)


async def serve(args: argparse.Namespace) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with (
            open_node(args.redis, echo_types(), node_id=args.id, prefix=args.prefix) as node,
            trio.open_nursery() as nursery,
        ):
            supervisor = await nursery.start(Supervisor(node.registry, f"root-{args.id}").run)
            for address in args.host:
                await node.host(supervisor, ChildSpec(address, partial(Echo, args.id)))
            say({"ready": args.id})
            if args.race:
                await trio.wrap_file(sys.stdin).readline()
                won: list[str] = []

                async def take(address: str) -> None:
                    try:
                        await node.host(supervisor, ChildSpec(address, partial(Echo, args.id)))
                        won.append(address)
                    except PlacementTaken:
                        pass

                async with trio.open_nursery() as racers:
                    for n in range(args.race):
                        racers.start_soon(take, f"room/race-{n}")
                say({"won": sorted(won)})
            async for _ in signals:
                break
            nursery.cancel_scope.cancel(reason="node stopped by signal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--prefix", default="t")
    parser.add_argument("--host", action="append", default=[])
    parser.add_argument("--race", type=int, default=0)
    trio.run(serve, parser.parse_args())


if __name__ == "__main__":
    main()
