"""The composition root: storage, the actor tree, the web app and the gateway on one port.

:func:`run_server` owns everything it opens, in this order, and closes it in reverse:

1. the :class:`~storage.db.Store` (opened and migrated; an empty database gets the demo data);
2. the root :class:`~runtime.supervisor.Supervisor` and the long-lived actors
   (:func:`actors.boot.start_actors`);
3. one ASGI app served by Hypercorn's Trio worker: websocket upgrades to ``/ws`` go to the
   gateway, everything else to the Quart pages.

Shutdown (SIGINT/SIGTERM, :meth:`ServerInfo.shutdown`, or cancellation): Hypercorn stops accepting
and gives open requests a grace period, then the actor tree is cancelled (every actor that holds
something a user would miss has persisted it before acknowledging), then the store closes.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from actors import addresses
from actors.boot import start_actors
from actors.consult.desk import LINK_LIFETIME as CONSULT_LINK_SECONDS
from actors.group.breakout_plan import CLOSING_COUNTDOWN as BREAKOUT_COUNTDOWN
from gateway import connection, protocol
from gateway.asgi import GatewayEndpoint
from gateway.connlimit import DEFAULT_PER_ADDRESS, PerAddressLimit
from media import MediaEvent, MediaPool, MediaService, WorkerConfig
from runtime import Registry, Supervisor
from runtime.errors import ActorError
from services.passwords import Passwords
from services.turn import TurnConfig, ice_servers
from storage import seed
from storage.db import Store, open_store
from storage.retention import RetentionPolicy
from storage.sessions import DEFAULT_IDLE_TIMEOUT
from waitroom.frozen_heap import FrozenHeap
from waitroom.metrics import METRICS_PATH, GcPauses, LoopLag, Metrics, MetricsEndpoint
from waitroom.senders import SenderSettings, build_senders
from waitroom.senders import describe as describe_senders
from waitroom.slow_steps import SlowSteps
from waitroom.tcp_server import install as install_lean_tcp_server
from waitroom.trusted_proxy import TrustedProxy, parse_networks
from web.app import WebConfig, create_app
from web.arrival_path import ArrivalPath

if TYPE_CHECKING:
    from cluster import Node

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DB_PATH = Path("waitroom.sqlite3")
#: Where the media plane will listen for RTP/RTCP (one UDP port for every call, ICE-multiplexed).
DEFAULT_MEDIA_PORT = 40000
#: Websocket messages are small msgpack envelopes; anything bigger is an attack or a bug, and
#: Hypercorn would otherwise buffer up to 16 MiB per connection before the gateway sees it. The
#: transport limit sits above the protocol's frame limit so a client gets ``frame_too_large``.
WEBSOCKET_MAX_MESSAGE_SIZE = protocol.TRANSPORT_MAX_MESSAGE_BYTES
#: How long in-flight requests get to finish after a shutdown signal before they are cut.
GRACEFUL_TIMEOUT = 5.0
#: Connections the kernel holds for the server before it accepts them. Hypercorn's 100 is too
#: few when every waiting caller's page reconnects at once after a network blip: the kernel
#: drops the rest of the SYNs and each of those browsers tries again after 1, 3, 7 s (3,000
#: callers: p50 4.4 s to get back, 84 not back within 10 s; bench/README.md, session 19). The
#: kernel caps it at net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 4096
#: Random bytes of a generated demo password (printed once, on the first start).
DEMO_PASSWORD_BYTES = 9
GATEWAY_PATH = "/ws"

#: Quart, the gateway and Hypercorn each spell the ASGI types differently; the router only looks
#: at ``scope["type"]`` and ``scope["path"]``, so it takes them as they come.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class ServerConfig:
    """Every ``waitroom serve`` option; the defaults run a local demo on the embedded database."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db_path: Path = DEFAULT_DB_PATH
    #: A ``postgresql://`` URL: the store is PostgreSQL (several nodes share it), not ``db_path``.
    database_url: str = ""
    certfile: Path | None = None
    keyfile: Path | None = None
    #: The URL people use to reach this server (behind a proxy: the proxy's https URL).
    public_url: str = ""
    #: Address the media plane announces in ICE candidates (the host's public IP); "" = host.
    media_announce_address: str = ""
    media_udp_port: int = DEFAULT_MEDIA_PORT
    #: Media worker processes, one UDP port each from ``media_udp_port`` up; 0 runs one worker
    #: inside this process (what tests use: no child to start).
    media_workers: int = 0
    #: First TCP port for ICE-TCP (worker i on N + i); 0 is off.
    media_tcp_port: int = 0
    #: TURN servers handed to browsers with short-lived credentials (services.turn).
    turn: TurnConfig = field(default_factory=TurnConfig)
    #: "relay" makes browsers use TURN only (tests of the TURN path and of the failure notice).
    ice_transport_policy: str = "all"
    #: Answers carry no UDP candidate (tests of the ICE-TCP path only).
    media_udp_candidates: bool = True
    #: Password for the demo users of a new database; random when empty.
    demo_password: str = ""
    #: Where shared links are delivered (SMTP, SMS gateway); the default records them only.
    senders: SenderSettings = field(default_factory=SenderSettings)
    #: Reverse proxies whose ``X-Forwarded-For``/``-Proto`` are believed (waitroom.trusted_proxy).
    trusted_proxies: tuple[str, ...] = ()
    #: Bearer token that lets a scraper read ``/metrics`` from another host; "" = loopback only.
    metrics_token: str = ""
    #: Days each kind of personal data is kept (actors.admin.retention; docs/operations.md).
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    #: Seconds a Consult Now link is valid from sending, and what each extension adds (issue 13).
    consult_link_seconds: float = CONSULT_LINK_SECONDS
    #: ``--breakout-countdown-seconds``: how long breakout rooms count down before they close.
    breakout_countdown_seconds: float = BREAKOUT_COUNTDOWN
    #: ``WAITROOM_SLOW_STEP_MS``: log every task step longer than this (0: off; slow_steps.py).
    slow_step_ms: float = 0.0
    #: A staff session nobody uses for this long is over, beside the 12-hour limit (issue 15).
    staff_idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT
    #: Open websockets one client address may hold (gateway.connlimit; loopback not counted).
    websockets_per_address: int = DEFAULT_PER_ADDRESS
    #: Redis/Valkey of a cluster this server is one node of (issue 18); "" runs one node alone.
    redis_url: str = ""
    #: This node's id in the cluster ("" = a random one per start).
    node_id: str = ""

    @property
    def tls(self) -> bool:
        return self.certfile is not None


@dataclass(frozen=True)
class DemoSignIn:
    """What a newcomer needs to try the demo: the sign-ins and the waiting-area links."""

    provider_username: str
    admin_username: str
    password: str
    area_links: tuple[tuple[str, str], ...]  # (area name, absolute link)


@dataclass
class ServerInfo:
    """Handed to whoever started the server once it accepts connections."""

    url: str
    registry: Registry
    demo: DemoSignIn | None
    _shutdown: trio.Event = field(default_factory=trio.Event, repr=False)

    def shutdown(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does)."""
        self._shutdown.set()


class Router:
    """The one ASGI app: websocket ``/ws`` to the gateway, ``/metrics`` to the metrics endpoint,
    everything else to the pages."""

    def __init__(self, web: ASGIApp, gateway: ASGIApp, metrics: ASGIApp | None = None) -> None:
        self.web = web
        self.gateway = gateway
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and scope.get("path") == GATEWAY_PATH:
            await self.gateway(scope, receive, send)
        elif (
            self.metrics is not None
            and scope["type"] == "http"
            and scope.get("path") == METRICS_PATH
        ):
            await self.metrics(scope, receive, send)
        else:
            await self.web(scope, receive, send)


def hypercorn_config(config: ServerConfig) -> HypercornConfig:
    hc = HypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hc.bind = [f"{host}:{config.port}"]
    if config.certfile is not None:
        hc.certfile = str(config.certfile)
        hc.keyfile = None if config.keyfile is None else str(config.keyfile)
    hc.websocket_max_message_size = WEBSOCKET_MAX_MESSAGE_SIZE
    hc.graceful_timeout = GRACEFUL_TIMEOUT
    hc.backlog = LISTEN_BACKLOG
    hc.include_server_header = False
    # Our logging configuration decides where Hypercorn's messages go; no access log by default
    # (it would record waiting-area slugs and invite links).
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.accesslog = None
    return hc


def browsable(url: str) -> str:
    """A bound URL a person can open: the wildcard addresses become localhost."""
    for wildcard in ("//0.0.0.0:", "//[::]:"):
        url = url.replace(wildcard, "//localhost:")
    return url


async def _seed_if_empty(store: Store, password: str, public_url: str) -> seed.DemoInfo | None:
    if not await seed.is_empty(store):
        return None
    if not seed.demo_allowed(public_url):  # a real deployment: no well-known sign-ins (issue 15)
        log.warning(
            "new database: no demo users, since the public URL is https; create the first "
            "administrator with: waitroom create-admin --db <this database>"
        )
        return None
    password_hash = await Passwords().hash(password)
    demo = await seed.seed_demo(store, password_hash)
    log.info("new database: seeded the demo organisation %r", seed.DEMO_ORG)
    return demo


async def _stop_on_signal(info: ServerInfo, task_status: trio.TaskStatus[None]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info("%s: shutting down", signal.Signals(signum).name)
            info.shutdown()
            return


async def run_server(
    config: ServerConfig,
    *,
    handle_signals: bool = True,
    heap: FrozenHeap | None = None,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until shut down; ``task_status.started`` gets a :class:`ServerInfo` once listening.

    With ``port=0`` the OS picks a free port and ``ServerInfo.url`` names it. ``handle_signals``
    turns SIGINT/SIGTERM into a graceful shutdown (only possible in the main thread). Cancellation
    stops everything at once; :meth:`ServerInfo.shutdown` stops gracefully. ``heap`` (the CLI's
    alone: it is process-wide) starts once everything else has, and `/metrics` reports it.
    """
    demo_password = config.demo_password or secrets.token_urlsafe(DEMO_PASSWORD_BYTES)
    info = ServerInfo("", Registry(), None)
    async with trio.open_nursery() as outer:
        if handle_signals:
            # Installed first, so a signal during start-up is a clean stop too.
            await outer.start(_stop_on_signal, info)
        async with open_store(config.database_url or config.db_path) as store:
            demo = await _seed_if_empty(store, demo_password, config.public_url)
            async with (
                _cluster_node(config, store) as node,
                trio.open_nursery() as nursery,
            ):
                if node is not None:  # one node of a cluster: its registry reaches the others
                    info.registry = node.registry
                    connection.NODE_ID = node.id
                await _serve(
                    nursery, config, store, info, demo, demo_password, task_status, node, heap
                )
        outer.cancel_scope.cancel(reason="server shut down")


@contextlib.asynccontextmanager
async def _cluster_node(config: ServerConfig, store: Store) -> AsyncIterator[Node | None]:
    """The cluster node with ``--redis`` (issue 18), else None; one node alone imports nothing of
    the cluster (its Redis client is slow to import)."""
    if not config.redis_url:
        yield None
        return
    from waitroom.clustered import open_cluster

    async with open_cluster(config.redis_url, store, config.node_id) as node:
        yield node


async def _follow_departures(node: Node, gateway: GatewayEndpoint) -> None:
    """When another node dies, this node's connections watch and enter again (issue 18)."""
    from waitroom.clustered import follow_departures

    async def lost(gone: set[str]) -> None:
        await gateway.after_node_lost()

    await follow_departures(node, lost)


def _one_node() -> str | None:
    return None


def _cluster_status(node: Node) -> Callable[[], str | None]:
    """``/healthz``'s ``cluster``: "unavailable" once Redis has not answered for as long as new
    admissions are refused, so the probe and the arrival pages agree."""
    from waitroom.clustered import ADMIT_FRESH

    return lambda: "ok" if node.health.answered_within(ADMIT_FRESH) else "unavailable"


async def _start_node_desk(root: Supervisor, node: Node) -> None:
    """The desk other nodes hand this node's areas to (issue 18)."""
    from waitroom.clustered import start_node_desk

    await start_node_desk(root, node)


def _placing(node: Node) -> Callable[..., Supervisor]:
    from waitroom.clustered import placing_supervisors

    return placing_supervisors(node)


async def _serve(
    nursery: trio.Nursery,
    config: ServerConfig,
    store: Store,
    info: ServerInfo,
    demo: seed.DemoInfo | None,
    demo_password: str,
    task_status: trio.TaskStatus[ServerInfo],
    node: Node | None = None,
    heap: FrozenHeap | None = None,
) -> None:
    root: Supervisor = await nursery.start(Supervisor(info.registry, "root").run)
    media = await nursery.start(_run_media, config, info.registry)
    log.info(describe_senders(config.senders))
    await start_actors(
        nursery,
        root,
        store,
        media,
        senders=build_senders(config.senders),
        retention=config.retention,
        consult_link_seconds=config.consult_link_seconds,
        staff_idle_timeout=config.staff_idle_timeout,
        supervisor=Supervisor if node is None else _placing(node),
        breakout_countdown=config.breakout_countdown_seconds,
    )
    gateway = GatewayEndpoint(
        info.registry, per_address=PerAddressLimit(config.websockets_per_address)
    )
    if node is not None:
        await _start_node_desk(root, node)
        nursery.start_soon(_follow_departures, node, gateway)
    lag = LoopLag()
    nursery.start_soon(lag.run)
    gc_pauses = GcPauses()
    metrics = Metrics(
        info.registry,
        lambda: (gateway.open_connections, gateway.total_connections),
        lag,
        media_stats=media.stats,
        media_worker_stats=(
            media.worker_stats if isinstance(media, MediaPool) else lambda: {"0": media.stats()}
        ),
        gc_pauses=gc_pauses,
        heap=heap,
    )
    web = create_app(
        info.registry,
        WebConfig(
            public_url=config.public_url,
            gateway_ready=lambda: True,
            cluster_status=_one_node if node is None else _cluster_status(node),
            ice_servers=partial(ice_servers, config.turn),
            ice_transport_policy=config.ice_transport_policy,
        ),
    )
    served = trio.Event()

    async def serve_until_shutdown(task_status: trio.TaskStatus[list[str]]) -> None:
        install_lean_tcp_server()
        try:
            await serve(
                TrustedProxy(
                    Router(
                        ArrivalPath(web),
                        gateway,
                        MetricsEndpoint(metrics, token=config.metrics_token),
                    ),
                    parse_networks(config.trusted_proxies),
                ),
                hypercorn_config(config),
                shutdown_trigger=info._shutdown.wait,
                task_status=task_status,
            )
        finally:
            served.set()

    binds: list[str] = await nursery.start(serve_until_shutdown)
    info.url = binds[0]
    base = config.public_url.rstrip("/") or browsable(info.url)
    if demo is not None:
        info.demo = DemoSignIn(
            demo.provider_username,
            demo.admin_username,
            demo_password,
            tuple((a.name, f"{base}/w/{a.slug}") for a in demo.areas),
        )
    log.info("serving on %s", info.url)
    if heap is not None:
        await nursery.start(heap.run)
    task_status.started(info)
    with gc_pauses.installed():
        await served.wait()
    # No request is in flight any more: stop the actor tree (pending asks are answered with
    # ActorStopped), then the store closes on the way out.
    nursery.cancel_scope.cancel(reason="server shut down")


async def _run_media(
    config: ServerConfig,
    registry: Registry,
    *,
    task_status: trio.TaskStatus[MediaService | MediaPool],
) -> None:
    """Run the media plane: one worker in this process, or ``config.media_workers`` worker
    processes placed per call; its events (a peer's slots changed, a transport died) go to the call
    they name, at ``call/<call id>``.

    A media failure must not take the clinic down: the worker isolates peers itself, and a call
    that cannot be told (it ended) simply misses an event about a call that no longer exists.
    """

    def to_call(event: MediaEvent) -> None:
        with contextlib.suppress(ActorError):
            registry.ref(addresses.call(event.call_id)).tell(event)

    announced = config.media_announce_address or (
        config.host if config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    )
    worker_config = WorkerConfig(
        announced_address=announced,
        bind_address=config.host or "0.0.0.0",
        port=config.media_udp_port,
        # The in-process worker's port is its own; a pool gives worker i the port N + i.
        tcp_port=config.media_tcp_port or None,
        udp_candidates=config.media_udp_candidates,
    )
    if config.media_workers > 0:
        pool = MediaPool(worker_config, workers=config.media_workers, on_event=to_call)
        log.info("media: %d worker processes", config.media_workers)
        await pool.run(task_status=task_status)
    else:
        await MediaService(worker_config, on_event=to_call).run(task_status=task_status)


def main_sync(config: ServerConfig, announce: Callable[[ServerInfo], None]) -> None:
    """Run the server in a fresh Trio run (the CLI entry point); ``announce`` prints the banner."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(partial(run_server, config, heap=FrozenHeap()))
            announce(info)

    instruments = [SlowSteps(config.slow_step_ms / 1000)] if config.slow_step_ms > 0 else []
    trio.run(main, instruments=instruments)
