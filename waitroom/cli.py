"""``waitroom serve``: the command-line front of :mod:`waitroom.server`.

On start it prints, one per line on stdout, the address it serves and, for a new database, the
demo waiting-area links and the demo sign-ins. Logs go to stderr, so the banner can be read by
scripts (and tests) without parsing log noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from actors.consult.desk import LINK_LIFETIME as CONSULT_LINK_SECONDS
from actors.group.breakout_plan import CLOSING_COUNTDOWN as BREAKOUT_COUNTDOWN
from gateway.connlimit import DEFAULT_PER_ADDRESS
from runtime.errors import ActorError
from services.turn import DEFAULT_TTL as DEFAULT_TURN_TTL
from services.turn import TurnConfig
from storage.dialect import is_postgres_url
from storage.retention import (
    DEFAULT_AUDIT_ADDRESS_DAYS,
    DEFAULT_CALLER_DAYS,
    DEFAULT_OUTBOX_DAYS,
    DEFAULT_SESSION_DAYS,
    RetentionPolicy,
)
from storage.sessions import DEFAULT_IDLE_TIMEOUT
from waitroom import first_admin
from waitroom.loadtest import main as loadtest
from waitroom.senders import (
    ENV,
    TLS_MODES,
    SenderConfigError,
    SenderSettings,
    settings_from_env,
    validate,
)
from waitroom.server import (
    DEFAULT_DB_PATH,
    DEFAULT_HOST,
    DEFAULT_MEDIA_PORT,
    DEFAULT_PORT,
    ServerConfig,
    ServerInfo,
    main_sync,
)
from waitroom.trusted_proxy import parse_networks

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Shown instead of a demo password the operator chose: they know it, the log need not.
GIVEN_PASSWORD = "(the --demo-password given)"
#: Environment variable for ``--media-workers`` (the flag wins).
MEDIA_WORKERS_ENV = "WAITROOM_MEDIA_WORKERS"
#: Reverse proxies to believe (comma-separated), and the bearer token for remote /metrics scrapes
#: (a secret: from the environment only).
TRUSTED_PROXIES_ENV = "WAITROOM_TRUSTED_PROXIES"
METRICS_TOKEN_ENV = "WAITROOM_METRICS_TOKEN"
#: ``--retain-<kind>-days``: (kind, default days, what is forgotten), see storage.retention.
RETENTION_FLAGS = (
    ("caller", DEFAULT_CALLER_DAYS, "ended callers' details and names in call records"),
    ("outbox", DEFAULT_OUTBOX_DAYS, "sent and failed messages' recipients and texts"),
    ("session", DEFAULT_SESSION_DAYS, "ended staff sessions and spent links"),
    ("audit-address", DEFAULT_AUDIT_ADDRESS_DAYS, "client addresses in audit entries"),
)
#: ICE-TCP and TURN (issue 16). The TURN secret is a secret: from the environment only.
MEDIA_TCP_PORT_ENV = "WAITROOM_MEDIA_TCP_PORT"
TURN_URLS_ENV = "WAITROOM_TURN_URLS"
TURN_SECRET_ENV = "WAITROOM_TURN_SECRET"
TURN_TTL_ENV = "WAITROOM_TURN_TTL"
#: ``serve`` runs one media worker process per core unless told otherwise.
DEFAULT_MEDIA_WORKERS = "auto"
#: What ``--consult-link-seconds`` accepts: ten seconds (tests) to an hour.
MIN_CONSULT_LINK_SECONDS = 10.0
MAX_CONSULT_LINK_SECONDS = 3600.0
#: What ``--breakout-countdown-seconds`` accepts: the rooms' closing countdown, 10 s to 5 minutes.
MIN_BREAKOUT_COUNTDOWN = 10.0
MAX_BREAKOUT_COUNTDOWN = 300.0
#: ``--staff-idle-minutes`` (issue 15): a staff session nobody uses for this long is over. At
#: least five minutes (a session's deadline moves at most once a minute), at most the 12-hour
#: absolute limit.
STAFF_IDLE_ENV = "WAITROOM_STAFF_IDLE_MINUTES"
#: ``--redis`` and ``--node-id``: one node of a cluster (issue 18).
REDIS_ENV = "WAITROOM_REDIS"
NODE_ID_ENV = "WAITROOM_NODE_ID"
MIN_STAFF_IDLE_MINUTES = 5
MAX_STAFF_IDLE_MINUTES = 720
#: ``--max-websockets-per-address`` (issue 15): open websockets one client address may hold.
WEBSOCKETS_PER_ADDRESS_ENV = "WAITROOM_MAX_WEBSOCKETS_PER_ADDRESS"
#: ``--database`` (issue 18): the PostgreSQL every node of a cluster keeps its data in.
DATABASE_ENV = "WAITROOM_DATABASE"
#: Log every event-loop task step longer than this many ms (a diagnostic; waitroom/slow_steps.py).
SLOW_STEP_ENV = "WAITROOM_SLOW_STEP_MS"
MAX_WEBSOCKETS_PER_ADDRESS = 100_000


def media_workers(value: str) -> int:
    """``auto`` (one per core), or a count: 0 keeps the one worker inside the server process."""
    if value.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"media workers must be 'auto' or a number, not {value!r}") from None
    if count < 0:
        raise ValueError(f"media workers must be 0 or more, not {count}")
    return count


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
    serve.add_argument(
        "--database",
        metavar="URL",
        help=(
            "PostgreSQL instead of the SQLite file, e.g. postgresql://waitroom@10.0.0.6/waitroom: "
            f"the store every node of a cluster shares (default: ${DATABASE_ENV}; docs/storage.md)"
        ),
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
        "--consult-link-seconds",
        type=float,
        default=None,
        metavar="S",
        help=(
            "seconds a Consult Now link is valid from sending, and what each extension adds "
            f"(default {CONSULT_LINK_SECONDS:g}: five minutes)"
        ),
    )
    serve.add_argument(
        "--breakout-countdown-seconds",
        type=float,
        default=None,
        metavar="S",
        help=(
            "seconds breakout rooms count down, in every room, before everyone is back in the "
            f"main call (default {BREAKOUT_COUNTDOWN:g})"
        ),
    )
    serve.add_argument(
        "--staff-idle-minutes",
        type=int,
        default=None,
        metavar="M",
        help=(
            "minutes a staff session may go unused before it signs out, beside the 12-hour limit "
            f"(default: ${STAFF_IDLE_ENV} or {DEFAULT_IDLE_TIMEOUT // timedelta(minutes=1)})"
        ),
    )
    serve.add_argument(
        "--max-websockets-per-address",
        type=int,
        default=None,
        metavar="N",
        help=(
            "open websocket connections one client address may hold (a clinic behind NAT has "
            f"many); loopback is not counted (default: ${WEBSOCKETS_PER_ADDRESS_ENV} or "
            f"{DEFAULT_PER_ADDRESS})"
        ),
    )
    serve.add_argument(
        "--media-workers",
        default=None,
        metavar="N|auto",
        help=(
            "media worker processes, one UDP port each from --media-port up; 0 runs media inside "
            f"the server process (default: ${MEDIA_WORKERS_ENV} or {DEFAULT_MEDIA_WORKERS}: "
            "one per core)"
        ),
    )
    serve.add_argument(
        "--media-tcp-port",
        type=int,
        default=None,
        metavar="N",
        help=(
            "first TCP port for ICE-TCP (worker i listens on N + i), for callers whose network "
            f"blocks UDP (default: ${MEDIA_TCP_PORT_ENV} or 0: off)"
        ),
    )
    serve.add_argument(
        "--turn-url",
        action="append",
        default=None,
        metavar="URL",
        help=(
            "TURN (or STUN) server handed to browsers, e.g. turn:turn.example.org:3478, "
            "turn:...?transport=tcp, turns:...:5349; repeatable "
            f"(default: ${TURN_URLS_ENV}, comma-separated). Needs ${TURN_SECRET_ENV}"
        ),
    )
    serve.add_argument(
        "--turn-ttl",
        type=int,
        default=None,
        metavar="SECONDS",
        help=f"lifetime of the TURN credentials a page gets (default: ${TURN_TTL_ENV} or 86400)",
    )
    serve.add_argument(
        "--ice-transport-policy",
        choices=("all", "relay"),
        default="all",
        help="relay: browsers use the TURN servers only (to test a TURN set-up; default all)",
    )
    serve.add_argument(
        "--demo-password",
        default="",
        help="password for the demo users of a new database (default: random, printed once)",
    )
    add_sender_arguments(serve)
    for kind, default, what in RETENTION_FLAGS:
        serve.add_argument(
            f"--retain-{kind}-days",
            type=int,
            default=default,
            metavar="DAYS",
            help=f"days {what} are kept, 0 = for ever (default: %(default)s)",
        )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=None,
        metavar="ADDRESS",
        help=(
            "reverse proxy (address or network) whose X-Forwarded-For/-Proto are believed; "
            f"repeatable (default: ${TRUSTED_PROXIES_ENV}, comma-separated; none)"
        ),
    )
    serve.add_argument(
        "--redis",
        metavar="URL",
        help=(
            "Redis or Valkey of a cluster, e.g. redis://10.0.0.5:6379/0: this server joins it as "
            f"one node (default: ${REDIS_ENV}; none: one node alone; docs/operations.md)"
        ),
    )
    serve.add_argument(
        "--node-id",
        help=f"this node's id in the cluster (default: ${NODE_ID_ENV} or random per start)",
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
    first_admin.add_arguments(
        commands.add_parser(
            "create-admin",
            help="the first administrator of an empty database (https servers seed no demo)",
            description="Create the organisation and its first administrator; the password is "
            "read from standard input.",
        )
    )
    return parser


def add_sender_arguments(serve: argparse.ArgumentParser) -> None:
    """Where shared links are delivered; each flag overrides its ``WAITROOM_*`` variable.
    Passwords and API keys come from the environment only (``ps`` shows command lines)."""
    group = serve.add_argument_group(
        "sending links",
        "Default: links are recorded in the outbox only. Secrets only from the environment: "
        f"{ENV['smtp_password']}, {ENV['sms_api_key']}.",
    )
    group.add_argument("--smtp-host", help=f"SMTP server for email (${ENV['smtp_host']})")
    group.add_argument(
        "--smtp-port",
        type=int,
        help=f"SMTP port (${ENV['smtp_port']}; default 587, 465 for ssl, 25 for none)",
    )
    group.add_argument(
        "--smtp-tls",
        choices=TLS_MODES,
        help=f"how the SMTP connection is protected (${ENV['smtp_tls']}; default starttls)",
    )
    group.add_argument("--smtp-username", help=f"SMTP login name (${ENV['smtp_username']})")
    group.add_argument("--smtp-from", help=f"From address of the emails (${ENV['smtp_from']})")
    group.add_argument(
        "--sms-url", help=f"HTTP SMS gateway URL that takes a JSON POST (${ENV['sms_url']})"
    )
    group.add_argument(
        "--sms-sender-id", help=f"name or number the texts come from (${ENV['sms_sender_id']})"
    )


def sender_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> SenderSettings:
    """The environment's sender settings with the flags given on top, checked."""
    try:
        settings = settings_from_env(environ)
        flags = {
            "smtp_host": args.smtp_host,
            "smtp_port": args.smtp_port,
            "smtp_tls": args.smtp_tls,
            "smtp_username": args.smtp_username,
            "smtp_from": args.smtp_from,
            "sms_url": args.sms_url,
            "sms_sender_id": args.sms_sender_id,
        }
        given = {key: value for key, value in flags.items() if value is not None}
        return validate(dataclasses.replace(settings, **given))
    except SenderConfigError as error:
        raise SystemExit(f"waitroom serve: {error}") from None


def config_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """The server configuration from the flags and (for senders) the environment."""
    if (args.certfile is None) != (args.keyfile is None):
        raise SystemExit("waitroom serve: --certfile and --keyfile go together")
    env = os.environ if environ is None else environ
    senders = sender_settings(args, env)
    workers = args.media_workers or env.get(MEDIA_WORKERS_ENV) or DEFAULT_MEDIA_WORKERS
    try:
        workers_count = media_workers(workers)
    except ValueError as error:
        raise SystemExit(f"waitroom serve: {error}") from None
    proxies = tuple(args.trusted_proxy or env.get(TRUSTED_PROXIES_ENV, "").split(","))
    try:
        parse_networks(proxies)
    except ValueError as error:
        raise SystemExit(f"waitroom serve: --trusted-proxy: {error}") from None
    try:
        retention = RetentionPolicy(
            caller_days=args.retain_caller_days,
            outbox_days=args.retain_outbox_days,
            session_days=args.retain_session_days,
            audit_address_days=args.retain_audit_address_days,
        )
    except ValueError as error:
        raise SystemExit(f"waitroom serve: --retain-*-days: {error}") from None
    link_seconds = seconds_flag(
        "--consult-link-seconds",
        args.consult_link_seconds,
        CONSULT_LINK_SECONDS,
        MIN_CONSULT_LINK_SECONDS,
        MAX_CONSULT_LINK_SECONDS,
    )
    countdown = seconds_flag(
        "--breakout-countdown-seconds",
        args.breakout_countdown_seconds,
        BREAKOUT_COUNTDOWN,
        MIN_BREAKOUT_COUNTDOWN,
        MAX_BREAKOUT_COUNTDOWN,
    )
    return ServerConfig(
        breakout_countdown_seconds=countdown,
        redis_url=args.redis or env.get(REDIS_ENV, ""),
        node_id=args.node_id or env.get(NODE_ID_ENV, ""),
        staff_idle_timeout=staff_idle_timeout(args, env),
        websockets_per_address=websockets_per_address(args, env),
        consult_link_seconds=link_seconds,
        retention=retention,
        trusted_proxies=tuple(p.strip() for p in proxies if p.strip()),
        metrics_token=env.get(METRICS_TOKEN_ENV, ""),
        slow_step_ms=slow_step_ms(env),
        host=args.host,
        port=args.port,
        db_path=args.db,
        database_url=database_url(args, env),
        certfile=args.certfile,
        keyfile=args.keyfile,
        public_url=args.public_url,
        media_announce_address=args.media_address,
        media_udp_port=args.media_port,
        media_workers=workers_count,
        media_tcp_port=media_tcp_port(args, env),
        turn=turn_config(args, env),
        ice_transport_policy=args.ice_transport_policy,
        demo_password=args.demo_password,
        senders=senders,
    )


def slow_step_ms(env: Mapping[str, str]) -> float:
    """``$WAITROOM_SLOW_STEP_MS``: a positive number of milliseconds, or 0 (off)."""
    raw = env.get(SLOW_STEP_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(
            f"waitroom serve: ${SLOW_STEP_ENV} must be a number of ms, not {raw!r}"
        ) from None
    if not 0 < value <= MAX_SLOW_STEP_MS:
        raise SystemExit(
            f"waitroom serve: ${SLOW_STEP_ENV} must be over 0 and at most {MAX_SLOW_STEP_MS:.0f}"
        )
    return value


#: The longest threshold ``WAITROOM_SLOW_STEP_MS`` takes (a minute: a step that long is a hang).
MAX_SLOW_STEP_MS = 60_000.0


def seconds_flag(flag: str, given: float | None, default: float, low: float, high: float) -> float:
    """A duration flag: the default when not given, else a value in [low, high] or a message
    naming the flag."""
    if given is None:
        return default
    if not low <= given <= high:
        raise SystemExit(f"waitroom serve: {flag} must be {low:g} to {high:g}")
    return given


def database_url(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    """``--database``, else ``$WAITROOM_DATABASE``: a PostgreSQL URL, or "" for the SQLite file."""
    url = (args.database or env.get(DATABASE_ENV, "")).strip()
    if url and not is_postgres_url(url):
        raise SystemExit("waitroom serve: --database takes a postgresql:// URL (a file: --db)")
    return url


def staff_idle_timeout(args: argparse.Namespace, env: Mapping[str, str]) -> timedelta:
    """The staff idle timeout: the flag, else the environment, else the hour of storage.sessions."""
    minutes = args.staff_idle_minutes
    if minutes is None and env.get(STAFF_IDLE_ENV, "").strip():
        try:
            minutes = int(env[STAFF_IDLE_ENV])
        except ValueError:
            raise SystemExit(f"waitroom serve: ${STAFF_IDLE_ENV} must be a number") from None
    if minutes is None:
        return DEFAULT_IDLE_TIMEOUT
    if not MIN_STAFF_IDLE_MINUTES <= minutes <= MAX_STAFF_IDLE_MINUTES:
        raise SystemExit(
            f"waitroom serve: --staff-idle-minutes must be {MIN_STAFF_IDLE_MINUTES}"
            f" to {MAX_STAFF_IDLE_MINUTES}"
        )
    return timedelta(minutes=minutes)


def websockets_per_address(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Open websockets per client address: the flag, else the environment, else the default."""
    count = args.max_websockets_per_address
    if count is None and env.get(WEBSOCKETS_PER_ADDRESS_ENV, "").strip():
        try:
            count = int(env[WEBSOCKETS_PER_ADDRESS_ENV])
        except ValueError:
            raise SystemExit(
                f"waitroom serve: ${WEBSOCKETS_PER_ADDRESS_ENV} must be a number"
            ) from None
    if count is None:
        return DEFAULT_PER_ADDRESS
    if not 1 <= count <= MAX_WEBSOCKETS_PER_ADDRESS:
        raise SystemExit(
            f"waitroom serve: --max-websockets-per-address must be 1 to {MAX_WEBSOCKETS_PER_ADDRESS}"
        )
    return int(count)


def media_tcp_port(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """The ICE-TCP base port; 0 is off."""
    value = args.media_tcp_port
    if value is None:
        try:
            value = int(env.get(MEDIA_TCP_PORT_ENV) or 0)
        except ValueError:
            raise SystemExit(f"waitroom serve: ${MEDIA_TCP_PORT_ENV} must be a port") from None
    if not 0 <= value < 65536:
        raise SystemExit(f"waitroom serve: --media-tcp-port {value} is not a port")
    return int(value)


def turn_config(args: argparse.Namespace, env: Mapping[str, str]) -> TurnConfig:
    """TURN servers from the flags or the environment, the secret from the environment only."""
    urls = args.turn_url or [u for u in env.get(TURN_URLS_ENV, "").split(",") if u.strip()]
    try:
        ttl = args.turn_ttl if args.turn_ttl is not None else int(env.get(TURN_TTL_ENV) or 0)
        return TurnConfig(
            urls=tuple(u.strip() for u in urls),
            secret=env.get(TURN_SECRET_ENV, ""),
            ttl=ttl or DEFAULT_TURN_TTL,
        )
    except ValueError as error:  # TurnConfigError too
        raise SystemExit(f"waitroom serve: TURN: {error}") from None


def banner(info: ServerInfo, show_password: bool = True) -> list[str]:
    """The lines printed at start: where we serve, then how to try the demo.

    A generated demo password is printed once (the quick start needs it); one the operator gave
    with ``--demo-password`` is not, so it never lands in a terminal log or a journal.
    """
    lines = [f"Serving on {info.url}"]
    if info.demo is not None:
        # The first link on a line of its own, so a script can take it with one split.
        for index, (name, link) in enumerate(info.demo.area_links):
            label = "Demo waiting area" if index == 0 else f"Demo waiting area ({name})"
            lines.append(f"{label}: {link}")
        password = info.demo.password if show_password else GIVEN_PASSWORD
        lines.append(f"Demo provider sign-in: {info.demo.provider_username} / {password}")
        lines.append(f"Demo admin sign-in: {info.demo.admin_username} / {password}")
    return lines


def announce(info: ServerInfo, show_password: bool = True) -> None:
    print("\n".join(banner(info, show_password)), flush=True)


def announcer(config: ServerConfig) -> Callable[[ServerInfo], None]:
    """How this server's banner is printed: the demo password only when we generated it."""
    return functools.partial(announce, show_password=not config.demo_password)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "loadtest":
        return loadtest.run(args)
    if args.command == "create-admin":
        return first_admin.run(args)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr)
    config = config_from_args(args)
    try:
        main_sync(config, announcer(config))
    except* ActorError as failed:
        if not config.redis_url:
            raise
        # A cluster node whose Redis cannot be reached at start (issue 18): one line, not a trace.
        leaf: BaseException = failed
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise SystemExit(f"waitroom serve: {leaf}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
