"""``waitroom serve``: the command-line front of :mod:`waitroom.server`.

On start it prints, one per line on stdout, the address it serves and, for a new database, the
demo waiting-area links and the demo sign-ins. Logs go to stderr, so the banner can be read by
scripts (and tests) without parsing log noise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from waitroom.loadtest import main as loadtest
from waitroom.server import (
    DEFAULT_DB_PATH,
    DEFAULT_HOST,
    DEFAULT_MEDIA_PORT,
    DEFAULT_PORT,
    ServerConfig,
    ServerInfo,
    main_sync,
)

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waitroom", description="Self-hostable video consultation server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve pages, the websocket gateway and media",
        description="Serve Waitroom. A new database is created, migrated and seeded with a demo.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port; 0 picks a free one (%(default)s)"
    )
    serve.add_argument(
        "--db", type=Path, default=DEFAULT_DB_PATH, help="SQLite database file (%(default)s)"
    )
    serve.add_argument("--certfile", type=Path, help="TLS certificate (PEM) to serve HTTPS")
    serve.add_argument("--keyfile", type=Path, help="TLS private key (PEM) for --certfile")
    serve.add_argument(
        "--public-url",
        default="",
        help="URL people use to reach this server, e.g. https://video.example.org (behind a proxy)",
    )
    serve.add_argument(
        "--media-address",
        default="",
        help="public IP address announced for media (default: the listening host)",
    )
    serve.add_argument(
        "--media-port",
        type=int,
        default=DEFAULT_MEDIA_PORT,
        help="UDP port for call media (%(default)s)",
    )
    serve.add_argument(
        "--demo-password",
        default="",
        help="password for the demo users of a new database (default: random, printed once)",
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity on stderr (%(default)s)",
    )
    loadtest_parser = commands.add_parser(
        "loadtest",
        help="drive a running server with simulated callers and providers",
        description="Simulated callers and providers against URL; writes a report and a plot.",
    )
    loadtest.add_arguments(loadtest_parser)
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    if (args.certfile is None) != (args.keyfile is None):
        raise SystemExit("waitroom serve: --certfile and --keyfile go together")
    return ServerConfig(
        host=args.host,
        port=args.port,
        db_path=args.db,
        certfile=args.certfile,
        keyfile=args.keyfile,
        public_url=args.public_url,
        media_announce_address=args.media_address,
        media_udp_port=args.media_port,
        demo_password=args.demo_password,
    )


def banner(info: ServerInfo) -> list[str]:
    """The lines printed at start: where we serve, then how to try the demo."""
    lines = [f"Serving on {info.url}"]
    if info.demo is not None:
        # The first link on a line of its own, so a script can take it with one split.
        for index, (name, link) in enumerate(info.demo.area_links):
            label = "Demo waiting area" if index == 0 else f"Demo waiting area ({name})"
            lines.append(f"{label}: {link}")
        lines.append(f"Demo provider sign-in: {info.demo.provider_username} / {info.demo.password}")
        lines.append(f"Demo admin sign-in: {info.demo.admin_username} / {info.demo.password}")
    return lines


def announce(info: ServerInfo) -> None:
    print("\n".join(banner(info)), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "loadtest":
        return loadtest.run(args)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr)
    config = config_from_args(args)
    main_sync(config, announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
