"""What the server needs to run as one node of a cluster: the messages that may cross, and which
addresses are placed.

``cluster/`` knows nothing of the domain (it stands on ``runtime`` alone), so the composition root
tells it here:

* :func:`message_types`: every message dataclass and enum of ``actors/`` (the per-feature
  ``messages`` modules, the gateway's ``inbound`` messages, principals, the reply types, the
  actors' own timer messages, the media plane's events), registered in one
  :class:`~cluster.codec.MessageTypes`. ``tests/cluster/test_message_types.py`` walks every
  ``@handles`` type of every actor class and every reply type and checks each is here and
  round-trips, so a new message cannot be forgotten;
* :func:`placed` and :func:`located`: which addresses live on exactly one node of the cluster
  (areas, rooms, on-demand queues, breakout desks; every call, of whatever kind, is a
  ``room/<id>``), which name their node (a connection's ``conn/<node>-<n>``), and which are per
  node (the hosts, the directory, the sign-in desk: each node runs its own).

:func:`open_cluster` is what ``waitroom serve --redis URL`` adds to the one-node server: the node
(joined before the registry is used: its registry is the server's), the supervisors that start
placed kinds through placement, the admission gate (new arrivals are refused while Redis is
down, before anything is stored) and the start of a dead node's areas and rooms again on a live
node, when a message for one of them finds no owner and on a sweep every ``SWEEP_EVERY`` s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any

import trio

import actors.admin.outbox
import actors.admin.reports
import actors.admin.retention
import actors.admin.setup_messages
import actors.calls.core
import actors.calls.media
import actors.calls.presence
import actors.calls.state
import actors.consult.desk
import actors.consult.messages
import actors.group.breakout_call
import actors.group.breakouts
import actors.group.call
import actors.group.messages
import actors.meetings.messages
import actors.meetings.policies
import actors.meetings.rooms
import actors.ondemand.estimate
import actors.ondemand.messages
import actors.ondemand.queue
import actors.staff.directory
import actors.staff.notices
import actors.staff.signin
import media.events
import storage.audit_chain
import storage.retention
from actors import addresses, inbound, messages, principal, refusals
from actors.messages import AdoptArea, GiveUpArea, NodeReady
from actors.ondemand.messages import AdoptQueue, GiveUpQueue, QueueWatcher
from cluster import ClusterUnavailable, Node, PlacingSupervisor, open_node
from cluster.codec import MessageTypes
from cluster.spread import Spread
from runtime.address import Address
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, ActorRef, handles
from runtime.supervisor import ChildSpec, Supervisor
from storage import areas as area_store
from storage import group_breakouts, orgs
from storage import rooms as room_store
from storage.db import Store

#: Modules whose every dataclass and enum is a message (or a part of one).
MESSAGE_MODULES: tuple[ModuleType, ...] = (
    messages,
    inbound,
    principal,
    actors.admin.setup_messages,
    actors.consult.messages,
    actors.group.messages,
    actors.meetings.messages,
    actors.ondemand.messages,
    actors.calls.state,
    media.events,
)

#: Messages and reply types defined beside the actor that handles them.
ACTOR_MESSAGES: tuple[type, ...] = (
    actors.admin.outbox.SendLink,
    actors.admin.outbox.SendMessage,
    actors.admin.outbox.DeliverDue,
    actors.admin.outbox.ListOutbox,
    actors.admin.reports.ListAudit,
    actors.admin.reports.VerifyAuditChain,
    actors.admin.reports.ListReportAreas,
    actors.admin.reports.ReportFor,
    actors.admin.reports.Summary,
    actors.admin.reports.ReportFigures,
    actors.admin.reports.GroupFigures,
    actors.admin.retention.SweepNow,
    actors.admin.retention._Tick,
    actors.calls.core.GraceOver,
    actors.calls.presence.ParticipantKind,
    actors.consult.desk.LinkDue,
    actors.group.breakout_call.SeatsChanged,
    actors.group.breakout_call.ModeratorsChanged,
    actors.group.breakout_call.IntoRoom,
    actors.group.breakout_call.RoomRenamed,
    actors.group.breakout_call.CloseBreakout,
    actors.group.breakout_call.RoomPeople,
    actors.group.breakout_call.HelpAsked,
    actors.group.breakouts.RoomsDue,
    actors.group.breakouts.CountdownOver,
    actors.group.call.TimeWarning,
    actors.group.call.NeverStarted,
    actors.group.call.TimeUp,
    actors.group.call.EndGroup,
    actors.meetings.policies.Emptied,
    actors.ondemand.estimate.WaitEstimate,
    actors.ondemand.queue._AlertDue,
    actors.staff.directory.SessionInfo,
    actors.staff.directory.ResolveSession,
    actors.staff.directory.SessionView,
    actors.staff.directory.DescribeSession,
    actors.staff.directory.SignOut,
    actors.staff.directory.CheckCsrf,
    actors.staff.directory.AreaSummary,
    actors.staff.directory.ListMyAreas,
    actors.staff.directory.ProbeStorage,
    actors.staff.directory._Recheck,
    actors.staff.directory.SignedOutElsewhere,
    actors.staff.directory.GrantsChangedElsewhere,
    actors.staff.notices.Notify,
    actors.staff.notices.NoticeStored,
    actors.staff.notices.ListNotices,
    actors.staff.notices.MarkNoticeRead,
    actors.staff.notices.NoticeList,
    actors.staff.signin.SignIn,
    # Reply rows of the store that pages receive as they are.
    storage.audit_chain.ChainCheck,
    storage.retention.SweepResult,
)

#: Handled messages that never leave their node, so never registered (one sent across would be
#: refused at the sender): what an actor tells itself holding a live object (a deferred reply, a
#: participant's presence), an idle timer that is a plain class, and the rows an area hands the
#: room host of its own node (``rooms`` is per node). The test of what may cross accepts exactly
#: these.
LOCAL_ONLY: frozenset[type] = frozenset(
    {
        actors.meetings.rooms.IdleOver,
        actors.calls.core.Dropped,
        actors.calls.media.OfferAnswered,
        actors.consult.desk.Delivered,
        messages.OpenRooms,
    }
)


def message_types() -> MessageTypes:
    """Every message of the domain, registered to cross between nodes."""
    types = MessageTypes()
    for module in MESSAGE_MODULES:
        types.register_module(module, exclude=LOCAL_ONLY)
    types.register(*ACTOR_MESSAGES)
    return types


#: Address kinds that live on exactly one node of the cluster, chosen when they start. Not
#: ``call/<id>``: it is a second name of its room, on the room's node, told only by that node's
#: own media plane (an event for a call that ended is dropped at once, as on one node).
PLACED_KINDS = frozenset(
    {
        addresses.AREA,
        addresses.ROOM,
        addresses.ONDEMAND_KIND,
        addresses.BREAKOUTS,
    }
)


def placed(address: str) -> bool:
    """Whether ``address`` may be hosted by another node (the placed kinds; per-node actors,
    connections and anything unknown are never looked up in Redis)."""
    kind, sep, rest = address.partition("/")
    return bool(sep) and kind in PLACED_KINDS and bool(rest)


def located(address: str) -> str | None:
    """The node an address names: a connection's (``conn/<node>-<n>``), a node's desk
    (``node/<node>``) or a per-node actor of one node (``node/<node>/<name>``, e.g. its notice
    board); None for any other address (``conn/<n>`` of a one-node server included)."""
    kind, sep, rest = address.partition("/")
    if kind == addresses.NODE_KIND and sep and rest:
        return rest.partition("/")[0] or None
    if kind != addresses.CONN or not sep:
        return None
    node, dash, number = rest.rpartition("-")
    return node if dash and node and number.isdigit() else None


#: Address kinds spread over the live nodes (each has a home, ``cluster.spread``): areas, so a
#: second node hosts about half of them, and the rooms their callers' arrivals open there; and
#: organisations' on-demand queues, with the sessions they start. Breakout desks run where they
#: are first claimed (their group session's node, as a rule).
SPREAD_KINDS = frozenset({addresses.AREA, addresses.ONDEMAND_KIND})


def spreads(address: str) -> bool:
    """Whether ``address`` has a home node (an area or an on-demand queue)."""
    kind, sep, rest = address.partition("/")
    return bool(sep) and kind in SPREAD_KINDS and rest.isdigit()


#: What this release offers the other nodes (``cluster.membership``): it takes over on-demand
#: queues (``AdoptQueue``). Releases before it spread areas only and drop that message, so while
#: one still runs beside this one, a queue's home is chosen among the nodes that offer this.
ADOPTS_QUEUES = "adopts:ondemand"
TRAITS = frozenset({ADOPTS_QUEUES})


def _is_queue(address: str) -> bool:
    return address.startswith(addresses.ONDEMAND_KIND + "/")


def needs(address: str) -> str | None:
    """The trait a home of the spread ``address`` must offer (areas: none, every release)."""
    return ADOPTS_QUEUES if _is_queue(address) else None


def _ident(address: str) -> int:
    return int(address.partition("/")[2])


def adoption(address: str, watchers: tuple[Any, ...] = ()) -> AdoptArea | AdoptQueue:
    """What asks a home node's desk to start the spread ``address`` there, with the connections
    that watched it (an area's are connection addresses, a queue's :class:`QueueWatcher`)."""
    if _is_queue(address):
        queue_watchers = tuple(w for w in watchers if isinstance(w, QueueWatcher))
        return AdoptQueue(_ident(address), queue_watchers)
    return AdoptArea(_ident(address), tuple(str(w) for w in watchers))


def giving_up(address: str) -> tuple[Address, GiveUpArea | GiveUpQueue]:
    """Which host stops the spread ``address`` here for a handover, and how it is asked."""
    if _is_queue(address):
        return addresses.ONDEMAND, GiveUpQueue(_ident(address))
    return addresses.AREAS, GiveUpArea(_ident(address))


#: New admissions: refused while Redis cannot be reached (fail closed), before any is stored.
ADMISSIONS: tuple[type, ...] = (
    messages.Arrive,
    messages.ClaimInvite,
    actors.group.messages.ArriveGroup,
    actors.ondemand.messages.StartRequest,
)
#: Seconds since Redis last answered beyond which new admissions are refused: a pause is
#: noticed here before any command times out (an idle node hears from Redis twice a second).
ADMIT_FRESH = 1.0
#: What a refused arrival is told (the arrival page shows it above the form, kept filled in).
PAUSED = (
    "New arrivals cannot be taken for a moment (the service is recovering). "
    "Please try again in a minute."
)
#: Seconds between sweeps of the areas: the live nodes are read, areas whose home is now another
#: node are handed over, and areas nobody hosts (their node died and no message came for them)
#: are started on their home.
SWEEP_EVERY = 2.0
#: Areas one node hands over per sweep, so a node joining a busy cluster takes its share in
#: steps (each handover stops an area for a moment; its messages wait meanwhile).
HANDOVERS_PER_SWEEP = 50
#: Seconds the area host gets to stop an area it hands over (it drains its mailbox first).
HANDOVER_TIMEOUT = 10.0
#: Seconds a home node's desk gets to say it is ready before its areas are handed to it.
READY_TIMEOUT = 2.0

log = logging.getLogger(__name__)


def admission_gate(node: Node) -> Callable[[str, object], None]:
    """The node registry's gate: while Redis is down (or has not answered for ``ADMIT_FRESH``
    seconds), new admissions are refused before the actor that would store them sees them.

    What is left: an arrival let in within the second before Redis stops answering is stored,
    and its room then cannot be placed (``unavailable``, see :class:`RefusingPlacer`); the caller
    is in the queue again when the area restarts (docs/operations.md).
    """

    def gate(address: str, message: object) -> None:
        if isinstance(message, ADMISSIONS) and not node.health.answered_within(ADMIT_FRESH):
            raise Refusal(refusals.UNAVAILABLE, PAUSED)

    return gate


#: Seconds a host gets to start a call again for the Reviver (as long as a message is held for
#: an owner: an answer later than that helps nobody; the next held message asks again).
REVIVE_TIMEOUT = 10.0

#: Which per-node host starts each kind of call again (``rooms.kind`` in the store); the room
#: host's own message (``OpenRoom``) for a caller's room. A room with no row is asked of the
#: group desk when it is an open breakout room (``group_breakout_rooms`` names its session), else
#: of the on-demand host (its sessions' rooms are rows of ``ondemand_requests``).
REVIVING_HOSTS: dict[str, Address] = {
    "meeting": addresses.MEETINGS,
    "user": addresses.MEETINGS,
    "consult_now": addresses.CONSULT,
    "group": addresses.GROUP,
}


class Reviver:
    """The transport's ``on_unowned``: start a dead node's actor again through this node's hosts.

    An area through the area host (its start opens its waiting callers' rooms); an on-demand
    queue through the on-demand host; a call (``room/<id>``) through the host or desk that starts
    its kind, read from the store: a caller's room through the room host, meeting and user
    rooms through ``meetings``, Consult Now calls through ``consult``, group sessions through
    ``group``, a group session's open breakout room (no ``rooms`` row; its session named by
    ``group_breakout_rooms``) through ``group`` too, which starts the session's breakout desk (it
    resumes every open room of the session), on-demand sessions (no ``rooms`` row) through
    ``ondemand``. Each host restores the
    call from the store under its own supervisor, whose placement claims it: where the claim
    lands decides where it runs (here, unless another node was quicker), and it runs once. A call
    that has ended, a breakout room that closed or whose session ended, is refused by its host
    (or not asked) and starts nothing: a message for one ends as not found after its hold. At most one
    start per address is in flight on this node, each bounded by ``REVIVE_TIMEOUT``.
    """

    def __init__(self, node: Node, store: Store, nursery: trio.Nursery) -> None:
        self.node = node
        self.store = store
        self.nursery = nursery
        #: Rooms whose start this node has asked for and not heard back about yet.
        self._reviving: set[str] = set()

    def __call__(self, address: str) -> None:
        kind, _, ident = address.partition("/")
        registry = self.node.registry
        with contextlib.suppress(ActorError):
            if kind == addresses.AREA and ident.isdigit():
                registry.ref(addresses.AREAS).tell(messages.ReloadArea(int(ident)))
            elif kind == addresses.ONDEMAND_KIND and ident.isdigit():
                registry.ref(addresses.ONDEMAND).tell(
                    actors.ondemand.messages.FindQueue(int(ident))
                )
            elif kind == addresses.ROOM and ident and ident not in self._reviving:
                self._reviving.add(ident)
                self.nursery.start_soon(self._room, ident)

    async def _room(self, room_id: str) -> None:
        try:
            await self._start_room(room_id)
        finally:
            self._reviving.discard(room_id)

    async def _start_room(self, room_id: str) -> None:
        try:
            room = await room_store.find_room(self.store, room_id)
            # No row: an on-demand session, or a breakout room (its session's, while open).
            breakout = (
                await group_breakouts.session_of_room(self.store, room_id) if room is None else None
            )
        except Exception:  # the store is away: the next message or sweep asks again
            log.exception("room/%s not started again: its row could not be read", room_id)
            return
        if room is not None and room.state != "open":
            log.info("room/%s (%s) has closed: not started again", room_id, room.kind)
            return
        ask: object = messages.StartAgain(room_id)
        if room is None and breakout is not None:
            host = addresses.GROUP  # starts the session's breakout desk, which resumes the rooms
        elif room is None:
            host = addresses.ONDEMAND
        elif room.kind == "caller":
            host, ask = addresses.ROOMS, messages.OpenRoom(room_id)
        elif room.kind in REVIVING_HOSTS:
            host = REVIVING_HOSTS[room.kind]
        else:
            log.warning("room/%s (%s) has no host to start it again", room_id, room.kind)
            return
        try:
            await self.node.registry.ref(host).ask(ask, timeout=REVIVE_TIMEOUT)
        except Refusal as refusal:  # ended, or a breakout room that closed: nothing starts
            log.info("room/%s not started again: %s", room_id, refusal)
        except ActorError as exc:  # the host is busy, restarting or slow: asked again later
            log.warning("room/%s not started again now: %r", room_id, exc)
        else:
            log.info("cluster: room/%s started again (%s)", room_id, host)


async def sweep_areas(
    node: Node, store: Store, revive: Callable[[str], None], spread: Spread | None = None
) -> int:
    """Start again every area and on-demand queue nobody hosts whose home is this node (every
    one, without a ``spread``); how many were asked for."""
    everything = [
        *(addresses.area(a.id) for a in await area_store.list_areas(store, include_inactive=True)),
        *(addresses.ondemand(o.id) for o in await orgs.list_organisations(store)),
    ]
    remote: list[str] = [
        address
        for address in everything
        if address not in node.registry and (spread is None or spread.is_home(address))
    ]
    owners = await node.placement.owners(remote)
    unowned = [a for a, owner in owners.items() if owner is None]  # a dead owner's claim expires
    for address in unowned:
        revive(address)
    return len(unowned)


async def hand_over_areas(node: Node, spread: Spread, limit: int = HANDOVERS_PER_SWEEP) -> int:
    """Hand each area or on-demand queue running here whose home is another live node to that
    node; how many.

    Its host (``areas``, ``ondemand``) stops it (it drains its mailbox first, so nothing it
    acknowledged is lost), the placement is released, and the home node's desk is told to start
    it with the connections that watched it (they get ``queue.snapshot`` or
    ``ondemand.snapshot`` from the new copy). Messages sent meanwhile find no owner and wait
    (``cluster.transport``) until the home node has it; what it holds is in the store, which the
    new copy reads. Stop before release: never two copies of one address.
    """
    moving = [
        a
        for a in sorted(node.placement.held)
        if spreads(a) and a in node.registry and not spread.is_home(a)
    ][:limit]
    ready: dict[str, bool] = {}
    for address in moving:
        home = spread.home(address)
        if home not in ready:
            ready[home] = await _is_ready(node, home)
        if not ready[home]:
            continue  # still starting: the next sweep hands its areas over
        host, give_up = giving_up(address)
        try:
            watchers = await node.registry.ref(host).ask(give_up, timeout=HANDOVER_TIMEOUT)
        except ActorError as exc:
            log.warning("%s not handed over to node %s: %r", address, home, exc)
            continue
        await node.unhost(address)
        with contextlib.suppress(ActorError):  # lost: the home's sweep starts it all the same
            node.registry.ref(addresses.node_desk(home)).tell(adoption(address, watchers))
        log.info("cluster: %s handed over to node %s (%d watching)", address, home, len(watchers))
    return len(moving)


async def _is_ready(node: Node, node_id: str) -> bool:
    """Whether ``node_id``'s desk answers: a node is live in Redis from the moment it joins, but
    takes its areas only once its hosts have started."""
    try:
        return bool(
            await node.registry.ref(addresses.node_desk(node_id)).ask(
                NodeReady(), timeout=READY_TIMEOUT
            )
        )
    except ActorError as exc:
        log.info("areas not handed to node %s yet: %r", node_id, exc)
        return False


async def keep_areas(
    node: Node, store: Store, revive: Callable[[str], None], spread: Spread
) -> None:
    """Every ``SWEEP_EVERY`` s, forever (a background task): read the live nodes, hand over the
    areas whose home moved, start unhosted areas homed here. Redis or the store down: next time."""
    while True:
        await trio.sleep(SWEEP_EVERY)
        try:
            if await spread.refresh():
                log.info("cluster: live nodes %s", ", ".join(spread.live))
            await hand_over_areas(node, spread)
            await sweep_areas(node, store, revive, spread)
        except ClusterUnavailable as exc:
            log.warning("areas not swept: %s", exc)
        except Exception:  # the store is away: a sweep must not end the server
            log.exception("areas not swept")


class NodeDesk(Actor):
    """``node/<id>``: what another node asks of this node as a whole, to host an area or an
    on-demand queue whose home this node is (handed over, or wanted by a message nobody could
    deliver). The area or on-demand host does the work; the desk only gives the other nodes one
    address per node to reach it by."""

    @handles(NodeReady)
    async def _ready(self, message: NodeReady) -> bool:
        return True

    @handles(AdoptArea)
    async def _adopt(self, message: AdoptArea) -> None:
        try:
            self.ref(addresses.AREAS).tell(message)
        except ActorError as exc:  # the host is busy or restarting: the sweep starts it later
            log.warning("area/%s not adopted now: %r", message.area_id, exc)

    @handles(AdoptQueue)
    async def _adopt_queue(self, message: AdoptQueue) -> None:
        try:
            self.ref(addresses.ONDEMAND).tell(message)
        except ActorError as exc:  # the host is busy or restarting: the sweep starts it later
            log.warning("ondemand/%s not adopted now: %r", message.org_id, exc)


async def start_node_desk(root: Supervisor, node: Node) -> None:
    """Start this node's desk under the server's root supervisor."""
    await root.start_child(ChildSpec(addresses.node_desk(node.id), NodeDesk))


#: Seconds between looks at the live nodes, to notice one that died.
DEPARTURES_EVERY = 2.0


async def follow_departures(node: Node, lost: Callable[[set[str]], Awaitable[None]]) -> None:
    """Look at the live nodes every ``DEPARTURES_EVERY`` s, forever; when nodes that were live
    are gone (killed, or stopped), run ``lost(gone)`` in a task of its own (it is bounded: the
    gateway's connections watch and enter again). Redis away: look again next time."""
    known: set[str] | None = None
    async with trio.open_nursery() as nursery:
        while True:
            try:
                live = set(await node.live_nodes())
            except ClusterUnavailable as exc:
                log.warning("live nodes not read: %s", exc)
            else:
                gone = (known or set()) - live - {node.id}
                if gone:
                    log.warning("cluster: node(s) %s gone; connections here catch up", sorted(gone))
                    nursery.start_soon(lost, gone)
                known = live
            await trio.sleep(DEPARTURES_EVERY)


#: What a host that could not place an actor answers (Redis went away after the request came in).
NOT_PLACED = "this cannot be started right now (the service is recovering); try again in a minute"


class RefusingPlacer(PlacingSupervisor):
    """A placing supervisor that starts a spread address only on its home, and whose failure to
    reach Redis is a refusal (``unavailable``), not a crash: the hosts answer a refusal to their
    asker and keep running, where an error would crash them and, repeated while Redis is away,
    exhaust their supervisor's restarts.

    An area or on-demand queue whose home is another node is not claimed here: if nobody runs it,
    its home's desk is asked to start it (``AdoptArea``, ``AdoptQueue``), and messages for it
    wait until it does.
    """

    async def start_child(self, spec: ChildSpec) -> ActorRef:
        address = spec.address
        spread = self.node.spread
        try:
            if spread is None or address in self.registry or spread.is_home(address):
                return await super().start_child(spec)
            owner = await self.node.placement.owner(address)
            if owner is None:
                home = spread.home(address)
                with contextlib.suppress(ActorError):  # lost: the home's sweep starts it
                    self.registry.ref(addresses.node_desk(home)).tell(adoption(address))
            else:
                self.node.transport.remember_owner(address, owner)
            return ActorRef(self.registry, address)
        except ClusterUnavailable as exc:
            raise Refusal(refusals.UNAVAILABLE, NOT_PLACED) from exc


def placing_supervisors(node: Node) -> Callable[..., Supervisor]:
    """What ``actors.boot.start_actors`` makes its on-demand supervisors with on a node."""

    def make(registry: object, name: str, **options: Any) -> Supervisor:
        return RefusingPlacer(node, name, placed=placed, **options)

    return make


@contextlib.asynccontextmanager
async def open_cluster(redis_url: str, store: Store, node_id: str = "") -> AsyncIterator[Node]:
    """Join the cluster at ``redis_url`` for the server's lifetime (see the module docstring)."""
    async with (
        open_node(
            redis_url,
            message_types(),
            node_id=node_id or None,
            placed=placed,
            located=located,
            traits=TRAITS,
        ) as node,
        trio.open_nursery() as nursery,
    ):
        node.registry.gate = admission_gate(node)
        node.spread = Spread(node.id, spreads, node.live_nodes, needs, node.membership.traits_of)
        await node.spread.refresh()  # before the area host places the areas
        revive = Reviver(node, store, nursery)
        node.transport.on_unowned = revive
        nursery.start_soon(
            keep_areas, node, store, revive, node.spread, name=f"node {node.id} area sweep"
        )
        log.info("cluster: joined as node %s", node.id)
        yield node
        nursery.cancel_scope.cancel(reason="server shut down")
